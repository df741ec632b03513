"""A version's DAG as inline SVG, laid out on the server (no JavaScript).

Layered layout, top to bottom: a step's layer is its longest path from a source, steps in
a layer start in notebook order and are then reordered once by the mean position of their
parents (fewer crossings in fan-outs). Edges between neighbouring layers are curves; an edge
that skips layers (data loaded early, used late) runs in its own lane to the right of the
steps it passes, so it never crosses a box. Edges are labelled with the variables that travel
along them; `prev:` edges without data are drawn dashed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

BOX_W, BOX_H = 210, 58
H_GAP, V_GAP = 36, 70
PAD = 16
LANE_GAP = 34  # between the steps' right edge and a skip-layer edge's lane, and between lanes
CHAR_W = 6.6  # average glyph width at the label font size, for label backgrounds


@dataclass
class Node:
    name: str
    step: dict[str, Any]
    layer: int = 0
    x: float = 0
    y: float = 0


@dataclass
class Edge:
    source: str
    target: str
    variables: list[str] = field(default_factory=list)
    lane: float | None = None  # x of the vertical lane of an edge that skips layers


@dataclass
class Layout:
    nodes: list[Node]
    edges: list[Edge]
    width: float
    height: float


def edges_of(spec: dict[str, Any]) -> list[Edge]:
    """Every upstream edge, with the variables the downstream step reads from that producer."""
    edges = []
    for step in spec.get("steps", []):
        inputs = step.get("inputs") or {}
        for up in step.get("upstream") or []:
            variables = sorted(name for name, producer in inputs.items() if producer == up)
            edges.append(Edge(up, step["name"], variables))
    return edges


def layout(spec: dict[str, Any]) -> Layout:
    steps = spec.get("steps", [])
    nodes = {s["name"]: Node(s["name"], s) for s in steps}
    order = {s["name"]: i for i, s in enumerate(steps)}
    edges = [e for e in edges_of(spec) if e.source in nodes and e.target in nodes]
    parents: dict[str, list[str]] = {name: [] for name in nodes}
    for edge in edges:
        parents[edge.target].append(edge.source)

    def depth(name: str, visiting: frozenset[str] = frozenset()) -> int:
        if name in visiting:  # the compiler refuses cycles; never loop on a bad spec
            return 0
        ups = parents[name]
        return 0 if not ups else 1 + max(depth(p, visiting | {name}) for p in ups)

    layers: dict[int, list[str]] = {}
    for name in nodes:
        nodes[name].layer = depth(name)
        layers.setdefault(nodes[name].layer, []).append(name)
    position: dict[str, float] = {}
    for index in sorted(layers):
        row = sorted(layers[index], key=lambda n: order[n])
        if index > 0:
            row.sort(key=lambda n: (_mean([position.get(p, 0) for p in parents[n]]), order[n]))
        layers[index] = row
        for slot, name in enumerate(row):
            position[name] = slot
    widest = max((len(r) for r in layers.values()), default=0)
    width = PAD * 2 + widest * BOX_W + max(widest - 1, 0) * H_GAP
    for index, row in layers.items():
        row_width = len(row) * BOX_W + (len(row) - 1) * H_GAP
        left = (width - row_width) / 2
        for slot, name in enumerate(row):
            nodes[name].x = left + slot * (BOX_W + H_GAP)
            nodes[name].y = PAD + index * (BOX_H + V_GAP)
    height = PAD * 2 + len(layers) * BOX_H + max(len(layers) - 1, 0) * V_GAP
    width = max(width, BOX_W + 2 * PAD)
    lane_count = 0
    for edge in edges:
        top, bottom = nodes[edge.source].layer, nodes[edge.target].layer
        if bottom - top > 1:
            passed = [n for n in nodes.values() if top <= n.layer <= bottom]
            right = max(n.x + BOX_W for n in passed)
            lane_count += 1
            edge.lane = right + LANE_GAP * lane_count
            width = max(width, edge.lane + 6 + _label_width(edge.variables) + PAD)
    return Layout([nodes[s["name"]] for s in steps], edges, width, height)


def _label_width(variables: list[str]) -> float:
    return len(_clip(", ".join(variables), 30)) * CHAR_W + 10 if variables else 0.0


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def badges(step: dict[str, Any], *, full: bool = False) -> list[tuple[str, str]]:
    """(css class, text) for the small labels under a step's name (`full`: room for the iterable)."""
    resources = step.get("resources") or {}
    pool = resources.get("pool", "cpu")
    out = [("gpu", f"{pool} ×{resources['gpu']} GPU")] if resources.get("gpu") else [("pool", pool)]
    foreach = step.get("foreach")
    if foreach:
        text = f"foreach {foreach.get('item', 'item')}"
        out.append(("foreach", f"{text} in {foreach.get('iterable', '')}" if full else text))
    elif step.get("branch_of"):
        out.append(("branch", "per item"))
    if step.get("join"):
        out.append(("join", "join"))
    return out


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _edge_path(a: Node, b: Node, lane: float | None) -> tuple[str, float, float]:
    """The SVG path of an edge, and the left edge and middle height of its label."""
    if lane is None:  # neighbouring layers: bottom centre to top centre
        x1, y1 = a.x + BOX_W / 2, a.y + BOX_H
        x2, y2 = b.x + BOX_W / 2, b.y - 2
        bend = max((y2 - y1) / 2, 24)
        path = f"M{x1:.1f},{y1:.1f} C{x1:.1f},{y1 + bend:.1f} {x2:.1f},{y2 - bend:.1f} {x2:.1f},{y2:.1f}"
        return path, (x1 + x2) / 2, (y1 + y2) / 2  # centred on the cubic's midpoint (t = 0.5)
    # Skipping layers: out of the source's right side, down its lane, into the target's right side.
    x1, y1 = a.x + BOX_W, a.y + BOX_H / 2
    x2, y2 = b.x + BOX_W + 2, b.y + BOX_H / 2
    r = min(28.0, (y2 - y1) / 2)
    path = (
        f"M{x1:.1f},{y1:.1f} C{lane:.1f},{y1:.1f} {lane:.1f},{y1:.1f} {lane:.1f},{y1 + r:.1f} "
        f"L{lane:.1f},{y2 - r:.1f} C{lane:.1f},{y2:.1f} {lane:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
    )
    # Beside the lane in the gap below the source: clear of the boxes, and of other lanes' ends.
    return path, lane + 6, a.y + BOX_H + V_GAP / 2


