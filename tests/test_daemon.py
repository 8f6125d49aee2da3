"""A live daemon on the selected stack runs real jobs submitted through the broker."""

from __future__ import annotations

import os
import signal
import time

import pytest
from aiida.engine import submit
from aiida.orm import InstalledCode, Int, load_node
from aiida.plugins import CalculationFactory

from aiida_perovskite.data import TrainingSetData
from aiida_perovskite.stack import BrokerWatch
from tests.conftest import STACK
from tests.helpers import lj_frames


@pytest.mark.daemon
def test_daemon_runs_a_submitted_calcjob(aiida_localhost, submit_and_await):
    code = InstalledCode(label="bash", computer=aiida_localhost, filepath_executable="/bin/bash").store()
    builder = CalculationFactory("core.arithmetic.add").get_builder()
    builder.code = code
    builder.x, builder.y = Int(3), Int(4)
    node = submit_and_await(builder, timeout=300)  # aiida's default, 20 s, is short on a loaded 2-core machine
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
    node = submit_and_await(submit(builder), timeout=300)
    assert node.outputs.sum.value == 2 + training_set.pk
    assert load_node(training_set.pk).nframes == 2


def wait_for(condition, timeout: float, failure: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(failure)
        time.sleep(0.5)


@pytest.mark.slow
@pytest.mark.daemon
@pytest.mark.skipif(STACK != "embedded", reason="the lost-worker fault is the embedded (ZeroMQ) broker's")
def test_a_daemon_whose_workers_the_broker_lost_is_restarted_and_new_processes_run(aiida_localhost, daemon):
    """The fault, reproduced: the worker holding a running job stops answering (SIGSTOP) beyond the broker's
    heartbeat timeout (6 s), the broker removes it with its subscription, and after SIGCONT the worker runs on but
    is never given a new process. The watch restarts the daemon; the process submitted meanwhile then finishes."""
    code = InstalledCode(label="bash-watch", computer=aiida_localhost, filepath_executable="/bin/bash").store()

    def add(x: int, prepend: str = ""):
        builder = CalculationFactory("core.arithmetic.add").get_builder()
        builder.code, builder.x, builder.y = code, Int(x), Int(1)
        builder.metadata.options.prepend_text = prepend
        return submit(builder)

    held = add(1, "sleep 25")
    wait_for(lambda: held.process_state is not None and held.process_state.value == "waiting", 120, "job not started")
    workers = [int(pid) for pid in daemon.get_worker_info()["info"]]
    for pid in workers:
        os.kill(pid, signal.SIGSTOP)
    time.sleep(15)
    for pid in workers:
        os.kill(pid, signal.SIGCONT)
    wait_for(BrokerWatch.missing_workers, 30, "the broker kept the stopped worker: the fault the watch heals is gone")
    late = add(2)
    time.sleep(10)
    assert late.process_state.value == "created"  # what a user sees: nothing happens, no error

    restarts = []
    watch = BrokerWatch(grace=30, period=1, report=restarts.append)
    deadline = time.monotonic() + 180
    while not late.is_terminated and time.monotonic() < deadline:
        watch.check()
        time.sleep(1)
    assert len(restarts) == 1 and "restarting the daemon" in restarts[0]
    assert late.is_finished_ok and late.outputs.sum.value == 3
    wait_for(lambda: held.is_terminated, 120, "the job held by the lost worker did not end")
    assert held.is_finished_ok and held.outputs.sum.value == 2
    # the broker writes its status file every 5 s: the restarted worker is counted within a few of them
    wait_for(lambda: BrokerWatch.missing_workers() == 0, 30, "the restarted worker is missing from the broker")
