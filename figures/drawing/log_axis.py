"""Log axes whose ticks read as plain numbers (0.05, 2, 3) and cover the data: losses are drawn on
them, and so is any x axis spanning decades (bits per update, initial alpha)."""
import math

import matplotlib.ticker as ticker
import numpy as np


class PlainLogLocator(ticker.Locator):
    """Ticks of a log axis chosen at draw time from the range shown: 1-2-5 per decade, decades only
    when those are too many, every integer multiple when too few, and evenly spaced values (as on a
    linear axis) in a range too narrow for any of these. Autoscaled limits end on a tick at or beyond
    the data (view_limits), so that the labelled ticks cover the data."""
    SUBS = ((1.0, 2.0, 5.0), (1.0,), tuple(float(i) for i in range(1, 10)))
    MIN_TICKS = 4   # labelled ticks inside the range: with fewer a reader cannot interpolate
    MAX_WASTE = 0.15   # share of the axis (in log terms) that widening it to the enclosing ticks may add

    def __init__(self):
        self.chosen = None   # (low, high, ticks) that view_limits settled on

    def __call__(self):
        low, high = sorted(self.axis.get_view_interval())
        if self.chosen and np.allclose(self.chosen[:2], (low, high), rtol=1e-9):
            return self.chosen[2]
        return self.tick_values(low, high)

    def tick_values(self, vmin, vmax, nbins=6):
        low, high = sorted((vmin, vmax))
        if low <= 0:   # no positive range to choose from: matplotlib's own choice
            return ticker.LogLocator(base=10).tick_values(vmin, vmax)
        decades = np.arange(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
        for subs in self.SUBS:
            ticks = np.array([sub * 10.0 ** decade for decade in decades for sub in subs])
            if self.MIN_TICKS <= ((ticks >= low) & (ticks <= high)).sum() <= 10:
                return ticks
        if high / low > 10:   # too many decades for a tick at each
            return ticker.LogLocator(base=10, numticks=8).tick_values(low, high)
        return ticker.MaxNLocator(nbins=nbins, steps=[1, 2, 2.5, 5, 10]).tick_values(low, high)

    def view_limits(self, vmin, vmax):
        """The nearest ticks at or beyond the data; of the tick spacings tried, the first that widens
        the axis by at most MAX_WASTE (else the one that widens it least)."""
        low, high = sorted((vmin, vmax))
        if low <= 0:
            return vmin, vmax
        low, high = self.without_margin(low, high)
        best = None
        for nbins in (6, 8, 10, 12):
            ticks = np.asarray(self.tick_values(low, high, nbins))
            below, above = ticks[ticks <= low * (1 + 1e-9)], ticks[ticks >= high * (1 - 1e-9)]
            if not (len(below) and len(above)) or below.max() <= 0:
                continue
            start, stop = below.max(), above.min()
            waste = 1 - math.log(high / low) / math.log(stop / start) if high > low else 0.0
            if best is None or waste < best[0]:
                best = (waste, start, stop, ticks[(ticks >= start) & (ticks <= stop)])
            if waste <= self.MAX_WASTE:
                break
        if best is None:
            return vmin, vmax
        self.chosen = best[1:]
        return best[1], best[2]

    def without_margin(self, low, high):
        """The data's range inside autoscaled limits: matplotlib adds its margin (a share of the log
        range each side) before asking for view limits, and ticks enclosing the margin would waste up to
        a decade of the panel."""
        if self.axis is None or high <= low:
            return low, high
        margins = dict(zip("xy", self.axis.axes.margins()))
        share = margins.get(self.axis.axis_name, 0.0)
        cut = math.log(high / low) * share / (1 + 2 * share)
        return low * math.exp(cut), high / math.exp(cut)


def log_axis(ax, which="y"):
    """A log scale whose ticks read as plain numbers (0.05, 2, 3), chosen from the data's range."""
    axis = ax.yaxis if which == "y" else ax.xaxis
    getattr(ax, f"set_{which}scale")("log")
    axis.set_major_locator(PlainLogLocator())
    axis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(ticker.NullFormatter())
    if getattr(ax, f"get_autoscale{which}_on")():   # set_*scale autoscaled with the old locator; again, to end on its ticks
        ax.autoscale(enable=True, axis=which)
