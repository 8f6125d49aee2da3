"""The training parser on recorded outputs: normal, diverged, missing model, walltime; and the handlers."""

from __future__ import annotations

import json

import pytest
from aiida import orm
from aiida.common import AttributeDict
from aiida.common.links import LinkType
from aiida.engine.utils import instantiate_process
from aiida.manage import get_manager
from aiida.plugins import CalculationFactory, ParserFactory

from aiida_perovskite.workflows.deepmd_train_base import DeepmdTrainBaseWorkChain
from tests.helpers import failed_calcjob, lj_frames

DeepmdTrainCalculation = CalculationFactory("perovskite.deepmd.train")
LCURVE = "# step rmse_trn rmse_e_trn rmse_f_trn lr\n" + "".join(
    f"{step} {1.0 / (step + 1):.3e} {0.1 / (step + 1):.3e} {0.5 / (step + 1):.3e} 1e-3\n" for step in range(0, 101, 20)
)


def written_input(steps=100):
    return json.dumps({"training": {"numb_steps": steps}})


@pytest.fixture
def parse(calcjob_node_with_retrieved):
    def run(files, compress=False, backend="pytorch"):
        node = calcjob_node_with_retrieved(
            "perovskite.deepmd.train", {"backend": orm.Str(backend), "compress": orm.Bool(compress)}, files
        )
        results, calcfunction = ParserFactory("perovskite.deepmd.train").parse_from_node(node, store_provenance=False)
        return results, calcfunction

    return run


def test_normal_training(parse, tiny_pytorch_model):
    results, calc = parse(
        {"lcurve.out": LCURVE, "input.json": written_input(), "model.pth": tiny_pytorch_model.read_bytes()}
    )
    assert calc.is_finished_ok, calc.exit_message
    model = results["model"]
    assert model.type_map == ["Ba", "Ti", "O"]
    assert model.metrics["numb_steps"] == 100
    assert model.metrics["rmse_f_trn"] == pytest.approx(0.5 / 101, rel=1e-3)
    curve = results["learning_curve"]
    assert curve.get_array("step").tolist() == [0, 20, 40, 60, 80, 100]
    assert curve.base.attributes.get("final")["rmse_e_trn"] == pytest.approx(0.1 / 101, rel=1e-3)


def test_nan_learning_curve_is_divergence(parse, tiny_pytorch_model):
    lines = LCURVE.splitlines()
    diverged = "\n".join([*lines[:4], "60 nan nan nan 1e-3", "80 nan nan nan 1e-3", "100 nan nan nan 1e-3"])
    _, calc = parse(
        {"lcurve.out": diverged, "input.json": written_input(), "model.pth": tiny_pytorch_model.read_bytes()}
    )
    assert calc.exit_status == DeepmdTrainCalculation.exit_codes.ERROR_TRAINING_DIVERGED.status
    assert "from step 60 on" in calc.exit_message


def test_missing_model_file(parse):
    _, calc = parse({"lcurve.out": LCURVE, "input.json": written_input()})
    assert calc.exit_status == DeepmdTrainCalculation.exit_codes.ERROR_MISSING_MODEL.status
    assert "model.pth" in calc.exit_message


def test_missing_compressed_model(parse, tiny_pytorch_model):
    files = {"lcurve.out": LCURVE, "input.json": written_input(), "model.pth": tiny_pytorch_model.read_bytes()}
    _, calc = parse(files, compress=True)
    assert calc.exit_status == DeepmdTrainCalculation.exit_codes.ERROR_MISSING_COMPRESSED_MODEL.status


def test_broken_model_file(parse):
    _, calc = parse({"lcurve.out": LCURVE, "input.json": written_input(), "model.pth": b"truncated"})
    assert calc.exit_status == DeepmdTrainCalculation.exit_codes.ERROR_INVALID_MODEL.status


def test_missing_learning_curve(parse):
    _, calc = parse({"input.json": written_input()})
    assert calc.exit_status == DeepmdTrainCalculation.exit_codes.ERROR_MISSING_LEARNING_CURVE.status


def test_training_cut_short_is_out_of_walltime(parse):
    files = {"lcurve.out": LCURVE, "input.json": written_input(steps=1000), "checkpoint": "model.ckpt-100.pt"}
    _, calc = parse(files)
    assert calc.exit_status == DeepmdTrainCalculation.exit_codes.ERROR_OUT_OF_WALLTIME.status
    assert "stopped at step 100 of 1000" in calc.exit_message


def test_training_cut_before_its_first_checkpoint_is_told_apart(parse):
    _, calc = parse({"lcurve.out": LCURVE, "input.json": written_input(steps=1000)})
    assert calc.exit_status == DeepmdTrainCalculation.exit_codes.ERROR_STOPPED_BEFORE_CHECKPOINT.status
    assert "before it wrote a checkpoint" in calc.exit_message


