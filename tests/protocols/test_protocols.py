"""Protocols: defaults, a protocol and overrides merged, and a misspelt override refused."""

from __future__ import annotations

import pytest

from aiida_perovskite.protocols import available_protocols, load_protocol


def test_overrides_are_merged_over_the_protocol():
    inputs = load_protocol("deepmd_train", "fast", {"parameters": {"training": {"numb_steps": 7}}})
    assert inputs["parameters"]["training"]["numb_steps"] == 7
    assert "model" in inputs["parameters"]  # the rest of the protocol stays


@pytest.mark.parametrize("name", ["deepmd_train", "concurrent_learning", "cp2k", "qe", "vasp", "abacus", "teacher"])
def test_a_misspelt_override_key_is_refused_with_the_close_key(name):
    key = sorted(load_protocol(name))[0]
    with pytest.raises(ValueError, match=f"unknown override key '{key}x' for {name}: did you mean '{key}'"):
        load_protocol(name, None, {f"{key}x": 1})


def test_every_protocol_of_every_file_loads():
    for name in ("deepmd_train", "concurrent_learning", "cp2k", "qe", "vasp", "abacus", "teacher"):
        for protocol in available_protocols(name):
            assert load_protocol(name, protocol)


def test_every_workchain_with_protocols_has_the_protocol_interface():
    """aiida-quantumespresso's interface: the file, the default, the list and the inputs of a protocol."""
    from aiida_perovskite.engines.cp2k.workchain import Cp2kLabelBaseWorkChain
    from aiida_perovskite.protocols import ProtocolMixin
    from aiida_perovskite.workflows.concurrent_learning import ConcurrentLearningWorkChain
    from aiida_perovskite.workflows.deepmd_train_base import DeepmdTrainBaseWorkChain
    from aiida_perovskite.workflows.phase_diagram import PhaseDiagramWorkChain
    from aiida_perovskite.workflows.train_ensemble import TrainEnsembleWorkChain

    for workchain in (
        ConcurrentLearningWorkChain,
        PhaseDiagramWorkChain,
        TrainEnsembleWorkChain,
        DeepmdTrainBaseWorkChain,
        Cp2kLabelBaseWorkChain,
    ):
        assert issubclass(workchain, ProtocolMixin) and hasattr(workchain, "get_builder_from_protocol")
        assert workchain.get_protocol_filepath().is_file()
        assert workchain.get_default_protocol() in workchain.get_available_protocols()
        assert workchain.get_protocol_inputs() == load_protocol(workchain._protocol_file)
        with pytest.raises(ValueError, match="unknown override key 'nonsense'"):
            workchain.get_protocol_inputs(None, {"nonsense": 1})
