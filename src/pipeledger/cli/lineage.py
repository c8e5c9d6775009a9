"""``pipeledger lineage ARTIFACT``: draw or export an artifact's lineage."""

from __future__ import annotations

import io
import json
from pathlib import Path

import click
from rich.console import Console
from rich.tree import Tree

from pipeledger.cli.output import console, esc
from pipeledger.client import Client
from pipeledger.exceptions import PipeledgerError
from pipeledger.lineage.graph import LineageGraph, LineageNode
from pipeledger.lineage.render import render_graphviz

FORMATS = ["text", "json", "dot", "svg", "png", "html", "openlineage"]
BINARY = {"png"}
Neighbours = dict[str, list[tuple[str, str]]]  # node id -> (next node id, edge name)


def _describe(node: LineageNode) -> str:
    a = node.attributes
    if node.kind == "step":
        return f"[bold]{esc(node.name)}[/bold] step, {a.get('status')}, run {esc(a.get('run'))}"
    return f"[cyan]{esc(node.name)}[/cyan] {esc(a.get('type'))} {esc(a.get('data_type'))} [dim]{node.id}[/dim]"


def text_tree(graph: LineageGraph, downstream: bool, both: bool = False) -> Tree:
    """The graph as a tree from its root, following edges against (upstream) or with the data flow
    (downstream); with ``both``, the root's sources and then its descendants. A node reached again
    (through another branch of a diamond) is shown once more but not expanded again."""
    forward: Neighbours = {}
    backward: Neighbours = {}
    for edge in graph.edges:
        forward.setdefault(edge.source, []).append((edge.target, edge.name))
        backward.setdefault(edge.target, []).append((edge.source, edge.name))
    root = graph.root or (graph.nodes[0].id if graph.nodes else "")
    tree = Tree(_describe(graph.node(root)) if root in graph else "(empty)")
    walks = [(backward, "←"), (forward, "→")] if both else [(forward, "→")] if downstream else [(backward, "←")]
    for neighbours, arrow in walks:
        expanded = {root}
        stack = [(tree, child, label) for child, label in reversed(neighbours.get(root, []))]
        while stack:  # depth first, in display order (no recursion: lineage can be deep)
            branch, node_id, label = stack.pop()
            text = f"[dim]{label}[/dim] {arrow} {_describe(graph.node(node_id))}"
            if node_id in expanded:
                branch.add(text + " [dim](see above)[/dim]")
                continue
            expanded.add(node_id)
            sub = branch.add(text)
            stack.extend((sub, child, name) for child, name in reversed(neighbours.get(node_id, [])))
    return tree


def render(graph: LineageGraph, fmt: str, downstream: bool = False) -> str | bytes:
    """The graph in one of :data:`FORMATS` (svg/png need Graphviz)."""
    if fmt == "json":
        return graph.to_json() + "\n"
    if fmt == "dot":
        return graph.to_dot()
    if fmt in ("svg", "png"):
        data = render_graphviz(graph.to_dot(), fmt)
        return data if fmt in BINARY else data.decode()
    if fmt == "html":
        return graph.to_html()
    if fmt == "openlineage":
        return json.dumps(graph.to_openlineage(), indent=2) + "\n"
    raise PipeledgerError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def write_or_print(content: str | bytes, output: Path | None, fmt: str, notices: Console | None = None) -> None:
    """Write to ``output`` (saying so on ``notices``, stdout by default), or print text formats
    (binary ones need ``-o``)."""
    if output is None:
        if isinstance(content, bytes):
            raise PipeledgerError(f"--format {fmt} is binary: give an output file with -o FILE")
        click.echo(content, nl=False)
        return
    if isinstance(content, bytes):
        output.write_bytes(content)
    else:
        output.write_text(content, encoding="utf-8")
    (notices or console()).print(f"Wrote {output}.", highlight=False)


@click.command("lineage")
@click.argument("artifact")
@click.option("--downstream", is_flag=True, help="Show what was made from the artifact instead of its sources.")
@click.option("--both", is_flag=True, help="Show sources and descendants.")
@click.option("--depth", type=click.IntRange(min=0), help="At most this many steps away (default: all).")
@click.option(
    "--format",
    "-f",
    "fmt",
    type=click.Choice(FORMATS),
    default="text",
    show_default=True,
    help="text, json, dot, svg/png (need Graphviz), html (self-contained), openlineage events.",
)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file.")
def lineage_command(
    artifact: str, downstream: bool, both: bool, depth: int | None, fmt: str, output: Path | None
) -> None:
    """Show where an artifact comes from (its lineage), across runs.

    ARTIFACT is an artifact's id (listed by `pipeledger run show RUN`) or RUN/STEP/OUTPUT,
    e.g. training-3/train/model.

    \b
    Example:
      pipeledger lineage training-3/train/model
      pipeledger lineage 01a21e61fe33699014f25d4c157ecd63 --format svg -o lineage.svg
    """
    direction = "both" if both else "downstream" if downstream else "upstream"
    graph = Client().get_artifact(artifact).lineage(direction=direction, depth=depth)
    if fmt == "text" and output is None:
        console().print(text_tree(graph, downstream=downstream, both=both))
        return
    if fmt == "text":
        buffer = io.StringIO()
        Console(file=buffer, width=200, color_system=None).print(text_tree(graph, downstream, both))
        content: str | bytes = buffer.getvalue()
    else:
        content = render(graph, fmt, downstream)
    write_or_print(content, output, fmt)
