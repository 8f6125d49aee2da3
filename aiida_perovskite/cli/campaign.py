"""``aiida-perovskite campaign``: submit, run, watch, inspect, relabel, export and report campaigns."""

from __future__ import annotations

import pathlib
import time

import click

from aiida_perovskite.cli.root import cli
from aiida_perovskite.cli.root import load_aiida_profile as _load_profile
from aiida_perovskite.stack import BrokerWatch


def _campaign_node(pk: int):
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    try:
        node = orm.load_node(pk)
    except NotExistent as exc:
        raise click.ClickException(f"no node with PK {pk} in this profile") from exc
    label = getattr(node, "process_label", None)
    if label != "ConcurrentLearningWorkChain":
        raise click.ClickException(f"node {pk} is a {label or type(node).__name__}, not a campaign")
    return node


def _submit(path: pathlib.Path, training_set: int | None):
    from aiida.engine import submit

    from aiida_perovskite.campaign.builder import build_campaign
    from aiida_perovskite.campaign.spec import CampaignError, load_campaign

    try:
        campaign = load_campaign(path)
        if training_set is not None:
            campaign.training_set, campaign.perturbation = training_set, None
        builder = build_campaign(campaign)
    except CampaignError as exc:
        raise click.ClickException(f"{path}: {exc}") from exc
    node = submit(builder)
    node.base.extras.set_many({"campaign": node.uuid, "campaign_file": str(path.resolve())})
    click.echo(f"submitted campaign {campaign.name!r}: ConcurrentLearningWorkChain<{node.pk}>")
    return node


@cli.group("campaign")
def campaign() -> None:
    """Concurrent-learning campaigns (perovskite.concurrent_learning)."""


@campaign.command("check")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path))
def check(path: pathlib.Path) -> None:
    """Check a campaign file as a submission would, without storing anything: the file, its codes (and their
    plugins), data, structures and the WorkChain's input validation.

    \b
    Example:
      aiida-perovskite campaign check examples/demo-batio3.yaml
    """
    from aiida_perovskite.campaign.builder import check_campaign
    from aiida_perovskite.campaign.spec import CampaignError, load_campaign

    _load_profile()
    try:
        campaign = load_campaign(path)
        check_campaign(campaign)
    except CampaignError as exc:
        raise click.ClickException(f"{path}: {exc}") from exc
    click.secho(
        f"{path}: ok ({len(campaign.systems)} system(s), up to {campaign.max_iterations} iterations)", fg="green"
    )


@campaign.command("schema")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=pathlib.Path),
    default=None,
    help="Write the schema to this file instead of printing it.",
)
def schema(output: pathlib.Path | None) -> None:
    """The JSON Schema of campaign files, for editors that complete and check YAML.

    \b
    Example (VS Code / any editor with the YAML language server):
      aiida-perovskite campaign schema -o campaign.schema.json
      # first line of a campaign file:
      # yaml-language-server: $schema=campaign.schema.json
    """
    import json

    from aiida_perovskite.campaign.schema import campaign_schema

    text = json.dumps(campaign_schema(), indent=2) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)
        click.echo(f"wrote {output}")


@campaign.command("submit")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path))
@click.option("--training-set", type=int, default=None, help="PK of a TrainingSetData to start from instead.")
def submit_command(path: pathlib.Path, training_set: int | None) -> None:
    """Check the campaign file and submit it to the daemon; prints the campaign's PK.

    \b
    Example: submit, or continue from a relabeled training set
      aiida-perovskite campaign submit examples/batio3.yaml
      aiida-perovskite campaign submit examples/batio3.yaml --training-set 5678
    """
    _load_profile()
    _submit(path, training_set)


def _status_table(node):
    from rich.table import Table

    from aiida_perovskite.campaign.queries import iteration_records, status_rows
    from aiida_perovskite.campaign.report import STATUS_COLUMNS, format_table

    table = Table(title=f"campaign {node.label or ''} <{node.pk}>: {_state(node)}")
    for column in STATUS_COLUMNS:
        table.add_column(column, justify="left" if column == "system" else "right")
    for cells in format_table(status_rows(iteration_records(node))):
        table.add_row(*cells)
    return table


