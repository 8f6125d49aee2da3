"""``aiida-perovskite phase-diagram``: a temperature-driven phase diagram of a Deep Potential in one command,
and its table (phases, transition brackets, heating/cooling hysteresis)."""

from __future__ import annotations

import pathlib

import click

from aiida_perovskite.cli.root import cli
from aiida_perovskite.cli.root import load_aiida_profile as _load_profile
from aiida_perovskite.loop.settings import protocol_default
from aiida_perovskite.protocols import available_protocols, load_protocol

POLAR_START = 0.1  # Å of B-cation displacement along the polar axis of a polar starting cell


def _ladder(text: str) -> list[float]:
    """``20,60,100`` or ``20:400:40`` (start:stop:step, stop included) in K."""
    try:
        if ":" in text:
            start, stop, step = (float(v) for v in text.split(":"))
            if step <= 0 or stop < start:
                raise ValueError
            count = round((stop - start) / step) + 1
            return [round(start + i * step, 6) for i in range(count)]
        return [float(v) for v in text.split(",")]
    except ValueError as exc:
        raise click.BadParameter(f"give 20,60,100 or 20:400:40 (K), got {text!r}", param_hint="--temperatures") from exc


def _model(reference: str):
    """A DeepPotentialData from a campaign (its final compressed model_0), a model node or a model file."""
    from aiida import orm
    from aiida.common.exceptions import MultipleObjectsError, NotExistent

    from aiida_perovskite.campaign.queries import final_model
    from aiida_perovskite.data import DeepPotentialData

    path = pathlib.Path(reference)
    if path.suffix in (".pb", ".pth"):
        if not path.is_file():
            raise click.BadParameter(f"no model file at {path}", param_hint="MODEL")
        try:
            return DeepPotentialData(path)  # stored with the other inputs when submitted
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="MODEL") from exc
    try:
        node = orm.load_node(reference)  # a PK or a UUID (after `verdi archive import`)
    except (ValueError, NotExistent, MultipleObjectsError) as exc:
        raise click.BadParameter(
            f"{reference!r} is neither a PK or UUID of this profile nor a .pb/.pth file", param_hint="MODEL"
        ) from exc
    if isinstance(node, DeepPotentialData):
        return node
    if getattr(node, "process_label", None) == "ConcurrentLearningWorkChain":
        found = final_model(node)
        if found is None:
            raise click.BadParameter(f"campaign {node.pk} has no models yet", param_hint="MODEL")
        return found
    raise click.BadParameter(
        f"node {node.pk} is a {type(node).__name__}, not a model or a campaign", param_hint="MODEL"
    )


@cli.group("phase-diagram")
def phase_diagram() -> None:
    """Temperature-driven phase diagrams from NPT MD with a Deep Potential (perovskite.phase_diagram)."""


