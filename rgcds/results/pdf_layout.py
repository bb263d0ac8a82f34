"""Layout checks of rendered PDF pages: texts that leave the page or overlap.

Re-exported by :mod:`rgcds.results.pdf`.
"""

from __future__ import annotations

from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg
from matplotlib.figure import Figure
from matplotlib.table import Table
from matplotlib.text import Text
from matplotlib.transforms import Bbox


def _renderer(fig: Figure) -> RendererAgg:
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    renderer: RendererAgg = canvas.get_renderer()  # type: ignore[no-untyped-call]
    return renderer


def _text_boxes(fig: Figure) -> list[tuple[str, Bbox]]:
    """Every visible, non-empty text of ``fig`` with its box in display coordinates."""
    renderer = _renderer(fig)
    fig.draw(renderer)
    undrawn: set[int] = set()  # tick labels outside the axis' view interval are not drawn
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not lo <= tick.get_loc() <= hi:
                    undrawn.update({id(tick.label1), id(tick.label2)})
    boxes: list[tuple[str, Bbox]] = []
    for artist in fig.findobj(Text):
        if (
            not isinstance(artist, Text)
            or id(artist) in undrawn
            or not artist.get_visible()
            or not artist.get_text().strip()
        ):
            continue
        boxes.append((artist.get_text(), artist.get_window_extent(renderer)))
    return boxes


def layout_problems(fig: Figure, tolerance: float = 0.5) -> list[str]:
    """Texts of a rendered page that leave the page or overlap another text.

    Each text's box (in display units, ``tolerance`` points of slack) must lie inside the
    page and must not intersect any other text's box. Table cells are checked by their text,
    so a value too long for its column overlaps its neighbour and is reported.
    """
    page = fig.bbox
    boxes = _text_boxes(fig)
    problems = []
    for text, box in boxes:
        if (
            box.x0 < page.x0 - tolerance
            or box.y0 < page.y0 - tolerance
            or box.x1 > page.x1 + tolerance
            or box.y1 > page.y1 + tolerance
        ):
            problems.append(f"off the page: {text[:60]!r}")
    renderer = _renderer(fig)
    for table in fig.findobj(Table):
        if not isinstance(table, Table):
            continue
        for cell in table.get_celld().values():
            cell_text = cell.get_text()
            if not cell_text.get_text().strip():
                continue
            inner = cell_text.get_window_extent(renderer)
            outer = cell.get_window_extent(renderer)
            if inner.x1 > outer.x1 + tolerance or inner.x0 < outer.x0 - tolerance:
                problems.append(f"wider than its cell: {cell_text.get_text()[:60]!r}")
    for i, (text_a, a) in enumerate(boxes):
        for text_b, b in boxes[i + 1 :]:
            overlap_x = min(a.x1, b.x1) - max(a.x0, b.x0)
            overlap_y = min(a.y1, b.y1) - max(a.y0, b.y0)
            if overlap_x > tolerance and overlap_y > tolerance:
                problems.append(f"overlap: {text_a[:40]!r} / {text_b[:40]!r}")
    return problems
