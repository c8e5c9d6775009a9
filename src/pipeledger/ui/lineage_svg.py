"""The lineage explorer's picture: an inline SVG whose nodes are links.

Nodes are laid out in columns by their longest distance from a source
(:func:`pipeledger.lineage.render.layers`), ordered in each column by the mean row of their
neighbours in the previous column (fewer crossings). Each node is an ``<a>`` to the URL
``href(node)`` gives (the same page with the node expanded), so the explorer works without
JavaScript; ``explore.js`` follows the same links with ``fetch`` and swaps the fragment. Every
name is drawn as escaped text (control characters made visible).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Collection

from pipeledger.lineage.graph import LineageGraph, LineageNode
from pipeledger.lineage.render import STATUS_COLORS, layers, visible
from pipeledger.text import plural

BOX_W, BOX_H, COL_W, ROW_H, PAD = 170, 42, 220, 58, 16


def _t(value: object) -> str:
    return html.escape(visible(str(value)), quote=True)


def _cut(text: str, size: int) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"


def _order(graph: LineageGraph, layer: dict[str, int]) -> dict[int, list[LineageNode]]:
    columns: dict[int, list[LineageNode]] = {}
    for node in sorted(graph.nodes, key=lambda n: (layer[n.id], n.kind, n.name, n.id)):
        columns.setdefault(layer[node.id], []).append(node)
    previous: dict[str, list[str]] = {}
    for edge in graph.edges:
        previous.setdefault(edge.target, []).append(edge.source)
    row: dict[str, int] = {}
    for col in sorted(columns):
        nodes = columns[col]
        if col:

            def centre(node: LineageNode) -> float:
                seen = [row[p] for p in previous.get(node.id, []) if p in row]
                return sum(seen) / len(seen) if seen else float("inf")

            nodes.sort(key=centre)
        for index, node in enumerate(nodes):
            row[node.id] = index
    return columns


def _detail(node: LineageNode) -> str:
    a = node.attributes
    count = a.get("count")
    if node.kind == "step":
        shown = f"{a.get('status', '')}"
        if count is not None:
            return f"×{count} step run{'s' if count != 1 else ''} · {shown}"
        return f"{shown} · {a.get('run')}" if a.get("run") else shown
    if count is not None:
        return f"×{count} artifact{'s' if count != 1 else ''} · {a.get('type', '')}"
    return f"{a.get('type', '')} · {a.get('run')}" if a.get("run") else str(a.get("type", ""))


def _tooltip(node: LineageNode) -> str:
    skip = {"members"}
    lines = [f"{node.kind} {node.name}"]
    lines += [f"{k}: {v}" for k, v in node.attributes.items() if v is not None and k not in skip]
    return "\n".join(lines)


def explorer_svg(graph: LineageGraph, href: Callable[[LineageNode], str | None], expanded: Collection[str] = ()) -> str:
    """The graph as one ``<svg>`` (no script): step runs as boxes coloured by status (cached ones
    dashed), artifacts as rounded boxes, the root with a double border, group nodes (from
    :func:`~pipeledger.lineage.explorer.summary`) with their counts; every node an ``<a>`` to
    ``href(node)`` when it gives one, marked ``+`` (a click adds its neighbours) or, when its id is
    in ``expanded``, ``−`` (a click removes them)."""
    layer = layers(graph)
    columns = _order(graph, layer)
    position: dict[str, tuple[int, int]] = {}
    for col, nodes in columns.items():
        for index, node in enumerate(nodes):
            position[node.id] = (PAD + col * COL_W, PAD + index * ROW_H)
    width = 2 * PAD + max(columns, default=0) * COL_W + BOX_W
    height = 2 * PAD + max((len(v) for v in columns.values()), default=1) * ROW_H - (ROW_H - BOX_H)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="lineage" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="lineage graph, {plural(len(graph), "node")}" '
        f'data-nodes="{len(graph)}" font-family="system-ui, sans-serif" font-size="11">',
        '<defs><marker id="lx-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#666"/></marker></defs>',
    ]
    for edge in graph.edges:
        if edge.source not in position or edge.target not in position:
            continue
        (x1, y1), (x2, y2) = position[edge.source], position[edge.target]
        sx, sy, tx, ty = x1 + BOX_W, y1 + BOX_H // 2, x2, y2 + BOX_H // 2
        if tx <= sx:  # same or earlier column (a cycle broken by the layout): a loop around
            tx, ty = x2 + BOX_W // 2, y2
        mid = (sx + tx) // 2
        dash = ' stroke-dasharray="4 3"' if edge.kind == "reused" else ""
        out.append(
            f'<path class="edge" d="M {sx} {sy} C {mid} {sy}, {mid} {ty}, {tx} {ty}" fill="none" stroke="#888"{dash} '
            f'marker-end="url(#lx-arrow)"><title>{_t(edge.kind)}: {_t(edge.name)}</title></path>'
        )
    for node in graph.nodes:
        x, y = position[node.id]
        root = node.id == graph.root
        if node.kind == "step":
            color = STATUS_COLORS.get(str(node.attributes.get("status", "")), "#333")
            fill, rx = "#ffffff", 4
            dash = ' stroke-dasharray="5 3"' if node.attributes.get("cached") else ""
        else:
            color, fill, rx, dash = "#5c7cb0", "#eef3fb", 16, ""
        group = " group" if "count" in node.attributes else ""
        shape = (
            f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="{rx}" fill="{fill}" stroke="{color}" '
            f'stroke-width="{3 if root else 2}"{dash}/>'
        )
        if root:
            shape += (
                f'<rect x="{x - 4}" y="{y - 4}" width="{BOX_W + 8}" height="{BOX_H + 8}" rx="{rx + 3}" '
                f'fill="none" stroke="{color}"/>'
            )
        body = (
            f"<title>{_t(_tooltip(node))}</title>{shape}"
            f'<text x="{x + 9}" y="{y + 17}" font-weight="bold">{_t(_cut(node.name, 22))}</text>'
            f'<text x="{x + 9}" y="{y + 32}" fill="#444">{_t(_cut(_detail(node), 27))}</text>'
        )
        opened = node.id in expanded
        attrs = (
            f'class="node {node.kind}{group}{" root" if root else ""}{" expanded" if opened else ""}" '
            f'data-id="{_t(node.id)}"'
        )
        link = href(node)
        if link is None:
            out.append(f"<g {attrs}>{body}</g>")
        else:
            mark = (
                ""
                if group
                else (
                    f'<text class="mark" x="{x + BOX_W - 12}" y="{y + 15}" font-size="14" font-weight="bold" '
                    f'fill="{color}">{"−" if opened else "+"}</text>'
                )
            )
            out.append(f'<a {attrs} href="{_t(link)}">{body}{mark}</a>')
    out.append("</svg>")
    return "".join(out)