@phase_diagram.command("submit")
@click.argument("model")
@click.option("--temperatures", "-T", required=True, help="The ladder (K): 20,60,100 or 20:400:40.")
@click.option(
    "--mode",
    type=click.Choice(["both", "heating", "cooling", "independent"]),
    default="both",
    show_default=True,
    help="both: a heating ladder from the polar rhombohedral cell and a cooling ladder from the cubic cell.",
)
@click.option("--perovskite", default="BaTiO3", show_default=True, help="An ABO3 formula.")
@click.option(
    "--phase",
    type=click.Choice(["cubic", "tetragonal", "orthorhombic", "rhombohedral"]),
    help="Starting phase of every ladder [default: rhombohedral when heating, cubic when cooling].",
)
@click.option("--repeat", nargs=3, type=int, default=(4, 4, 4), show_default=True, help="Supercell of the 5-atom cell.")
@click.option(
    "--protocol",
    type=click.Choice(list(available_protocols("phase_diagram"))),
    default=None,
    help="MD of each rung (protocols/phase_diagram.yaml) [default: balanced].",
)
@click.option("--equilibration-steps", type=int, default=None, help="Override the protocol's.")
@click.option("--production-steps", type=int, default=None, help="Override the protocol's.")
@click.option("--sampling-interval", type=int, default=None, help="Steps between analysed frames.")
@click.option("--blocks", type=int, default=None, help="Blocks of the production for the error bars.")
@click.option("--pressure", default=1.0, show_default=True, help="bar")
@click.option(
    "--code",
    default=protocol_default("exploration", "code"),
    show_default=True,
    help="LAMMPS with the DeePMD plugin.",
)
@click.option("--seed", default=1, show_default=True, help="Velocity seeds derive from it.")
def submit(
    model,
    temperatures,
    mode,
    perovskite,
    phase,
    repeat,
    protocol,
    equilibration_steps,
    production_steps,
    sampling_interval,
    blocks,
    pressure,
    code,
    seed,
) -> None:
    """Submit the phase diagram of MODEL: a campaign (its final compressed model) or a model, by PK or UUID, or a
    frozen model file (.pb, .pth), which is stored.

    \b
    Example: heating and cooling a 6x6x6 BaTiO3 supercell from 20 to 400 K with a campaign's model
      aiida-perovskite phase-diagram submit 1234 -T 20:400:20 --repeat 6 6 6
      aiida-perovskite phase-diagram show 1240 1241
    """
    from aiida import orm
    from aiida.engine import submit as submit_process

    from aiida_perovskite.structures import parent_cell
    from aiida_perovskite.workflows.phase_diagram import PhaseDiagramWorkChain, ladder_error, protocol_error

    _load_profile()
    ladder = sorted(_ladder(temperatures))
    given = {
        "equilibration_steps": equilibration_steps,
        "production_steps": production_steps,
        "sampling_interval": sampling_interval,
        "blocks": blocks,
    }
    overrides = {key: value for key, value in given.items() if value is not None}
    if error := protocol_error(load_protocol("phase_diagram", protocol, overrides), ladder, pressure):
        raise click.UsageError(error)
    try:
        lammps = orm.load_code(code)
    except Exception as exc:  # NotExistent, MultipleObjectsError: one message for both
        raise click.BadParameter(
            f"{code}: {exc} (aiida-perovskite setup registers {protocol_default('exploration', 'code')})",
            param_hint="--code",
        ) from exc
    potential = _model(model)
    runs = {"both": ["heating", "cooling"]}.get(mode, [mode])
    for run in runs:
        ordered = ladder[::-1] if run == "cooling" else ladder
        if error := ladder_error(ordered, run):
            raise click.BadParameter(error, param_hint="--temperatures")
        start = phase or ("cubic" if run == "cooling" else "rhombohedral")
        try:
            atoms = parent_cell(perovskite, start, displacement=0.0 if start == "cubic" else POLAR_START)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--perovskite") from exc
        builder = PhaseDiagramWorkChain.get_builder_from_protocol(
            lammps,
            potential,
            orm.StructureData(ase=atoms.repeat(tuple(repeat))),
            ordered,
            protocol,
            overrides,
            mode=run,
            repeats=tuple(repeat),
            pressure=pressure,
            seed=seed,
        )
        builder.metadata.label = f"{perovskite} {run} {'x'.join(map(str, repeat))}"
        node = submit_process(builder)
        node.base.extras.set_many({"stage": "phase_diagram", "model": potential.uuid, "mode": run})
        click.echo(f"{run}: PhaseDiagramWorkChain<{node.pk}> ({len(ordered)} temperatures from {start})")


def _phase_diagram_node(pk: int):
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    try:
        node = orm.load_node(pk)
    except NotExistent as exc:
        raise click.ClickException(f"no node with PK {pk} in this profile") from exc
    if getattr(node, "process_label", None) != "PhaseDiagramWorkChain":
        raise click.ClickException(f"node {pk} is not a PhaseDiagramWorkChain")
    return node


def _row_text(row: dict) -> str:
    lattice = " ".join(f"{v:.4f}" for v in row["lattice"])
    angles = " ".join(f"{v:.2f}" for v in row["angles"])
    polar = " ".join(f"{v:+.3f}" for v in row.get("polar_vector", [])) or "-"
    sorted_polar = " ".join(f"{v:.3f}" for v in row.get("polar_magnitudes", [])) or "-"
    return (
        f"{row['temperature']:7.1f}  {row['phase']:10s} {row['phase_from_lattice']:10s} {lattice}  {angles}  "
        f"{polar}  {sorted_polar}"
    )


@phase_diagram.command("show")
@click.argument("pks", nargs=-1, type=int, required=True)
def show(pks: tuple[int, ...]) -> None:
    """Per temperature: phase (from the polar vector and from the lattice), pseudocubic lattice (Å), angles (°),
    the mean B-cation displacement (Å) and the averages of its magnitudes sorted frame by frame, which decide the
    phase (analysis/phases.py); the transitions with their brackets, and the hysteresis between a
    heating and a cooling ladder.

    \b
    Example:
      aiida-perovskite phase-diagram show 1240 1241
    """
    from aiida_perovskite.analysis.phases import hysteresis

    _load_profile()
    ladders = {}
    for pk in pks:
        node = _phase_diagram_node(pk)
        if "table" not in node.outputs:
            raise click.ClickException(f"PhaseDiagramWorkChain<{pk}> has no table ({node.process_state.value})")
        table = node.outputs.table.get_dict()
        mode = node.inputs.mode.value
        ladders[mode] = table
        click.secho(f"{node.label or mode} <{pk}>", bold=True)
        click.echo(
            "      T  phase      lattice    a b c (Å)                 angles (°)             polar (Å)"
            "                |p| sorted per frame (Å)"
        )
        for row in table["rows"]:
            click.echo(_row_text(row))
        for found in table["transitions"]:
            low, high = found["between"]
            click.echo(f"  {found['from']} -> {found['to']} between {low:g} and {high:g} K")
    if "heating" in ladders and "cooling" in ladders:
        for row in hysteresis(ladders["heating"]["transitions"], ladders["cooling"]["transitions"]):
            click.echo(
                f"hysteresis {row['pair']}: heating {row['heating']:g} K, cooling {row['cooling']:g} K, "
                f"width {row['width']:g} K"
            )


