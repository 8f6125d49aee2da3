"""A campaign's provenance at the level a person thinks in: one box per iteration, left to right training set ->
ensemble -> explorations per system (a line per MD condition) -> selection -> labeling -> merge -> convergence
decision, with counts and PKs on the nodes, read from the provenance graph; systems stack inside an iteration and
iterations stack downwards. The full AiiDA graph of one step is ``step_graph``."""

from __future__ import annotations

import html
import pathlib
from collections.abc import Iterable

import graphviz
from aiida import orm

from aiida_perovskite.campaign.queries import iteration_records, test_errors
from aiida_perovskite.tags import campaign_processes

__all__ = ("GRAPH_FORMATS", "campaign_graph", "step_graph", "write_graph")

GRAPH_FORMATS = ("svg", "png", "pdf", "dot")
_FAILED = "#c0392b"
_DONE = "#1e8449"
_RUNNING = "#b9770e"
_STYLE = {
    "data": {"shape": "ellipse", "style": "filled", "fillcolor": "#eaf2f8"},
    "process": {"shape": "box", "style": "rounded,filled", "fillcolor": "#fdfefe"},
    "decision": {"shape": "box", "style": "filled,diagonals", "fillcolor": "#fef9e7"},
}


def campaign_graph(campaign: orm.WorkChainNode, iterations: Iterable[int] | None = None) -> graphviz.Digraph:
    """The campaign as boxes of iterations (all, or only ``iterations``), the initial data before the first and the
    final training and analyses after the last."""
    wanted = None if iterations is None else set(iterations)
    steps = _steps_by_iteration(campaign)
    records = {record["iteration"]: record for record in iteration_records(campaign)}
    graph = graphviz.Digraph(
        name=f"campaign_{campaign.pk}",
        graph_attr={
            "rankdir": "LR",
            "nodesep": "0.25",
            "ranksep": "0.45",
            "fontname": "Helvetica",
            "label": html.escape(f"{campaign.label or 'campaign'} <{campaign.pk}>: {_state(campaign)}"),
            "labelloc": "t",
        },
        node_attr={"fontname": "Helvetica", "fontsize": "10"},
        edge_attr={"color": "#7f8c8d", "arrowsize": "0.6"},
    )
    init = _only(steps.get("init_data", {}).get(0, []))
    if init is not None and (wanted is None or 0 in wanted):
        _process_node(graph, init, "initial data", _init_lines(init))
    summaries = {  # each iteration's summarise_iteration node: its inputs hold the selection and the decision
        node.inputs.iteration.value: node
        for node in campaign.called
        if node.process_label == "summarise_iteration" and node.is_finished_ok
    }
    shown = sorted(iteration for iteration in steps.get("train", {}) if wanted is None or iteration in wanted)
    for iteration in shown:
        _iteration_row(
            graph,
            campaign,
            iteration,
            steps,
            records.get(iteration),
            summaries.get(iteration),
            init if iteration == 0 else None,
        )
    if wanted is None:
        _final_row(graph, campaign, steps)
    return graph