def render_svg(spec: dict[str, Any], *, link_prefix: str = "#step-") -> SafeString:
    """The DAG as an accessible inline <svg>; each step links to `link_prefix + name`."""
    plan = layout(spec)
    if not plan.nodes:
        return mark_safe("")
    by_name = {n.name: n for n in plan.nodes}
    parts = [
        f'<svg class="dag" xmlns="http://www.w3.org/2000/svg" width="{plan.width:.0f}" height="{plan.height:.0f}" '
        f'viewBox="0 0 {plan.width:.0f} {plan.height:.0f}" role="img" '
        f'aria-label="Pipeline graph: {len(plan.nodes)} steps, {len(plan.edges)} edges" data-testid="dag">',
        '<defs><marker id="dag-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" class="dag-arrow"/></marker></defs>',
    ]
    labels = []
    for edge in plan.edges:
        path, lx, ly = _edge_path(by_name[edge.source], by_name[edge.target], edge.lane)
        dashed = "" if edge.variables else " dag-edge-control"
        parts.append(
            f'<path class="dag-edge{dashed}" d="{path}" marker-end="url(#dag-arrow)" '
            f'data-edge="{escape(edge.source)}-&gt;{escape(edge.target)}"/>'
        )
        if edge.variables:
            full = ", ".join(edge.variables)
            text = _clip(full, 30)
            w = _label_width(edge.variables)
            left = lx if edge.lane is not None else lx - w / 2
            labels.append(
                f'<g class="dag-label"><title>{escape(full)}</title>'
                f'<rect x="{left:.1f}" y="{ly - 9:.1f}" width="{w:.1f}" height="18" rx="4"/>'
                f'<text x="{left + w / 2:.1f}" y="{ly + 4:.1f}" text-anchor="middle">{escape(text)}</text></g>'
            )
    for node in plan.nodes:
        step = node.step
        kind = "foreach" if step.get("foreach") else "join" if step.get("join") else "step"
        gpu = " dag-gpu" if (step.get("resources") or {}).get("gpu") else ""
        title = f"{node.name}: inputs {', '.join(sorted(step.get('inputs') or {})) or 'none'}; "
        title += f"outputs {', '.join(step.get('outputs') or []) or 'none'}"
        parts.append(
            f'<a href="{escape(link_prefix + node.name)}" class="dag-node dag-{kind}{gpu}" '
            f'data-step="{escape(node.name)}">'
            f"<title>{escape(title)}</title>"
            f'<rect x="{node.x:.1f}" y="{node.y:.1f}" width="{BOX_W}" height="{BOX_H}" rx="9"/>'
            f'<text class="dag-name" x="{node.x + 12:.1f}" y="{node.y + 22:.1f}">{escape(_clip(node.name, 26))}</text>'
        )
        bx = node.x + 12
        for css, text in badges(step):
            text = _clip(text, 24)
            w = len(text) * 6.1 + 10
            if bx + w > node.x + BOX_W - 6:
                break
            parts.append(
                f'<rect class="dag-badge dag-badge-{css}" x="{bx:.1f}" y="{node.y + 32:.1f}" width="{w:.1f}" '
                f'height="16" rx="8"/><text class="dag-badge-text" x="{bx + w / 2:.1f}" y="{node.y + 44:.1f}" '
                f'text-anchor="middle">{escape(text)}</text>'
            )
            bx += w + 5
        parts.append("</a>")
    parts += labels
    parts.append("</svg>")
    return mark_safe("".join(parts))  # every interpolated user string above is escaped
