"""What a reader tells apart in a drawn figure, read back from its matplotlib artists: each series'
colour and line style (dash pattern and marker, open or filled), and the boxes of its labels."""
import itertools

import matplotlib.colors
import matplotlib.container

WHITE = "#ffffff"


def _dashes(line):
    if line.get_linestyle() in ("None", "", " "):
        return "none"
    offset, pattern = line._unscaled_dash_pattern   # the dash pattern as set, before scaling by line width
    return tuple(pattern) if pattern else "solid"


def _marker(line):
    marker = line.get_marker()
    return None if marker in (None, "None", "", " ") else str(marker)


def line_style(line):
    """(colour, dash pattern, marker, open marker) of a line as drawn."""
    hollow = _marker(line) is not None and matplotlib.colors.to_hex(line.get_markerfacecolor()) == WHITE
    return matplotlib.colors.to_hex(line.get_color()), _dashes(line), _marker(line), hollow


def series_lines(fig, skip=()):
    """[(series name, line)] of every series drawn in the figure: lines named by their gid (a point of
    a category panel is 'series|category'; s.e. bands and gids ending in one of `skip` are not
    series), the data lines of error bars by their label, and reference lines by their legend label."""
    found = []
    for ax in fig.axes:
        in_containers = set()
        for container in ax.containers:
            if isinstance(container, matplotlib.container.ErrorbarContainer) and container.lines[0] is not None:
                line = container.lines[0]
                in_containers.add(id(line))
                name = (line.get_gid() or container.get_label() or "").split("|")[0]
                if name and not name.startswith("_"):
                    found.append((name, line))
        for line in ax.lines:
            if id(line) in in_containers:
                continue
            gid = line.get_gid()
            if gid:
                if gid.endswith(" s.e.") or any(gid.endswith(s) for s in skip):
                    continue
                found.append((gid.split("|")[0], line))
            elif not line.get_label().startswith("_"):
                found.append((line.get_label(), line))
    return found


def styles_shared(fig, skip=()):
    """{(colour, dashes, marker, hollow): names} where two or more series of the figure are drawn alike."""
    by_style = {}
    for name, line in series_lines(fig, skip):
        by_style.setdefault(line_style(line), set()).add(name)
    return {style: names for style, names in by_style.items() if len(names) > 1}


def colours(fig, skip=()):
    """{series name: {colours it is drawn in}}."""
    seen = {}
    for name, line in series_lines(fig, skip):
        seen.setdefault(name, set()).add(matplotlib.colors.to_hex(line.get_color()))
    return seen


def overlaps(a, b):
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def overlapping_labels(fig):
    """[(text, text)] of labels whose boxes overlap: the point labels within each panel, and the blocks
    of the page (title, footer, legends under the panels, each panel with its ticks, axis labels,
    title and own legend)."""
    renderer = fig.canvas.get_renderer()
    clashes = []
    for ax in fig.axes:
        boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in ax.texts if t.get_visible() and t.get_text()]
        clashes += [(a, b) for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2) if overlaps(box_a, box_b)]
    blocks = [(f"text {t.get_text()[:40]!r}", t.get_window_extent(renderer)) for t in fig.texts if t.get_text()]
    if fig._suptitle is not None and fig._suptitle not in fig.texts:
        blocks.append(("title", fig._suptitle.get_window_extent(renderer)))
    blocks += [(f"legend {i}", legend.get_window_extent(renderer)) for i, legend in enumerate(fig.legends)]
    blocks += [(f"panel {i} {ax.get_title()[:30]!r}", ax.get_tightbbox(renderer)) for i, ax in enumerate(fig.axes)]
    clashes += [(a, b) for (a, box_a), (b, box_b) in itertools.combinations(blocks, 2) if overlaps(box_a, box_b)]
    return clashes