@pytest.mark.parametrize(
    ("log", "expected"),
    [
        ("DEEPMD INFO    saved checkpoint model.ckpt\n", "ERROR_OUT_OF_WALLTIME"),
        ("DEEPMD INFO    Batch     100: trn: rmse = 3.44e+00\n", "ERROR_STOPPED_BEFORE_CHECKPOINT"),
    ],
)
def test_a_tensorflow_checkpoint_counts_once_dp_logged_it_complete(parse, log, expected):
    """TensorFlow writes the pointer file before the meta graph a restart imports: a job killed in between left
    no checkpoint to continue from (seen with scancel under load: the restart failed on model.ckpt.meta)."""
    files = {"lcurve.out": LCURVE, "input.json": written_input(steps=1000), "checkpoint": "model.ckpt-100"}
    _, calc = parse({**files, "train.log": log}, backend="tensorflow")
    assert calc.exit_status == DeepmdTrainCalculation.exit_codes[expected].status, calc.exit_message


@pytest.mark.parametrize(
    ("stderr", "expected"),
    [
        ("slurmstepd: error: *** JOB 7 ON vm CANCELLED AT 2026-11-23T21:05:37 ***\n", "ERROR_CANCELLED_BY_SCHEDULER"),
        (
            "slurmstepd: error: *** JOB 7 ON vm CANCELLED AT 2026-11-23T21:05:37 DUE TO TIME LIMIT ***\n",
            "ERROR_OUT_OF_WALLTIME",
        ),
        ("", "ERROR_OUT_OF_WALLTIME"),
    ],
)
def test_a_cancelled_job_is_told_apart_from_one_out_of_time(parse, stderr, expected):
    files = {"lcurve.out": LCURVE, "input.json": written_input(steps=1000), "checkpoint": "model.ckpt-100.pt"}
    _, calc = parse({**files, "_scheduler-stderr.txt": stderr})
    assert calc.exit_status == DeepmdTrainCalculation.exit_codes[expected].status, calc.exit_message


def test_a_job_cancelled_before_the_training_started_is_cancelled_not_broken(parse):
    stderr = "slurmstepd: error: *** JOB 7 ON vm CANCELLED AT 2026-11-23T21:05:37 ***\n"
    _, calc = parse({"input.json": written_input(steps=1000), "_scheduler-stderr.txt": stderr})
    assert calc.exit_status == DeepmdTrainCalculation.exit_codes.ERROR_CANCELLED_BY_SCHEDULER.status
    assert "at step 0 of 1000" in calc.exit_message


@pytest.mark.parametrize("lcurve", ["", "0 1.0"])  # created but no header yet (seen with scancel under load)
def test_a_job_cancelled_before_its_learning_curve_has_a_header_is_cancelled(parse, lcurve):
    stderr = "slurmstepd: error: *** JOB 7 ON vm CANCELLED AT 2026-11-23T21:05:37 ***\n"
    files = {"lcurve.out": lcurve, "input.json": written_input(steps=1000), "_scheduler-stderr.txt": stderr}
    _, calc = parse(files)
    assert calc.exit_status == DeepmdTrainCalculation.exit_codes.ERROR_CANCELLED_BY_SCHEDULER.status
    _, calc = parse({key: value for key, value in files.items() if key != "_scheduler-stderr.txt"})
    assert calc.exit_status == DeepmdTrainCalculation.exit_codes.ERROR_UNREADABLE_LEARNING_CURVE.status


# The end of the train.log of a real `dp --tf train` whose work directory (a 1 MB tmpfs) filled while TensorFlow
# saved a checkpoint (docs/reliability.md): the full disk cut its own error message short.
TF_DISK_FULL = """  File ".../tensorflow/python/lib/io/file_io.py", line 365, in write_string_to_file
    f.write(file_content)
  File ".../tensorflow/python/lib/io/file_io.py", line 101, in write
    self._writable_file.append(
tensorflow.python.framework.errors_impl.ResourceExhaustedEr"""
TF_OUT_OF_MEMORY = """  File ".../tensorflow/python/client/session.py", line 1401, in _do_call
    raise type(e)(node_def, op, message)
tensorflow.python.framework.errors_impl.ResourceExhaustedError: OOM when allocating tensor with shape[4096,100]
"""


@pytest.mark.parametrize(
    ("log", "evidence"),
    [
        (TF_DISK_FULL, "errors_impl.ResourceExhausted"),
        ("OSError: [Errno 28] No space left on device: 'model.ckpt-10.pt'\n", "No space left on device"),
        ("OSError: [Errno 122] Disk quota exceeded\n", "Disk quota exceeded"),
        (TF_OUT_OF_MEMORY, None),  # out of memory is not a full disk
    ],
)
def test_a_training_whose_disk_filled_is_told_apart_from_one_that_stopped(parse, log, evidence):
    files = {"lcurve.out": LCURVE, "input.json": written_input(steps=1000), "train.log": log}
    _, calc = parse(files, backend="tensorflow")
    if evidence is None:
        assert calc.exit_status == DeepmdTrainCalculation.exit_codes.ERROR_STOPPED_BEFORE_CHECKPOINT.status
        return
    assert calc.exit_status == DeepmdTrainCalculation.exit_codes.ERROR_DISK_FULL.status, calc.exit_message
    assert evidence in calc.exit_message and "train.log" in calc.exit_message