def _state(node) -> str:
    if not node.is_terminated:
        return node.process_state.value
    return f"{node.process_state.value} [{node.exit_status}]" + (f" {node.exit_message}" if node.exit_message else "")


def _activity(node) -> list[str]:
    from aiida_perovskite.campaign.queries import running_processes

    lines = []
    for process in running_processes(node):
        if process.pk == node.pk:
            continue
        extras = process.base.extras.all
        if "frames" in extras:
            frames = extras["frames"]
            extras = {**extras, "frames": frames[0] if len(frames) == 1 else f"{frames[0]} +{len(frames) - 1}"}
        where = ", ".join(
            f"{key} {extras[key]}" for key in ("iteration", "stage", "system", "frames", "temperature") if key in extras
        )
        lines.append(f"  {process.process_label}<{process.pk}> {_process_state(process)} ({where})")
    return lines


def _process_state(process) -> str:
    """A job's state with what it waits for; a paused process (AiiDA pauses a job whose upload, submission or
    retrieval failed 5 times, e.g. on a full scratch disk; the restart workchains pause when a job's disk filled
    while it ran) with its reason and how to go on."""
    if process.paused:
        return (
            f"PAUSED: {process.process_status or 'paused'} -- fix the cause (see `verdi process report {process.pk}`), "
            f"then `verdi process play {process.pk}`"
        )
    from aiida import orm

    if isinstance(process, orm.CalcJobNode) and process.process_status:
        return f"{process.process_state.value}: {process.process_status}"
    return process.process_state.value


@campaign.command("status")
@click.argument("pk", type=int)
def status(pk: int) -> None:
    """Per iteration and system: explored, accurate, candidate, failed, selected and labeled frames, test errors,
    and the processes running now.

    \b
    Example:
      aiida-perovskite campaign status 1234
    """
    _load_profile()
    node = _campaign_node(pk)
    console = _console()
    console.print(_status_table(node))
    for line in _activity(node):
        console.print(line, highlight=False)


def _progress():
    """A rich progress bar (spinner, bar, counts, elapsed time) on the console of ``_console``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_console(),
        transient=True,
    )


def _console():
    """Rich's console, 160 columns wide when the output is not a terminal (logs, CI), so the table fits."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=160)


def _watch(node, interval: float) -> None:
    from rich.console import Group
    from rich.live import Live
    from rich.text import Text

    def view():
        return Group(_status_table(node), Text("\n".join(_activity(node)) or "  (nothing running)"))

    with Live(view(), console=_console(), refresh_per_second=1) as live:
        broker = BrokerWatch(report=live.console.print)
        while not node.is_terminated:
            time.sleep(interval)
            broker.check()
            live.update(view())
        live.update(view())
    click.echo()


FRAME_TABLE_COLUMNS = {
    "iteration": "it",
    "frame": "frame",
    "origin": "origin",
    "temperature": "T (K)",
    "pressure": "P (bar)",
    "md_step": "MD step",
    "force_deviation": "deviation (eV/Å)",
    "label_pk": "label job",
    "exit_status": "exit",
    "destination": "went to",
    "message": "message",
}


@campaign.command("frames")
@click.argument("pk", type=int)
@click.option("--iteration", type=int, default=None, help="Only the frames labeled in this iteration.")
@click.option("--failed", is_flag=True, help="Only the frames whose labeling failed.")
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(dir_okay=False, path_type=pathlib.Path),
    default=None,
    help="Write every column (exploration, selection and training-set PKs included) to this CSV file.",
)
def frames(pk: int, iteration: int | None, failed: bool, csv_path: pathlib.Path | None) -> None:
    """One row per labeled (or failed) frame: where it came from and where it went.

    \b
    Example: the failed labels of iteration 3, then every frame as CSV
      aiida-perovskite campaign frames 1234 --iteration 3 --failed
      aiida-perovskite campaign frames 1234 --csv frames.csv
    The same table in Python: aiida_perovskite.campaign.frames.labeled_frames(node).
    """
    from rich.table import Table

    from aiida_perovskite.campaign.frames import labeled_frames

    _load_profile()
    node = _campaign_node(pk)
    with _console().status("tracing the labeled frames through the provenance graph"):
        table = labeled_frames(node, iteration=iteration, failed=failed)
    if csv_path is not None:
        table.to_csv(csv_path, index=False)
        click.echo(f"{len(table)} frame(s) written to {csv_path}")
        return
    view = Table(title=f"{len(table)} frame(s) of campaign {pk}")
    for title in FRAME_TABLE_COLUMNS.values():
        view.add_column(title)
    for row in table.itertuples(index=False):
        values = row._asdict()
        view.add_row(*(_cell(values[column]) for column in FRAME_TABLE_COLUMNS))
    _console().print(view)


