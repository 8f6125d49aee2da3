"""Fake POTCAR files: the header VASP and aiida-vasp read (TITEL, LEXCH, ZVAL, ...) and no projectors.
Real POTCARs are licensed; these are enough for aiida-vasp to upload a family and write the POTCAR input."""

from __future__ import annotations

import pathlib

HEADER = """\
  PAW_PBE {symbol} 06Sep2000
 {zval:.10f}
 parameters from PSCTR are:
   VRHFIN ={element}: mock
   LEXCH  = PE
   EATOM  =   100.0000 eV,    7.3500 Ry

   TITEL  = PAW_PBE {symbol} 06Sep2000
   LULTRA =        F    use ultrasoft PP ?
   IUNSCR =        1    unscreen: 0-lin 1-nonlin 2-no
   RPACOR =    2.000    partial core radius
   POMASS =  100.000; ZVAL   =   {zval:.3f}    mass and valenz
   RCORE  =    2.000    outmost cutoff radius
   RWIGS  =    2.000; RWIGS  =    1.000    wigner-seitz radius (au A)
   ENMAX  =  400.000; ENMIN  =  300.000 eV
   LCOR   =        T    correct aug charges
   LPAW   =        T    paw PP
   EAUG   =  600.000
   DEXC   =    0.000
   RMAX   =    2.500    core radius for proj-oper
   RAUG   =    1.300    factor for augmentation sphere
   RDEP   =    2.000    radius for radial grids
   RDEPT  =    2.000    core radius for aug-charge
 END of PSCTR-controll parameters
 mock POTCAR for {symbol}: aiida-perovskite tests only
 End of Dataset
"""


def write_fake_potcars(directory: pathlib.Path, symbols: dict[str, float]) -> pathlib.Path:
    """``directory/<symbol>/POTCAR`` for each POTCAR symbol (e.g. ``Ba_sv``) with its valence."""
    for symbol, zval in symbols.items():
        folder = directory / symbol
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "POTCAR").write_text(HEADER.format(symbol=symbol, element=symbol.split("_")[0], zval=zval))
    return directory
