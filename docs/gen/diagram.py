"""The data-flow diagram of DESIGN.md as an SVG, laid out on a grid here so it renders offline (no Mermaid CDN)."""

from __future__ import annotations

from html import escape

# name: (column, row, label, kind); kinds colour the batch path, the live path and the consumers differently
NODES: dict[str, tuple[float, float, str, str]] = {
    "events": (0, 0, "event files", "data"),
    "ingest": (1, 0, "ingest + validate", "batch"),
    "store": (2, 0, "event store", "store"),
    "preprocess": (3, 0, "preprocess", "batch"),
    "features": (4, 0, "features", "batch"),
    "train": (5, 0, "train", "batch"),
    "evaluate": (6, 0, "evaluate", "batch"),
    "registry": (7, 0, "registry", "store"),
    "quarantine": (1, 1, "quarantine", "store"),
    "live": (0, 2, "live events\nPOST /v1/events", "data"),
    "bus": (1, 2, "event bus", "live"),
    "worker": (2, 2, "realtime worker", "live"),
    "online": (4, 2, "online store", "store"),
    "serving": (6, 2, "serving API", "live"),
    "users": (7, 2, "users", "data"),
    "experiments": (5, 3.2, "experiments", "watch"),
    "monitoring": (6, 3.2, "monitoring", "watch"),
}
# (from, to, label, waypoints in grid units between the two boxes, dashed)
EDGES: list[tuple[str, str, str, list[tuple[float, float]], bool]] = [
    ("events", "ingest", "", [], False),
    ("ingest", "store", "", [], False),
    ("ingest", "quarantine", "invalid rows", [], False),
    ("store", "preprocess", "", [], False),
    ("preprocess", "features", "", [], False),
    ("features", "train", "", [], False),
    ("train", "evaluate", "", [], False),
    ("evaluate", "registry", "", [], False),
    ("features", "online", "materialize", [], False),
    ("registry", "serving", "champion / challenger", [(7, 1.2), (6.25, 1.2)], False),
    ("live", "bus", "", [], False),
    ("bus", "worker", "", [], False),
    ("worker", "online", "history, trending", [], False),
    ("worker", "store", "landed Parquet (ingest)", [], True),
    ("online", "serving", "ranked pools, features", [], False),
    ("serving", "users", "lists", [], False),
    ("serving", "experiments", "assign, expose", [], False),
    ("serving", "monitoring", "metrics", [], False),
    ("users", "live", "plays, watch time", [(7.45, 2), (7.45, 3.85), (0, 3.85)], True),
]
FILL = {"data": "#eceff1", "batch": "#e3f2fd", "store": "#fff8e1", "live": "#e8f5e9", "watch": "#f3e5f5"}
COL_W, ROW_H, BOX_W, BOX_H, PAD = 160, 78, 124, 40, 24


def _center(col: float, row: float) -> tuple[float, float]:
    return PAD + col * COL_W + BOX_W / 2, PAD + row * ROW_H + BOX_H / 2


def _clip(x0: float, y0: float, x1: float, y1: float) -> tuple[float, float]:
    """The point where the segment from box centre (x0, y0) towards (x1, y1) leaves the box."""
    dx, dy = x1 - x0, y1 - y0
    if dx == 0 and dy == 0:
        return x0, y0
    scale = min(BOX_W / 2 / abs(dx) if dx else float("inf"), BOX_H / 2 / abs(dy) if dy else float("inf"))
    return x0 + dx * scale, y0 + dy * scale


def render_svg() -> str:
    """The diagram as a standalone SVG document."""
    width = PAD * 2 + 7 * COL_W + BOX_W
    height = int(PAD * 2 + 3.85 * ROW_H + BOX_H / 2 + 8)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
           f'height="{height}" font-family="sans-serif" font-size="13" role="img" '
           'aria-label="streamrec data flow">',
           '<title>streamrec data flow: the batch path (top), the live path (middle), experiments and monitoring'
           '</title>',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#455a64"/></marker></defs>',
           f'<rect width="{width}" height="{height}" fill="#ffffff"/>']
    for src, dst, label, waypoints, dashed in EDGES:
        a, b = _center(*NODES[src][:2]), _center(*NODES[dst][:2])
        points = [a] + [_center(c, r) for c, r in waypoints] + [b]
        points[0] = _clip(*a, *points[1])
        points[-1] = _clip(*b, *points[-2])
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        dash = ' stroke-dasharray="5 4"' if dashed else ""
        out.append(f'<polyline points="{path}" fill="none" stroke="#455a64" stroke-width="1.4"{dash} '
                   'marker-end="url(#arrow)"/>')
        if label:
            (x0, y0), (x1, y1) = max(zip(points, points[1:]), key=lambda s: abs(s[1][0] - s[0][0]) +
                                     abs(s[1][1] - s[0][1]))
            horizontal = abs(x1 - x0) >= abs(y1 - y0)
            lx, ly = (x0 + x1) / 2 + (0 if horizontal else 6), (y0 + y1) / 2 + (-5 if horizontal else 4)
            anchor = "middle" if horizontal else "start"
            out.append(f'<text x="{lx:.1f}" y="{ly:.1f}" text-anchor="{anchor}" font-size="11" fill="#37474f">'
                       f'{escape(label)}</text>')
    for col, row, label, kind in NODES.values():
        x, y = PAD + col * COL_W, PAD + row * ROW_H
        out.append(f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="6" fill="{FILL[kind]}" '
                   'stroke="#37474f" stroke-width="1.2"/>')
        lines = label.split("\n")
        for i, line in enumerate(lines):
            dy = (i - (len(lines) - 1) / 2) * 15 + 4.5
            size = "" if i == 0 else ' font-size="11"'
            out.append(f'<text x="{x + BOX_W / 2}" y="{y + BOX_H / 2 + dy:.1f}" text-anchor="middle" '
                       f'fill="#212121"{size}>{escape(line)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