def _cell(value) -> str:
    import pandas as pd

    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.3f}" if not value.is_integer() else f"{value:g}"
    return str(value)


@campaign.command("graph")
@click.argument("pk", type=int)
@click.argument("output", type=click.Path(dir_okay=False, path_type=pathlib.Path))
@click.option("--iteration", type=int, multiple=True, help="Only this iteration (repeat for several).")
@click.option("--step", type=int, default=None, help="PK of one step of the campaign: its full AiiDA graph.")
def graph(pk: int, output: pathlib.Path, iteration: tuple[int, ...], step: int | None) -> None:
    """Draw the campaign's provenance as a person reads it: one row per iteration (training set, ensemble,
    explorations per system and condition, selection, labeling, merge, decision) with counts and PKs.
    OUTPUT ends in .svg, .png, .pdf or .dot.

    \b
    Example: the whole campaign, iteration 3 alone, then every node of one labeling step
      aiida-perovskite campaign graph 1234 campaign.svg
      aiida-perovskite campaign graph 1234 it3.png --iteration 3
      aiida-perovskite campaign graph 1234 label.svg --step 1301
    """
    from aiida_perovskite.campaign.graph import GRAPH_FORMATS, campaign_graph, step_graph, write_graph

    if output.suffix.lstrip(".").lower() not in GRAPH_FORMATS:
        raise click.BadParameter(f"end it in {', '.join('.' + f for f in GRAPH_FORMATS)}", param_hint="OUTPUT")
    _load_profile()
    node = _campaign_node(pk)
    with _console().status("reading the provenance graph and laying it out"):
        drawn = step_graph(_step_of(node, step)) if step is not None else campaign_graph(node, iteration or None)
        written = write_graph(drawn, output)
    click.echo(f"graph: {written}")


def _step_of(campaign, pk: int):
    """A process of ``campaign`` (tagged with it, or called by it) by PK."""
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    try:
        node = orm.load_node(pk)
    except NotExistent as exc:
        raise click.ClickException(f"no node with PK {pk} in this profile") from exc
    tagged = isinstance(node, orm.ProcessNode) and node.base.extras.get("campaign", None) == campaign.uuid
    if not (tagged or any(child.pk == pk for child in campaign.called)):
        raise click.ClickException(f"node {pk} is not a step of campaign {campaign.pk}")
    return node


@campaign.command("from-dpgen")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=pathlib.Path))
def from_dpgen(files: tuple[pathlib.Path, ...]) -> None:
    """Convert a DP-GEN `run` input to a campaign file: FILES are param.json [machine.json] OUT.yaml. Every key
    that cannot be mapped is listed with the reason; check the result with `campaign check`.

    \b
    Example:
      aiida-perovskite campaign from-dpgen param.json machine.json batio3.yaml
      aiida-perovskite campaign check batio3.yaml
    """
    import json

    import yaml

    from aiida_perovskite.campaign.dpgen import convert_dpgen

    if len(files) not in (2, 3):
        raise click.UsageError("give param.json, optionally machine.json, and the output file")
    *inputs, output = files
    for path in inputs:
        if not path.is_file():
            raise click.BadParameter(f"no file {path}", param_hint="FILES")
    try:
        param, *machine = (json.loads(path.read_text()) for path in inputs)
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"not JSON: {exc}") from exc
    campaign, warnings = convert_dpgen(param, machine[0] if machine else None, inputs[0].resolve().parent)
    header = [f"# Converted from {', '.join(str(p) for p in inputs)} by `aiida-perovskite campaign from-dpgen`."]
    header += [f"# not converted: {warning}" for warning in warnings]
    output.write_text("\n".join(header) + "\n" + yaml.safe_dump(campaign, sort_keys=False, width=100))
    for warning in warnings:
        click.secho(f"warning: {warning}", fg="yellow", err=True)
    click.echo(f"campaign file: {output} ({len(campaign['systems'])} system(s), {len(warnings)} warning(s))")