@phase_diagram.command("polarization")
@click.argument("pk", type=int)
@click.option(
    "--temperature",
    "-T",
    "temperatures",
    type=float,
    multiple=True,
    required=True,
    help="A temperature of the ladder (repeat for several).",
)
@click.option(
    "--born-charges",
    default=None,
    help="Built-in Born charges (e.g. BaTiO3) [default: those of the structure's formula, if any].",
)
@click.option("--wait", is_flag=True, help="Wait for the analyses and print their statistics.")
def polarization(pk: int, temperatures: tuple[float, ...], born_charges: str | None, wait: bool) -> None:
    """Local-polarization analysis (perovskite.polarization) of the production frames of the runs of phase
    diagram PK at the given temperatures: per-element displacements, TAID, per-cell phase fractions and the
    Born-charge polarization.

    \b
    Example:
      aiida-perovskite phase-diagram polarization 1240 -T 20 -T 200 --wait
    """
    import time

    from aiida import orm
    from aiida.engine import submit as submit_process

    from aiida_perovskite.analysis.polarization import BORN_CHARGES
    from aiida_perovskite.loop.settings import PhaseDiagramMd
    from aiida_perovskite.workflows.phase_diagram import runs_by_temperature
    from aiida_perovskite.workflows.polarization import PolarizationWorkChain

    _load_profile()
    node = _phase_diagram_node(pk)
    runs = runs_by_temperature(node)
    missing = [t for t in temperatures if t not in runs]
    if missing:
        raise click.BadParameter(
            f"no finished run at {missing} K; finished: {sorted(runs)}", param_hint="--temperature"
        )
    formula = node.inputs.structure.get_ase().get_chemical_formula(empirical=True)
    born = born_charges or next((name for name in BORN_CHARGES if _same_formula(name, formula)), None)
    if born is not None and born not in BORN_CHARGES:
        raise click.BadParameter(
            f"no built-in Born charges for {born!r}; known: {sorted(BORN_CHARGES)}", param_hint="--born-charges"
        )
    first = PhaseDiagramMd.model_validate(node.inputs.protocol.get_dict()).first_production_frame
    settings = {"frames": {"start": first}, "repeats": node.inputs.repeats.get_list()}
    if born is not None:
        settings["born_charges"] = born
    analyses = {}
    for temperature in temperatures:
        child = submit_process(
            PolarizationWorkChain, trajectory=runs[temperature].outputs.trajectory, settings=orm.Dict(settings)
        )
        child.base.extras.set_many({"stage": "polarization", "temperature": temperature, "phase_diagram": node.uuid})
        analyses[temperature] = child
        click.echo(f"{temperature:g} K: PolarizationWorkChain<{child.pk}>")
    if not wait:
        return
    while not all(child.is_terminated for child in analyses.values()):
        time.sleep(2)
    for temperature, child in analyses.items():
        if not child.is_finished_ok:
            raise click.ClickException(f"PolarizationWorkChain<{child.pk}> failed: {child.exit_message}")
        click.echo(_statistics_text(temperature, child.outputs.statistics.get_dict()))


def _same_formula(name: str, formula: str) -> bool:
    from ase.formula import Formula

    return Formula(name).reduce()[0] == Formula(formula).reduce()[0]


def _statistics_text(temperature: float, statistics: dict) -> str:
    lines = [f"{temperature:g} K ({statistics['frames']} frames)"]
    for element, values in statistics["elements"].items():
        vector = " ".join(f"{v:+.3f}" for v in values["mean_vector"])
        lines.append(f"  {element:3s} mean displacement ({vector}) Å, TAID {values['taid']:.3f} Å")
    fractions = ", ".join(f"{k} {v:.2f}" for k, v in statistics["cell_phase_fractions"].items())
    lines.append(f"  per-cell phases: {fractions}")
    if "polarization_mean" in statistics:
        vector = " ".join(f"{v:+.3f}" for v in statistics["polarization_mean"])
        lines.append(f"  polarization ({vector}) C/m², |P| {statistics['polarization_magnitude']:.3f} C/m²")
    return "\n".join(lines)