def write_graph(graph: graphviz.Digraph, path: pathlib.Path) -> pathlib.Path:
    """Write ``graph`` in the format named by the suffix of ``path`` (svg, png, pdf, or dot for the source)."""
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in GRAPH_FORMATS:
        raise ValueError(f"{path.name}: the suffix must be one of {', '.join('.' + f for f in GRAPH_FORMATS)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "dot":
        path.write_text(graph.source)
    else:
        path.write_bytes(graph.pipe(format=fmt))
    return path


def step_graph(process: orm.ProcessNode) -> graphviz.Digraph:
    """The full AiiDA provenance of one step: its inputs, every process it called and every node they created."""
    from aiida.tools.visualization import Graph

    graph = Graph(graph_attr={"rankdir": "TB"})
    graph.recurse_ancestors(process, depth=1, annotate_links="both")
    graph.recurse_descendants(
        process,
        link_types=("call_calc", "call_work", "create", "return"),  # not on into the steps that used the outputs
        annotate_links="both",
        include_process_inputs=True,
    )
    return graph.graphviz


def _steps_by_iteration(campaign: orm.WorkChainNode) -> dict[str, dict[int, list[orm.ProcessNode]]]:
    """The campaign's tagged steps by stage and iteration."""
    steps: dict[str, dict[int, list[orm.ProcessNode]]] = {}
    for node in campaign_processes(campaign):
        stage, iteration = node.base.extras.get("stage", None), node.base.extras.get("iteration", None)
        if node.process_label in _STEP_LABELS.get(stage, ()):
            steps.setdefault(stage, {}).setdefault(iteration, []).append(node)
    return steps


_STEP_LABELS = {
    "init_data": ("InitDataWorkChain",),
    "train": ("TrainEnsembleWorkChain",),
    "explore": ("ExploreWorkChain",),
    "label": ("LabelWorkChain",),
    "final_training": ("TrainEnsembleWorkChain",),
    "phase_diagram": ("PhaseDiagramWorkChain",),
    "polarization": ("PolarizationWorkChain",),
}


def _iteration_row(graph, campaign, iteration: int, steps: dict, record: dict | None, summary, init) -> None:
    with graph.subgraph(name=f"cluster_{iteration}") as row:
        row.attr(label=f"iteration {iteration}", labeljust="l", fontsize="14", color="#d5d8dc")
        training = _only(steps["train"][iteration])
        training_set = training.inputs.training_set
        held = f" (+{record['held_out_frames']} held out)" if record and record.get("held_out_frames") else ""
        _data_node(row, training_set, "training set", [f"{training_set.nframes} frames{held}"])
        _process_node(row, training, "ensemble", _ensemble_lines(training, record))
        row.edge(_id(training_set), _id(training))
        label = _only(steps.get("label", {}).get(iteration, []))
        for explore in sorted(steps.get("explore", {}).get(iteration, []), key=lambda n: n.base.extras.get("system")):
            system = explore.base.extras.get("system")
            _exploration_node(row, explore, system)
            row.edge(_id(training), _id(explore))
            selection = _selection_of(explore)
            if selection is not None:
                values = (record or {}).get("systems", {}).get(system, {})
                _process_node(row, selection, f"select {system}", _selection_lines(values))
                row.edge(_id(explore), _id(selection))
                if label is not None:
                    row.edge(_id(selection), _id(label))
        if label is not None:
            _process_node(row, label, f"label: {label.inputs.engine.value}", _label_lines(record))
        if summary is None:
            return
        decision = summary.inputs.decision
        merged = _merge_of(campaign, steps, iteration)
        last = _id(label) if label is not None else _id(training)
        if merged is not None and merged.creator is not None:
            _process_node(row, merged.creator, "merge", [f"{merged.nframes} frames"])
            row.edge(last, _id(merged.creator))
            last = _id(merged.creator)
            graph.edge(_id(merged.creator), _id(merged), constraint="false")
        _decision_node(row, decision)
        row.edge(last, _id(decision))
    if init is not None:
        graph.edge(_id(init), _id(training_set))


def _final_row(graph, campaign, steps: dict) -> None:
    """The final training (if asked for) and the analyses of the final models (those of the last ensemble
    when there was no final training)."""
    final = _only([node for nodes in steps.get("final_training", {}).values() for node in nodes])
    analyses = [
        (node, title)
        for stage, title in (("phase_diagram", "phase diagram"), ("polarization", "polarization"))
        for nodes in steps.get(stage, {}).values()
        for node in nodes
    ]
    if final is None and not analyses:
        return
    with graph.subgraph(name="cluster_final") as row:
        row.attr(label="final", labeljust="l", fontsize="14", color="#d5d8dc")
        if final is not None:
            training_set = final.inputs.training_set
            _data_node(row, training_set, "training set", [f"{training_set.nframes} frames"])
            _process_node(row, final, "final ensemble", _ensemble_lines(final, None))
            row.edge(_id(training_set), _id(final))
        for node, title in analyses:
            _process_node(row, node, title, [])
            if final is not None:
                row.edge(_id(final), _id(node))
    if final is None:
        last = _only([node for nodes in steps.get("train", {}).values() for node in nodes])
        for node, _ in analyses:
            graph.edge(_id(last), _id(node), constraint="false")


def _merge_of(campaign, steps: dict, iteration: int):
    """The training set the labels of ``iteration`` were merged into: the next ensemble's input (or the
    campaign's output after the last iteration)."""
    following = steps.get("train", {}).get(iteration + 1) or steps.get("final_training", {}).get(iteration + 1)
    if following:
        return _only(following).inputs.training_set
    return campaign.outputs.training_set if "training_set" in campaign.outputs else None


def _selection_of(explore: orm.WorkflowNode):
    return next((node for node in explore.called if node.process_label == "select_candidates"), None)


def _only(nodes: list):
    """The last launched of a step (a step re-run after a failure keeps its earlier attempt in the graph)."""
    return max(nodes, key=lambda node: node.ctime) if nodes else None


def _id(node: orm.Node) -> str:
    return f"n{node.pk}"


def _state(node: orm.ProcessNode) -> str:
    if node.exit_status is None:  # running, or killed / excepted without an exit status
        return node.process_state.value
    return f"{node.process_state.value} [{node.exit_status}]"


def _color(node: orm.ProcessNode) -> str:
    if not node.is_terminated:
        return _RUNNING
    return _DONE if node.is_finished_ok else _FAILED


def _label(title: str, lines: list[str], footer: str) -> str:
    body = "".join(f"<BR/>{html.escape(line)}" for line in lines)
    return f'<<B>{html.escape(title)}</B>{body}<BR/><FONT POINT-SIZE="8">{html.escape(footer)}</FONT>>'


def _process_node(graph, node: orm.ProcessNode, title: str, lines: list[str]) -> None:
    failed = [] if not node.is_terminated or node.is_finished_ok else [_state(node)]
    graph.node(
        _id(node),
        _label(title, lines + failed, f"{node.process_label}<{node.pk}>"),
        color=_color(node),
        **_STYLE["process"],
    )


def _data_node(graph, node: orm.Data, title: str, lines: list[str]) -> None:
    graph.node(_id(node), _label(title, lines, f"{type(node).__name__}<{node.pk}>"), **_STYLE["data"])


def _decision_node(graph, decision: orm.Dict) -> None:
    values = decision.get_dict()
    verdict = "converged" if values.get("converged") else ("stop" if values.get("finished") else "continue")
    fractions = ", ".join(f"{s} {f:.2f}" for s, f in sorted(values.get("accurate_fractions", {}).items()))
    lines = [f"accurate fraction {fractions} (≥ {values['threshold']:g})"] if fractions else []
    if values.get("force_rmse") is not None:
        lines.append(f"test force RMSE {values['force_rmse']:.3f} eV/Å")
    graph.node(
        _id(decision),
        _label(verdict, lines, f"check_convergence<{decision.creator.pk}>"),
        color=_DONE if values.get("converged") else "#7f8c8d",
        **_STYLE["decision"],
    )


def _exploration_node(graph, explore: orm.WorkflowNode, system: str) -> None:
    """One node per system: a table of its MD runs with conditions, frames sampled and PKs."""
    runs = sorted(
        (node for node in explore.called if node.process_label == "LammpsExploreCalculation"),
        key=lambda node: (node.base.extras.get("temperature", 0), node.base.extras.get("pressure", 0)),
    )
    rows = "".join(_run_row(run) for run in runs)
    title = html.escape(f"explore {system}")
    footer = html.escape(f"{explore.process_label}<{explore.pk}>")
    table = (
        f'<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="1"><TR><TD COLSPAN="3"><B>{title}</B></TD></TR>{rows}'
        f'<TR><TD COLSPAN="3"><FONT POINT-SIZE="8">{footer}</FONT></TD></TR></TABLE>>'
    )
    graph.node(_id(explore), table, color=_color(explore), **_STYLE["process"])


def _run_row(run: orm.CalcJobNode) -> str:
    parameters = run.inputs.parameters.get_dict() if "parameters" in run.inputs else {}
    conditions = f"{parameters.get('temperature', '?')} K"
    if parameters.get("pressure") is not None and str(parameters.get("ensemble", "")).startswith("npt"):
        conditions += f", {parameters['pressure']:g} bar"
    color = "black" if run.is_finished_ok else _color(run)
    cells = (conditions, str(parameters.get("ensemble", "")), f"<{run.pk}>" + ("" if run.is_finished_ok else " failed"))
    return (
        "<TR>"
        + "".join(f'<TD ALIGN="LEFT"><FONT COLOR="{color}">{html.escape(c)}</FONT></TD>' for c in cells)
        + ("</TR>")
    )


def _init_lines(init: orm.WorkflowNode) -> list[str]:
    if "training_set" not in init.outputs:
        return []
    return [f"{init.outputs.training_set.nframes} labeled frames"]


def _ensemble_lines(training: orm.WorkflowNode, record: dict | None) -> list[str]:
    lines = [f"{training.inputs.num_models.value} models"]
    if record:
        errors = [v["rmse_f_trn"] for v in record["training_errors"].values() if v.get("rmse_f_trn") is not None]
        if errors:
            lines.append(f"train force RMSE {sum(errors) / len(errors):.3f} eV/Å")
        test = test_errors(record)
        if test:
            lines.append(f"test force RMSE {test['force_rmse']:.3f} eV/Å")
    return lines


def _selection_lines(values: dict) -> list[str]:
    if not values:
        return []
    return [
        f"accurate {values['accurate']}, candidate {values['candidate']}, failed {values['failed']}"
        f" of {values['explored']}",
        f"selected {values['selected']}",
    ]


def _label_lines(record: dict | None) -> list[str]:
    if record is None:
        return []
    return [f"{record['labeled']} labeled, {record['failed_labels']} failed"]
