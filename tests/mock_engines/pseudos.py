"""Fake pseudopotentials (UPF headers aiida-pseudo can read) and ABACUS numerical-orbital files, named as the
real SG15 ONCV / DZP sets are; no physics inside, enough for the plugins to build and copy the inputs."""

from __future__ import annotations

import pathlib

UPF = """\
<UPF version="2.0.1">
  <PP_INFO>
    mock {element} pseudopotential: aiida-perovskite tests only
  </PP_INFO>
  <PP_HEADER generated="mock" author="aiida-perovskite" date="2026" comment="" element="{element}"
    pseudo_type="NC" relativistic="scalar" is_ultrasoft="F" is_paw="F" is_coulomb="F" has_so="F"
    has_wfc="F" has_gipaw="F" core_correction="F" functional="PBE" z_valence="{zval:.1f}"
    total_psenergy="0.0" wfc_cutoff="{cutoff:.1f}" rho_cutoff="{rho_cutoff:.1f}" l_max="2" l_local="-1"
    mesh_size="0" number_of_wfc="0" number_of_proj="0"/>
</UPF>
"""

ORBITAL = """\
---------------------------------------------------------------------------
Element                     {element}
Energy Cutoff(Ry)           {cutoff:.0f}
Radius Cutoff(a.u.)         {rcut:.0f}
Lmax                        2
Number of Sorbital-->       2
Number of Porbital-->       2
Number of Dorbital-->       1
---------------------------------------------------------------------------
SUMMARY  END
mock numerical orbitals: aiida-perovskite tests only
"""


def write_fake_upf(directory: pathlib.Path, element: str, zval: float, cutoff: float = 100.0) -> pathlib.Path:
    path = directory / f"{element}_ONCV_PBE-1.0.upf"
    path.write_text(UPF.format(element=element, zval=zval, cutoff=cutoff, rho_cutoff=4 * cutoff))
    return path


def write_fake_orbital(directory: pathlib.Path, element: str, cutoff: float = 100.0, rcut: int = 9) -> pathlib.Path:
    path = directory / f"{element}_gga_{rcut}au_{cutoff:.0f}Ry_2s2p1d.orb"
    path.write_text(ORBITAL.format(element=element, cutoff=cutoff, rcut=rcut))
    return path
