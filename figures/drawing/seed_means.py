"""Means over a run's models and over seeds, with the standard error over seeds, and a record of how
many seeds each plotted series has, so that a figure drawn from fewer than three seeds says so on
the figure."""
import math

MIN_SEEDS = 3
SES = 1   # every band and error bar of every figure: mean ± 1 standard error over seeds, as its footer says


class SeedNotes:
    """Seeds behind each plotted series: the footer of a figure."""

    def __init__(self):
        self.seeds = {}   # a series' fewest seeds over the panels that draw it
        self.most = 0     # the most seeds behind any series of any panel

    def record(self, frame, series):
        """frame: the plotted rows (one per run and x); series: the column(s) naming a series."""
        for name, rows in frame.groupby(series, sort=False):
            key = " / ".join(map(str, name)) if isinstance(name, tuple) else str(name)
            count = rows["seed"].nunique()
            self.seeds[key] = min(self.seeds.get(key, math.inf), count)
            self.most = max(self.most, count)

    def fewest(self):
        return min(self.seeds.values()) if self.seeds else 0

    def text(self):
        """'mean ± 1 s.e. over 3 seeds', and which series have fewer than three, grouped by count."""
        if not self.seeds:
            return "no series plotted"
        fewest, most = self.fewest(), max(self.most, *self.seeds.values())
        seeds = f"{fewest} seed{'s' if fewest != 1 else ''}" if fewest == most else f"{fewest}-{most} seeds"
        line = f"mean ± {SES} s.e. over {seeds}"
        short = sorted({v for v in self.seeds.values() if v < MIN_SEEDS})
        if short:
            groups = []
            for count in short:
                names = [k for k, v in self.seeds.items() if v == count]
                which = "every series" if len(names) == len(self.seeds) else ", ".join(names)
                groups.append(f"{count} seed{'s' if count != 1 else ''}: {which}")
            line += "; FEWER THAN 3 SEEDS (" + "; ".join(groups) + ")"
        return line


def per_run(records, metrics, keys=("step",), extra=()):
    """Mean over a run's models of `metrics` at each `keys` value: one row per run (= seed) and
    step. `extra` are per-run columns carried along (labels, config values)."""
    metrics = [m for m in metrics if m in records.columns]
    group = ["run_id", "seed", "setting", *extra, *keys]
    return records.groupby(group, as_index=False, dropna=False)[metrics].mean()


def last_step(curves):
    """Each run's rows at its last evaluation."""
    return curves[curves["step"] == curves.groupby("run_id")["step"].transform("max")]


def check_one_run_per_seed(frame, keys):
    """A plotted point must average one run per seed; two runs of one seed under one label means
    the label merges different settings, which would be averaged silently."""
    counts = frame.groupby([*keys, "seed"], dropna=False)["run_id"].nunique()
    merged = counts[counts > 1]
    if len(merged):
        where = merged.index[0]
        settings = frame.set_index([*keys, "seed"]).loc[where, "setting"]
        raise ValueError(f"label {where[:-1]} merges different settings: {sorted(set(settings))}")


def aggregate(frame, keys, value):
    """Mean, standard error (sample s.d. / sqrt(n)) and number of seeds of `value` per `keys`."""
    check_one_run_per_seed(frame, keys)
    grouped = frame.groupby(list(keys), sort=False, dropna=False)[value]
    out = grouped.agg(mean="mean", se="sem", seeds="count").reset_index()
    return out