@campaign.command("watch")
@click.argument("pk", type=int)
@click.option("--interval", type=float, default=5.0, show_default=True, help="Seconds between refreshes.")
def watch(pk: int, interval: float) -> None:
    """Live progress (the status table, refreshed) until the campaign terminates.

    \b
    Example: refresh every 30 s
      aiida-perovskite campaign watch 1234 --interval 30
    """
    _load_profile()
    _watch(_campaign_node(pk), interval)


@campaign.command("run")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path))
@click.option(
    "--report",
    "report_dir",
    type=click.Path(file_okay=False, path_type=pathlib.Path),
    default=None,
    help="Where to write the report (default: <campaign name>-report).",
)
@click.option("--interval", type=float, default=5.0, show_default=True)
def run(path: pathlib.Path, report_dir: pathlib.Path | None, interval: float) -> None:
    """Submit a campaign, watch it to the end and write its report (the README's main job).

    \b
    Example:
      aiida-perovskite campaign run examples/demo-batio3.yaml --report demo-report
    """
    from aiida_perovskite.campaign.report import write_report

    _load_profile()
    started = time.monotonic()
    node = _submit(path, None)
    _watch(node, interval)
    report = write_report(node, report_dir or pathlib.Path(f"{node.label or 'campaign'}-report"))
    minutes = (time.monotonic() - started) / 60
    click.echo(f"report: {report} ({minutes:.1f} min)")
    _finish(node)


def _finish(node) -> None:
    from aiida_perovskite.workflows.concurrent_learning import ConcurrentLearningWorkChain

    not_converged = ConcurrentLearningWorkChain.exit_codes.ERROR_NOT_CONVERGED.status
    if node.is_finished_ok:
        click.secho("converged", fg="green")
    elif node.exit_status == not_converged:
        click.secho(f"finished without converging: {node.exit_message}", fg="yellow")
    else:
        raise click.ClickException(f"campaign <{node.pk}> {_state(node)}; see `verdi process report {node.pk}`")


@campaign.command("report")
@click.argument("pk", type=int)
@click.argument("directory", type=click.Path(file_okay=False, path_type=pathlib.Path))
def report_command(pk: int, directory: pathlib.Path) -> None:
    """Figures (learning curves, deviation histograms, frame classes, held-out errors) and a markdown summary in
    DIRECTORY; works while the campaign runs.

    \b
    Example:
      aiida-perovskite campaign report 1234 report-1234
    """
    from aiida_perovskite.campaign.report import write_report

    _load_profile()
    node = _campaign_node(pk)
    with _console().status("reading the provenance graph and drawing the figures"):
        report = write_report(node, directory)
    click.echo(f"report: {report}")


