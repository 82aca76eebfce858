"""What finish() does to every figure once its panels are drawn: one legend under the panels (or one
per panel where the panels' colours mean different things), every log axis labelled as such, point
labels moved apart where they would overlap, curves drawn on one another named in the footer (one
would hide the other), and a title and footer measured into the figure's height so that the panels
keep the height they were made with."""
import math
import textwrap

import matplotlib
import matplotlib.container
import matplotlib.patches
import matplotlib.text
import matplotlib.transforms as mtransforms
import numpy as np

LOG_NOTE = "log scale"
# Where a point's label may sit, in points from the point (dx, dy, ha, va): the first that overlaps no
# label already placed wins; nearest first, so a label stays beside its point when there is room.
LABEL_SPOTS = [(4, 4, "left", "bottom"), (4, -4, "left", "top"), (-4, 4, "right", "bottom"),
               (-4, -4, "right", "top"), (4, 13, "left", "bottom"), (4, -13, "left", "top"),
               (-4, 13, "right", "bottom"), (-4, -13, "right", "top"), (0, 22, "center", "bottom"),
               (0, -22, "center", "top")]


def handle_color(handle):
    """The colour a legend entry shows: a line's, a patch's face, or an error bar's line."""
    if isinstance(handle, matplotlib.container.ErrorbarContainer):
        handle = handle.lines[0]
    if isinstance(handle, matplotlib.patches.Patch):
        return matplotlib.colors.to_hex(handle.get_facecolor())
    return matplotlib.colors.to_hex(handle.get_color())


def legend_entries(ax):
    """(label, handle) of each entry of the panel's legend, the handle being the plotted artist."""
    legend = ax.get_legend()
    if legend is None:
        return []
    plotted = dict(zip(*reversed(ax.get_legend_handles_labels())))
    return [(text.get_text(), plotted.get(text.get_text(), shown))
            for text, shown in zip(legend.get_texts(), legend.legend_handles)]


def figure_legend(fig, entries):
    """One legend for the whole figure, in as few balanced rows as fit its width."""
    renderer = fig.canvas.get_renderer()
    labels, handles = [label for label, _ in entries], [handle for _, handle in entries]
    for columns in range(len(entries), 0, -1):
        legend = fig.legend(handles, labels, loc="lower center", ncol=columns, fontsize="small", frameon=False)
        fits = legend.get_window_extent(renderer).width <= 0.98 * fig.bbox.width
        legend.remove()
        if fits or columns == 1:
            rows = math.ceil(len(entries) / columns)
            return fig.legend(handles, labels, loc="lower center", ncol=math.ceil(len(entries) / rows),
                              fontsize="small", frameon=False)


def keep_panel_legends(fig):
    """Asks finish() for one legend beside each panel: for figures whose panels colour different
    things (alpha_gamma: (a) one colour per γ, (b) per γ and its best α₀)."""
    fig.per_panel_legends = True


def gather_legends(fig):
    """Legends never cover data: the panels' legends become one legend under the panels when each label
    has one colour in every panel (and the figure did not ask for per-panel legends); otherwise each
    panel's legend moves to its right. Returns the figure legend, or None."""
    per_axes = [(ax, legend_entries(ax)) for ax in fig.axes]
    per_axes = [(ax, entries) for ax, entries in per_axes if entries]
    colours = {}
    for _, entries in per_axes:
        for label, handle in entries:
            colours.setdefault(label, set()).add(handle_color(handle))
    if not per_axes:
        return None
    if all(len(shown) == 1 for shown in colours.values()) and not getattr(fig, "per_panel_legends", False):
        union = {}
        for _, entries in per_axes:
            for label, handle in entries:
                union.setdefault(label, handle)
        for ax, _ in per_axes:
            ax.get_legend().remove()
        return figure_legend(fig, list(union.items()))
    for ax, entries in per_axes:
        ax.legend([h for _, h in entries], [label for label, _ in entries], loc="upper left",
                  bbox_to_anchor=(1.02, 1.0), fontsize="small", borderaxespad=0.0)
    return None


def label_log_axes(fig):
    """A log axis says so in its label: equal steps on it are ratios, not differences."""
    for ax in fig.axes:
        for axis, scale in ((ax.xaxis, ax.get_xscale()), (ax.yaxis, ax.get_yscale())):
            text = axis.get_label().get_text()
            if scale == "log" and text and LOG_NOTE not in text:
                axis.set_label_text(f"{text}, {LOG_NOTE}")


def point_labels(ax):
    return [t for t in ax.texts if isinstance(t, matplotlib.text.Annotation) and t.get_gid() != "fixed"]


def marker_boxes(ax, renderer, half=5.0):
    """A box of `half` pixels around each plotted marker: point labels keep off the points."""
    boxes = []
    for line in ax.lines:
        if line.get_marker() in (None, "None", "", " ") or not len(line.get_xydata()):
            continue
        for x, y in ax.transData.transform(line.get_xydata()):
            boxes.append(mtransforms.Bbox.from_extents(x - half, y - half, x + half, y + half))
    return boxes


def separate_labels(fig):
    """Moves each point label (an annotation in offset points) to the first of LABEL_SPOTS where it
    overlaps no marker and no label placed before it and stays inside its panel; labels are placed
    left to right. Where every spot clashes, the one with the least overlap."""
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        ax.get_xlim(), ax.get_ylim()   # applies any pending autoscale before reading positions
        inside, labels = ax.get_window_extent(renderer), point_labels(ax)
        placed = marker_boxes(ax, renderer) if labels else []
        for label in sorted(labels, key=lambda t: tuple(ax.transData.transform(t.xy))):
            best = None
            for dx, dy, ha, va in LABEL_SPOTS:
                label.xyann = (dx, dy)
                label.set_ha(ha)
                label.set_va(va)
                box = label.get_window_extent(renderer).expanded(1.04, 1.1)
                clash = sum(overlap_area(box, other) for other in placed) + outside_area(box, inside)
                if best is None or clash < best[0]:
                    best = (clash, (dx, dy, ha, va))
                if clash == 0:
                    break
            dx, dy, ha, va = best[1]
            label.xyann = (dx, dy)
            label.set_ha(ha)
            label.set_va(va)
            placed.append(label.get_window_extent(renderer))


