"""A live daemon on the selected stack runs real jobs submitted through the broker."""

from __future__ import annotations

import pytest
from aiida.engine import submit
from aiida.orm import InstalledCode, Int, load_node
from aiida.plugins import CalculationFactory

from aiida_perovskite.data import TrainingSetData
from tests.helpers import lj_frames


@pytest.mark.daemon
def test_daemon_runs_a_submitted_calcjob(aiida_localhost, submit_and_await):
    code = InstalledCode(label="bash", computer=aiida_localhost, filepath_executable="/bin/bash").store()
    builder = CalculationFactory("core.arithmetic.add").get_builder()
    builder.code = code
    builder.x, builder.y = Int(3), Int(4)
    node = submit_and_await(builder)
    assert node.is_finished_ok, node.exit_status
    assert node.outputs.sum.value == 7


@pytest.mark.daemon
def test_daemon_process_sees_stored_training_set(aiida_localhost, submit_and_await):
    """A node stored here is readable by the daemon worker (same storage, not a copy)."""
    training_set = TrainingSetData([lj_frames(nframes=2)]).store()
    code = InstalledCode(label="bash-ts", computer=aiida_localhost, filepath_executable="/bin/bash").store()
    builder = CalculationFactory("core.arithmetic.add").get_builder()
    builder.code = code
    builder.x, builder.y = Int(training_set.nframes), Int(training_set.pk)
    node = submit_and_await(submit(builder))
    assert node.outputs.sum.value == 2 + training_set.pk
    assert load_node(training_set.pk).nframes == 2