@campaign.command("export")
@click.argument("pk", type=int)
@click.argument("directory", type=click.Path(file_okay=False, path_type=pathlib.Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["deepmd/npy", "deepmd/hdf5", "extxyz"]),
    default="deepmd/npy",
    show_default=True,
)
@click.option("--model", "chosen", multiple=True, help="Only these models, e.g. --model model_0 [default: all].")
@click.option("--no-compressed", is_flag=True, help="Leave the compressed models out (they are large).")
def export(pk: int, directory: pathlib.Path, fmt: str, chosen: tuple[str, ...], no_compressed: bool) -> None:
    """The final training set and held-out set (in FORMAT) and models of a campaign, with its history and a
    provenance summary (provenance.json: campaign, teacher or engine, settings, content and model hashes,
    learning curve) for readers without the database.

    \b
    Example: data for `dp train` elsewhere, or for ASE; the final model alone
      aiida-perovskite campaign export 1234 export-1234
      aiida-perovskite campaign export 1234 export-1234 --format extxyz
      aiida-perovskite campaign export 1234 student --model model_0 --no-compressed
    """
    import json

    from aiida_perovskite.campaign.queries import provenance_summary

    _load_profile()
    node = _campaign_node(pk)
    if "training_set" not in node.outputs:
        raise click.ClickException(f"campaign <{pk}> has no training set yet ({_state(node)})")
    known = sorted(getattr(node.outputs, "models", {}))
    if unknown := sorted(set(chosen) - set(known)):
        raise click.BadParameter(f"no model {unknown} in campaign <{pk}>; it has {known}", param_hint="--model")
    directory.mkdir(parents=True, exist_ok=True)
    suffix = {"deepmd/npy": "", "deepmd/hdf5": ".hdf5", "extxyz": ".extxyz"}[fmt]
    for name in ("training_set", "held_out_set"):
        if name in node.outputs:
            data = node.outputs[name].export(directory / f"{name}{suffix}", fmt)
            click.echo(f"{name.replace('_', ' ')} ({node.outputs[name].nframes} frames): {data}")
    for namespace in ("models",) if no_compressed else ("models", "compressed_models"):
        for name, model in sorted(getattr(node.outputs, namespace, {}).items()):
            if chosen and name not in chosen:
                continue
            suffix = ".pth" if model.dp_backend == "pytorch" else ".pb"
            click.echo(f"{namespace}.{name}: {model.write(directory / namespace, name + suffix)}")
    if "history" in node.outputs:
        (directory / "history.json").write_text(json.dumps(node.outputs.history.get_list(), indent=1))
    (directory / "provenance.json").write_text(json.dumps(provenance_summary(node), indent=1, default=str))
    click.echo(f"provenance summary: {directory / 'provenance.json'}")


@campaign.command("relabel")
@click.argument("pk", type=int)
@click.option(
    "--overrides",
    type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path),
    default=None,
    help="YAML with input overrides of the labeling processes (e.g. more SCF steps).",
)
@click.option("--timeout", type=float, default=24 * 3600, show_default=True, help="Seconds to wait for the jobs.")
def relabel_command(pk: int, overrides: pathlib.Path | None, timeout: float) -> None:
    """Re-run the failed labeling jobs of a campaign (finished work is kept) and write an updated training set.

    The daemon runs it as a RelabelWorkChain (stage 'relabel' of the campaign), so the recovered frames trace
    back to it. Continue the campaign from the updated set with `campaign submit FILE --training-set PK`.

    \b
    Example: as they were, then CP2K jobs with more SCF steps, overrides.yaml holding
      {cp2k: {parameters: {FORCE_EVAL: {DFT: {SCF: {MAX_SCF: 200}}}}}}
      aiida-perovskite campaign relabel 1234
      aiida-perovskite campaign relabel 1234 --overrides overrides.yaml
    """
    import yaml

    from aiida_perovskite.workflows.relabel import relabel_campaign

    _load_profile()
    node = _campaign_node(pk)
    values = yaml.safe_load(overrides.read_text()) if overrides else None
    with _progress() as bar:
        task = bar.add_task("relabeling", total=None)

        def report(line: str) -> None:
            bar.console.print(line, highlight=False)
            bar.reset(task, total=None, description="waiting for the jobs")

        def progress(finished: int, total: int) -> None:
            bar.update(task, completed=finished, total=total, description=f"{finished} of {total} job(s) finished")

        try:
            updated, recovered, still_failed = relabel_campaign(
                node, values, timeout=timeout, report=report, progress=progress
            )
        except (RuntimeError, TimeoutError) as error:
            raise click.ClickException(str(error)) from error
    click.echo(f"recovered {recovered} frame(s); {len(still_failed)} still failing")
    for name, job in sorted(still_failed.items()):
        click.echo(f"  {name}: {job.process_label}<{job.pk}> exit {job.exit_status} {job.exit_message or ''}")
    if updated is not None:
        click.secho(f"updated training set: TrainingSetData<{updated.pk}> ({updated.nframes} frames)", fg="green")
