"""The engine registry and the checks every engine shares: unknown engine, missing plugin, wrong code,
protocols, and the same conventions (k-point spacing, virial sign) across engines."""

from __future__ import annotations

import re

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_perovskite.engines import get_engine, registered_engines
from aiida_perovskite.engines.cp2k import Cp2kEngine
from aiida_perovskite.engines.units import EV_PER_ANGSTROM3_IN_GPA, EV_PER_ANGSTROM3_IN_KBAR, virial_from_pressure
from aiida_perovskite.protocols import available_protocols
from aiida_perovskite.workflows.label import LabelWorkChain
from tests.helpers import cubic_batio3


def test_every_engine_of_the_issue_is_registered_with_fast_balanced_precise_protocols():
    assert list(registered_engines()) == ["cp2k", "vasp", "abacus", "qe", "teacher"]
    for name in registered_engines():
        assert set(available_protocols(name)) == {"fast", "balanced", "precise"}


def test_unknown_engine_names_the_known_ones():
    with pytest.raises(
        ValueError, match="unknown labeling engine 'siesta'; choose one of cp2k, vasp, abacus, qe, teacher"
    ):
        get_engine("siesta")


def test_unknown_engine_is_rejected_before_submission():
    builder = LabelWorkChain.get_builder()
    with pytest.raises(ValueError, match="unknown engine 'siesta'; choose one of cp2k, vasp, abacus, qe, teacher"):
        builder.engine = orm.Str("siesta")  # the builder validates the port as soon as it is set


def test_a_missing_plugin_says_which_extra_installs_it():
    class UninstalledEngine(Cp2kEngine):
        name = "siesta"
        distribution = "aiida-siesta-not-installed"
        extra = "siesta"

    message = UninstalledEngine().missing_plugin()
    assert message == (
        "engine 'siesta' needs the aiida-siesta-not-installed plugin: pip install 'aiida-perovskite[siesta]'"
    )
    assert all(engine.missing_plugin() is None for engine in registered_engines().values())


def test_a_code_of_another_plugin_is_rejected_at_submission(aiida_localhost):
    code = orm.InstalledCode(
        label="lmp-not-cp2k",
        computer=aiida_localhost,
        filepath_executable="/usr/bin/true",
        default_calc_job_plugin="perovskite.lammps.explore",
    ).store()
    builder = LabelWorkChain.get_builder()
    builder.code = code
    builder.structures = {"bto": orm.StructureData(ase=cubic_batio3())}
    with pytest.raises(ValueError, match=re.escape("engine 'cp2k' needs a code for 'cp2k'")):
        run_get_node(builder)


def test_an_unknown_protocol_is_rejected_at_submission(aiida_localhost):
    builder = LabelWorkChain.get_builder()
    builder.engine = orm.Str("vasp")
    builder.code = orm.InstalledCode(
        label="vasp-x",
        computer=aiida_localhost,
        filepath_executable="/usr/bin/true",
        default_calc_job_plugin="vasp.vasp",
    )
    builder.protocol = orm.Str("heroic")
    builder.structures = {"bto": orm.StructureData(ase=cubic_batio3())}
    with pytest.raises(ValueError, match="unknown protocol 'heroic' for vasp; choose one of fast, balanced, precise"):
        run_get_node(builder)


def test_virial_of_a_hydrostatic_pressure_is_pressure_times_volume():
    """1 GPa = 10 kbar on a 64 Å^3 cell: W = pV = 64 / 160.2 eV in both units, compressive positive."""
    pressure_gpa = np.eye(3)
    expected = 64.0 / EV_PER_ANGSTROM3_IN_GPA * np.eye(3)
    np.testing.assert_allclose(virial_from_pressure(pressure_gpa, 64.0, EV_PER_ANGSTROM3_IN_GPA), expected)
    np.testing.assert_allclose(virial_from_pressure(10 * pressure_gpa, 64.0, EV_PER_ANGSTROM3_IN_KBAR), expected)


def test_a_missing_code_is_rejected_at_submission():
    builder = LabelWorkChain.get_builder()
    builder.structures = {"bto": orm.StructureData(ase=cubic_batio3())}
    with pytest.raises(ValueError, match="required value was not provided for 'code'"):
        run_get_node(builder)