@pytest.fixture
def base_workchain(dp_code):
    """A DeepmdTrainBaseWorkChain instance set up with fast-protocol inputs, not run."""
    from aiida_perovskite.data import TrainingSetData

    training_set = TrainingSetData([lj_frames(nframes=2)]).store()
    builder = DeepmdTrainBaseWorkChain.get_builder_from_protocol(dp_code, training_set, protocol="fast", seed=3)
    process = instantiate_process(get_manager().get_runner(), builder)
    process.setup()
    return process


def failed_training(exit_code, computer) -> orm.CalcJobNode:
    return failed_calcjob(computer, "perovskite.deepmd.train", exit_code, remote_path="/scratch/run-1")


def test_walltime_handler_restarts_from_the_checkpoint(base_workchain, aiida_localhost):
    node = failed_training(
        DeepmdTrainCalculation.exit_codes.ERROR_OUT_OF_WALLTIME.format(step=10, total=100), aiida_localhost
    )
    report = base_workchain.handle_out_of_walltime(node)
    assert report.do_break and report.exit_code.status == 0
    inputs = AttributeDict(base_workchain.ctx.inputs)
    assert inputs.init_mode.value == "restart"
    assert inputs.parent_folder.uuid == node.outputs.remote_folder.uuid
    assert inputs.seed.value == 3  # same model, continued


def test_training_stopped_before_a_checkpoint_runs_again_unchanged(base_workchain, aiida_localhost):
    before = dict(base_workchain.ctx.inputs)
    code = DeepmdTrainCalculation.exit_codes.ERROR_STOPPED_BEFORE_CHECKPOINT.format(step=0, total=100)
    report = base_workchain.handle_stopped_before_checkpoint(failed_training(code, aiida_localhost))
    assert report.do_break and report.exit_code.status == 0
    assert dict(base_workchain.ctx.inputs) == before
    assert "init_mode" not in base_workchain.ctx.inputs


@pytest.mark.parametrize("checkpoint", [True, False])
def test_a_cancelled_training_continues_from_its_checkpoint_or_runs_again(base_workchain, aiida_localhost, checkpoint):
    code = DeepmdTrainCalculation.exit_codes.ERROR_CANCELLED_BY_SCHEDULER.format(step=10, total=100)
    node = failed_training(code, aiida_localhost)
    retrieved = orm.FolderData()
    retrieved.base.repository.put_object_from_bytes(b"model.ckpt-10", "checkpoint")  # both: TF wrote the pointer
    if checkpoint:  # and completed the checkpoint
        retrieved.base.repository.put_object_from_bytes(b"DEEPMD INFO    saved checkpoint model.ckpt\n", "train.log")
    retrieved.base.links.add_incoming(node, link_type=LinkType.CREATE, link_label="retrieved")
    retrieved.store()
    report = base_workchain.handle_cancelled(node)
    assert report.do_break and report.exit_code.status == 0
    mode = base_workchain.ctx.inputs.get("init_mode")
    assert (mode.value if mode is not None else None) == ("restart" if checkpoint else None)


def test_divergence_handler_halves_the_learning_rate_then_gives_up(base_workchain, aiida_localhost):
    code = DeepmdTrainCalculation.exit_codes.ERROR_TRAINING_DIVERGED.format(step=5)
    start = base_workchain.ctx.inputs.parameters["learning_rate"]["start_lr"]
    for expected in (start / 2, start / 4):
        report = base_workchain.handle_diverged(failed_training(code, aiida_localhost))
        assert report.exit_code.status == 0
        assert base_workchain.ctx.inputs.parameters["learning_rate"]["start_lr"] == pytest.approx(expected)
    report = base_workchain.handle_diverged(failed_training(code, aiida_localhost))
    assert report.exit_code.status == DeepmdTrainBaseWorkChain.exit_codes.ERROR_TRAINING_UNRECOVERABLE.status


def test_a_full_disk_pauses_the_training_until_it_is_played(base_workchain, aiida_localhost):
    """Rerunning at once would fail the same way: the workchain pauses, saying what to free and how to go on."""
    code = DeepmdTrainCalculation.exit_codes.ERROR_DISK_FULL.format(evidence="'No space left on device' in train.log")
    before = dict(base_workchain.ctx.inputs)
    report = base_workchain.handle_disk_full(failed_training(code, aiida_localhost))
    assert report.do_break and report.exit_code.status == 0
    assert dict(base_workchain.ctx.inputs) == before  # the same job again once played
    assert base_workchain.paused  # outside a step (here) at once; inside one, after it
