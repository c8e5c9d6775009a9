"""Drawing lineage graphs: DOT for Graphviz, and a built-in SVG layout for HTML and notebooks.

Graphviz (the ``dot`` program) gives the best pictures (``svg``, ``png``); it is
optional. Without it, :func:`to_html` and notebooks use a simple layered layout:
nodes are placed in columns by their longest distance from a source, edges are
drawn as curves.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from collections.abc import Callable
from typing import TYPE_CHECKING

from pipeledger.exceptions import PipeledgerError

if TYPE_CHECKING:
    from pipeledger.lineage.graph import LineageGraph, LineageNode

STATUS_COLORS = {
    "completed": "#2e7d32",
    "cached": "#00838f",
    "failed": "#c62828",
    "running": "#f9a825",
    "crashed": "#6a1b9a",
    "skipped": "#9e9e9e",
    "not run": "#9e9e9e",
}
GRAPHVIZ_MISSING = (
    "Graphviz is not installed (no `dot` program on PATH): install it with `apt-get install graphviz` "
    "(Debian/Ubuntu), `brew install graphviz` (macOS) or `conda install graphviz`, or use --format html, "
    "which needs no Graphviz"
)


# Characters XML 1.0 does not allow (C0 controls but tab/newline/CR, surrogates,
# U+FFFE/U+FFFF), plus the other C0/C1 controls and DEL: shown as escapes instead.
_INVISIBLE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def visible(text: str) -> str:
    """``text`` with control characters (and what XML cannot hold) shown as ``\\xNN``/``\\uNNNN``
    escapes, so a name drawn in a picture is readable and the picture well-formed. Newlines
    are kept (labels use them as line breaks)."""
    return _INVISIBLE.sub(
        lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}", text
    )


def _text(value: object) -> str:
    """``value`` as text for SVG/HTML: control characters made visible, then escaped."""
    return html.escape(visible(str(value)))


def _dot_id(value: str) -> str:
    """A DOT double-quoted string showing ``value`` literally.

    In DOT's quoted strings ``\\`` and ``"`` are escaped; Graphviz also decodes HTML
    entities in labels (``&amp;`` is drawn ``&``), so ``&`` is written ``&amp;``;
    a newline becomes DOT's line break ``\\n``.
    """
    escaped = visible(value).replace("\\", "\\\\").replace('"', '\\"').replace("&", "&amp;").replace("\n", "\\n")
    return '"' + escaped + '"'


def _node_label(node: LineageNode) -> str:
    if node.kind == "step":
        status = node.attributes.get("status", "")
        return f"{node.name}\n{status}"
    return f"{node.name}\n{node.attributes.get('type', '')}"


def to_dot(graph: LineageGraph, links: Callable[[LineageNode], str | None] | None = None) -> str:
    """DOT text: a cluster per run, steps as boxes colored by status, cached steps dashed.

    ``links`` gives a node the URL it links to in SVG output (Graphviz's ``URL``; None: no link),
    e.g. the web UI's page of a step or artifact."""
    lines = [
        "digraph lineage {",
        "  rankdir=LR;",
        '  node [fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=9, color="#555555"];',
    ]
    by_run: dict[str, list[LineageNode]] = {}
    for node in graph.nodes:
        by_run.setdefault(str(node.attributes.get("run") or ""), []).append(node)
    for index, (run, nodes) in enumerate(sorted(by_run.items())):
        indent = "  "
        if run:
            lines.append(f"  subgraph cluster_{index} {{")
            lines.append(f'    label={_dot_id("run " + run)}; style=rounded; color="#bbbbbb";')
            indent = "    "
        for node in nodes:
            attrs = [f"label={_dot_id(_node_label(node))}"]
            if node.kind == "step":
                color = STATUS_COLORS.get(str(node.attributes.get("status")), "#333333")
                style = "rounded,dashed" if node.attributes.get("cached") else "rounded"
                attrs += ["shape=box", f'style="{style}"', f'color="{color}"', "penwidth=2"]
            else:
                attrs += ["shape=ellipse", "style=filled", 'fillcolor="#eef3fb"', 'color="#5c7cb0"']
            if node.id == graph.root:
                attrs.append("peripheries=2")
            link = links(node) if links is not None else None
            if link:
                attrs += [f"URL={_dot_id(link)}", f"tooltip={_dot_id(_node_label(node))}", 'target="_top"']
            lines.append(f"{indent}{_dot_id(node.id)} [{', '.join(attrs)}];")
        if run:
            lines.append("  }")
    for edge in graph.edges:
        style = ", style=dashed" if edge.kind == "reused" else ""
        lines.append(f"  {_dot_id(edge.source)} -> {_dot_id(edge.target)} [label={_dot_id(edge.name)}{style}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_graphviz(dot_source: str, fmt: str) -> bytes:
    """Render DOT with Graphviz's ``dot`` into ``fmt`` (svg, png, pdf...).

    Raises:
        PipeledgerError: Graphviz is not installed (the message says how to install it) or failed.
    """
    executable = shutil.which("dot")
    if executable is None:
        raise PipeledgerError(GRAPHVIZ_MISSING)
    result = subprocess.run(
        [executable, f"-T{fmt}"], input=dot_source.encode(), capture_output=True, timeout=120, check=False
    )
    if result.returncode != 0:
        raise PipeledgerError(f"Graphviz failed: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout


def layers(graph: LineageGraph) -> dict[str, int]:
    """Longest distance of each node from a source (a node without incoming edges).

    Iterative (a lineage across many runs can be thousands of nodes deep); a cycle, which a
    lineage should not have, is broken at its first node."""
    ids = [n.id for n in graph.nodes]
    outgoing: dict[str, list[str]] = {i: [] for i in ids}
    waiting = dict.fromkeys(ids, 0)
    for edge in graph.edges:
        if edge.source in outgoing and edge.target in outgoing and edge.source != edge.target:
            outgoing[edge.source].append(edge.target)
            waiting[edge.target] += 1
    layer = dict.fromkeys(ids, 0)
    ready = [i for i in reversed(ids) if waiting[i] == 0]
    done: set[str] = set()
    while len(done) < len(ids):
        if not ready:  # only cycles are left
            stuck = next(i for i in ids if i not in done)
            waiting[stuck] = 0
            ready.append(stuck)
        node_id = ready.pop()
        done.add(node_id)
        for child in outgoing[node_id]:
            if child in done:
                continue
            layer[child] = max(layer[child], layer[node_id] + 1)
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    return layer


def to_svg_fragment(graph: LineageGraph, width_per_layer: int = 190, height_per_row: int = 64) -> str:
    """An inline ``<svg>`` drawing of the graph with the built-in layered layout."""
    layer = layers(graph)
    columns: dict[int, list[LineageNode]] = {}
    for node in sorted(graph.nodes, key=lambda n: (layer[n.id], n.kind, n.name)):
        columns.setdefault(layer[node.id], []).append(node)
    box_w, box_h = 150, 40
    position: dict[str, tuple[int, int]] = {}
    for col, nodes in columns.items():
        for row, node in enumerate(nodes):
            position[node.id] = (20 + col * width_per_layer, 20 + row * height_per_row)
    width = 40 + max((c for c in columns), default=0) * width_per_layer + box_w
    height = 40 + max((len(v) for v in columns.values()), default=1) * height_per_row
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif" font-size="11">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>',
    ]
    for edge in graph.edges:
        if edge.source not in position or edge.target not in position:
            continue
        (x1, y1), (x2, y2) = position[edge.source], position[edge.target]
        sx, sy, tx, ty = x1 + box_w, y1 + box_h // 2, x2, y2 + box_h // 2
        mid = (sx + tx) // 2
        dash = ' stroke-dasharray="4 3"' if edge.kind == "reused" else ""
        parts.append(
            f'<path d="M {sx} {sy} C {mid} {sy}, {mid} {ty}, {tx} {ty}" fill="none" stroke="#555"{dash} '
            f'marker-end="url(#arrow)"><title>{_text(edge.kind)}: {_text(edge.name)}</title></path>'
        )
    for node in graph.nodes:
        x, y = position[node.id]
        title = _text("\n".join(f"{k}: {v}" for k, v in node.attributes.items() if v is not None))
        if node.kind == "step":
            status = str(node.attributes.get("status", ""))
            color = STATUS_COLORS.get(status, "#333")
            dash = ' stroke-dasharray="5 3"' if node.attributes.get("cached") else ""
            parts.append(
                f'<g class="step" data-id="{_text(node.id)}"><title>{title}</title>'
                f'<rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="6" fill="white" stroke="{color}" '
                f'stroke-width="2"{dash}/>'
                f'<text x="{x + 8}" y="{y + 16}" font-weight="bold">{_text(node.name[:22])}</text>'
                f'<text x="{x + 8}" y="{y + 31}" fill="{color}">{_text(status)}'
                f"{' · ' + _text(str(node.attributes.get('run'))[:14]) if node.attributes.get('run') else ''}"
                "</text></g>"
            )
        else:
            parts.append(
                f'<g class="artifact" data-id="{_text(node.id)}"><title>{title}</title>'
                f'<rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="18" fill="#eef3fb" stroke="#5c7cb0"/>'
                f'<text x="{x + 10}" y="{y + 16}">{_text(node.name[:24])}</text>'
                f'<text x="{x + 10}" y="{y + 31}" fill="#555">{_text(str(node.attributes.get("type", "")))}'
                "</text></g>"
            )
    parts.append("</svg>")
    return "".join(parts)


def to_html(graph: LineageGraph, title: str = "pipeledger lineage") -> str:
    """A self-contained HTML page: the picture and a table of every node."""
    rows = []
    for node in graph.nodes:
        attrs = node.attributes
        detail = (
            f"{attrs.get('status')} · run {attrs.get('run')} · pipeline {attrs.get('pipeline')}"
            if node.kind == "step"
            else f"{attrs.get('type')} · {attrs.get('data_type')} · {attrs.get('uri')}"
        )
        rows.append(
            f"<tr><td>{node.kind}</td><td>{_text(node.name)}</td><td><code>{_text(node.id)}</code></td>"
            f"<td>{_text(detail)}</td></tr>"
        )
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{_text(title)}</title>"
        "<style>body{font-family:Helvetica,Arial,sans-serif;margin:24px}"
        "table{border-collapse:collapse;margin-top:16px}td,th{border:1px solid #ddd;padding:4px 8px;"
        "font-size:13px;text-align:left}</style></head><body>"
        f"<h1>{_text(title)}</h1>{to_svg_fragment(graph)}"
        "<table><tr><th>kind</th><th>name</th><th>id</th><th>details</th></tr>"
        + "".join(rows)
        + "</table></body></html>\n"
    )