def overlap_area(a, b):
    return max(0.0, min(a.x1, b.x1) - max(a.x0, b.x0)) * max(0.0, min(a.y1, b.y1) - max(a.y0, b.y0))


def outside_area(box, area):
    return box.width * box.height - overlap_area(box, area)


COINCIDE = 0.01   # of a panel's height: curves closer than this at every x they share are drawn on one another


def series_curves(ax):
    """{label: line} of a panel's named curves in data coordinates with at least two points: the
    series (gid = label), not their s.e. bands, single points or reference lines across the panel."""
    return {line.get_gid(): line for line in ax.lines
            if line.get_gid() and not line.get_gid().endswith("s.e.") and len(line.get_xydata()) >= 2
            and line.get_transform() == ax.transData}


def coincide(ax, a, b, share=COINCIDE):
    """Whether lines a and b lie within `share` of the panel's height of each other at every x both
    have (at least two), as drawn (on a log axis, in its scale)."""
    (xa, ya), (xb, yb) = (np.asarray(line.get_xydata(), dtype=float).T for line in (a, b))
    shared, ia, ib = np.intersect1d(xa, xb, return_indices=True)
    if len(shared) < 2:
        return False
    to_axes = ax.transData + ax.transAxes.inverted()
    pa = to_axes.transform(np.column_stack([shared, ya[ia]]))[:, 1]
    pb = to_axes.transform(np.column_stack([shared, yb[ib]]))[:, 1]
    finite = np.isfinite(pa) & np.isfinite(pb)
    return finite.sum() >= 2 and bool(np.all(np.abs(pa[finite] - pb[finite]) < share))


def panel_name(ax, index, count):
    """'(a)' from a panel titled '(a) ...', else 'panel i'; '' for a figure of one panel."""
    title = ax.get_title()
    if title.startswith("(") and ")" in title:
        return title[:title.index(")") + 1]
    return "" if count == 1 else f"panel {index + 1}"


def coincidences(fig):
    """'Drawn on one another ...: A and B (in (a), (b)); ...' naming each group of curves of which
    each coincides (COINCIDE) with another of the group in some panel, or ''."""
    panels = [ax for ax in fig.axes if series_curves(ax)]
    groups = {}   # the names of a group of curves drawn on one another -> the panels where they are
    for index, ax in enumerate(panels):
        ax.get_xlim(), ax.get_ylim()   # applies any pending autoscale before reading positions
        curves = list(series_curves(ax).items())
        group_of = {name: {name} for name, _ in curves}
        for i, (name_a, a) in enumerate(curves):
            for name_b, b in curves[i + 1:]:
                if group_of[name_a] is not group_of[name_b] and coincide(ax, a, b):
                    merged = group_of[name_a] | group_of[name_b]
                    for name in merged:
                        group_of[name] = merged
        order = [name for name, _ in curves]
        for group in {id(g): g for g in group_of.values() if len(g) > 1}.values():
            names = tuple(sorted(group, key=order.index))
            groups.setdefault(names, []).append(panel_name(ax, index, len(panels)))
    if not groups:
        return ""
    named = [", ".join(names[:-1]) + " and " + names[-1] + (f" (in {', '.join(where)})" if any(where) else "")
             for names, where in groups.items()]
    return (f"Drawn on one another (within {COINCIDE:.0%} of the panel's height at every evaluation), "
            "so one hides another: " + "; ".join(named) + ".")


def finish(fig, title, scale_note, notes_text, status_text):
    """Title with the scale the logs say, the panels, one legend under them, and a footer with the
    seeds and what was not plotted. The figure grows by the measured height of the title, legend and
    footer, so the panels keep the height they were made with."""
    width, panels_height = fig.get_size_inches()
    pad = 0.08   # inches between the blocks
    heading = "\n".join(textwrap.fill(line, width=int(width * 11)) for line in (title, scale_note))
    parts = (coincidences(fig), notes_text, status_text)
    footer = "\n".join(textwrap.fill(part, width=int(width * 17)) for part in parts if part)
    title_text = fig.suptitle(heading, fontsize=11, va="top")
    footer_text = fig.text(0.01, 0.0, footer, fontsize=8, ha="left", va="bottom")
    label_log_axes(fig)
    legend = gather_legends(fig)
    renderer = fig.canvas.get_renderer()

    def inches(artist):
        return artist.get_window_extent(renderer).height / fig.dpi if artist is not None else 0.0

    top = inches(title_text) + 2 * pad
    footer_height = inches(footer_text) + pad if footer else 0.0
    bottom = footer_height + (inches(legend) + pad if legend else 0.0) + pad
    height = panels_height + top + bottom
    fig.set_size_inches(width, height)
    title_text.set_y(1 - pad / height)
    footer_text.set_y(pad / height)
    if legend:
        legend.set_bbox_to_anchor((0.5, (footer_height + pad) / height), transform=fig.transFigure)
    title_text.set_in_layout(False)   # tight_layout would reserve its height a second time
    fig.tight_layout(rect=(0, bottom / height, 1, 1 - top / height), pad=0.4)
    separate_labels(fig)   # after the layout: the points' positions on the page are final
    return fig
