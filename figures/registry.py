"""Every figure and table of the paper, as its record says it (paper/figures/<id>.yaml: its sweep, whose
manifest names the runs it needs, and its plot or table function in figures/drawing/); loading
an id's logs (FigureData: records with derived columns, the status of each run) and drawing it.

    python -m figures.registry [ids ...] [--results paper/logs] [--scale mini] [--out figures/out]

draws the given ids (default: all) from the logs; each figure is written as figures/out/<id>.pdf
and .png, each table as .md and .tex (figures/out/paper/... for scale=paper). Only ids whose
inputs changed since they were last drawn there are drawn (figures/stamps.py: the logs they read
and the code that draws them; --all draws every id), in parallel processes, one per core (--jobs).
"""
import argparse
import importlib
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from codistill_experiments.jobs import cores

from . import stamps
from .logs.churn import with_churn
from .logs.collect import collect, status_lines
from .logs.manifests import ManifestMissing
from .paths import COMMITTED, SAFE_LOADER, SWEEPS
from .records import ANIL, RECORDS, SODHANI, SOURCES, load_records  # noqa: F401 (ANIL, SOURCES: the report reads them here)

OUT = Path(__file__).resolve().parent / "out"
FAIRSEQ_TASKS = ("translation", "language_modeling")   # workload.task of runs fairseq trains


@dataclass(frozen=True)
class Drawer:
    """An id's draw function by module and name, imported when first called: deciding which ids
    to draw (figures/stamps.py) then needs none of the drawing code's imports (seaborn, pyplot:
    seconds), so that `make figures` with nothing changed returns at once."""
    module: str      # under figures.drawing
    function: str

    @property
    def module_name(self):
        return f"{__package__}.drawing.{self.module}"

    def __call__(self, *args):
        return getattr(importlib.import_module(self.module_name), self.function)(*args)


def draw_module(draw):
    """The module holding a draw function (a Drawer or any function)."""
    return draw.module_name if isinstance(draw, Drawer) else draw.__module__


@dataclass(frozen=True)
class Spec:
    id: str
    kind: str            # figure | table
    title: str           # as the paper's caption says it
    section: str         # where in the paper (later version unless it says "earlier version")
    draw: Callable       # (FigureData, SeedNotes) -> a matplotlib figure, or a DataFrame for a table
    sweep: str = None    # default: the id
    paper: bool = True   # False: an experiment beyond its source's, which does not set the mini noise unit
    source: str = SODHANI   # the paper whose experiment it is: its claims' mini noise unit, its report section
    why_not_run: tuple = ()   # (scale, why the sweep has no runs at that scale): said on the figure drawn instead

    @property
    def sweep_id(self):
        return self.sweep or self.id


def _spec(rec):
    module, function = rec.draw.rsplit(".", 1)
    return Spec(rec.id, rec.kind, rec.title, rec.section, Drawer(module, function), sweep=rec.sweep, paper=rec.paper,
                source=rec.source, why_not_run=tuple(rec.why_not_run.items()))


SPEC_LIST = [_spec(rec) for rec in load_records()]   # each one's record: paper/figures/<id>.yaml
SPECS = {spec.id: spec for spec in SPEC_LIST}


def select(ids):
    unknown = [i for i in ids if i not in SPECS]
    if unknown:
        raise SystemExit(f"unknown id(s) {unknown}; known: {', '.join(SPECS)}")
    return [SPECS[i] for i in ids] if ids else SPEC_LIST


def _grids(sweep_id, folder=SWEEPS, seen=()):
    """The grids of a sweep file, those of the sweep files it includes (defaults) first."""
    path = Path(folder) / f"{sweep_id}.yaml"
    if not path.exists() or sweep_id in seen:
        return None
    text = yaml.load(path.read_text(), Loader=SAFE_LOADER) or {}
    grids = []
    for entry in text.get("defaults", []):
        if isinstance(entry, str) and entry != "_self_":
            grids += _grids(entry, folder, (*seen, sweep_id)) or []
    return grids + list(((text.get("hydra") or {}).get("sweeper") or {}).get("grids") or [])


def sweep_scales(sweep_id, folder=SWEEPS):
    """The scales a sweep file has jobs at (a grid naming a scale applies at that scale only);
    None when there is no sweep file."""
    grids = _grids(sweep_id, folder)
    if grids is None:
        return None
    scales = set()
    for grid in grids:
        # {include: <id>} has the included sweep's scales, narrowed by its own `scale` if any.
        own = {str(grid["scale"])} if "scale" in grid else {"mini", "paper"}
        scales |= own & (sweep_scales(grid["include"], folder) or set()) if "include" in grid else own
    return scales


@dataclass
class FigureData:
    """One id's collected logs at one scale: records of finished runs and the status of each run
    the sweep needs; `problem` says why there is nothing (no sweep file, not run at this scale)."""
    spec: Spec
    scale: str
    results_root: Path
    records: pd.DataFrame
    status: pd.DataFrame
    problem: str = None

    @property
    def scale_note(self):
        """The scale as the logs say it; a workload's own note (translation_mini) where it has one."""
        if self.records.empty:
            return f"{self.scale.upper()} scale"
        notes = self.records["scale_note"]
        if "cfg.workload.note" in self.records:
            notes = self.records["cfg.workload.note"].where(self.records["cfg.workload.note"].notna(), notes)
        return "; ".join(sorted(set(notes)))

    @property
    def task(self):
        """'translation' when the runs train through fairseq (translation or language models: losses
        in bits per token), else 'vision' (cross-entropy in nats)."""
        if "cfg.workload.task" in self.records and self.records["cfg.workload.task"].isin(FAIRSEQ_TASKS).any():
            return "translation"
        return "vision"

    def status_lines(self):
        if self.problem:
            return [f"{self.spec.id}: {self.problem}"]
        lines = status_lines(self.status, self.spec.sweep_id)
        if self.spec.sweep_id != self.spec.id:
            lines[0] = f"{self.spec.id} (sweep {lines[0]})"
        return lines

    def unreadable(self):
        """The status rows of the sweep's runs whose logs cannot be read (damaged)."""
        return self.status[self.status["state"] == "unreadable"]

    def missing_problem(self):
        """Why this id is not drawn without --allow-missing: its unreadable logs, named; or None."""
        unreadable = self.unreadable()
        if not len(unreadable):
            return None
        said = "; ".join(f"{row.run_id} (seed {row.seed} of {row.setting}): {row.notes}" for row in unreadable.itertuples())
        return (f"{len(unreadable)} run log(s) of sweep {self.spec.sweep_id} cannot be read, so the figure would "
                f"lack their seeds: {said}. Restore or rerun them, or draw without them with --allow-missing "
                "(the figure then names the missing seeds)")

    def status_text(self):
        """The footer's line on runs that are not plotted and runs shared with other sweeps."""
        parts = []
        for state in ("unfinished", "failed", "missing", "unreadable"):
            n = int((self.status["state"] == state).sum())
            if n:
                parts.append(f"{n} {state}")
        text = ("NOT PLOTTED: " + ", ".join(parts) + " run(s) of the sweep") if parts else ""
        unreadable = self.unreadable()
        if len(unreadable):   # drawn with --allow-missing: say which seeds the means lack
            text += "; MISSING SEEDS (unreadable logs): " + ", ".join(
                f"seed {row.seed} of {row.setting}" for row in unreadable.itertuples())
        shared = self.status["shared_from"].dropna()
        if len(shared):
            text += ("; " if text else "") + "runs shared with sweep " + ", ".join(sorted(set(shared)))
        return text


def _derived_columns(records):
    """Columns computed from each record: the model's architecture, validation NLL (translation
    logs it as val_nll and val_loss; vision's val_loss is the same cross-entropy) and the
    measured inter-server bits per iteration."""
    if records.empty:
        return records
    if "val_nll" not in records:
        records["val_nll"] = records.get("val_loss")
    elif "val_loss" in records:
        records["val_nll"] = records["val_nll"].fillna(records["val_loss"])
    if "comm_bits_inter_node" in records:
        records["bits_per_iteration"] = records["comm_bits_inter_node"] / records["step"].where(records["step"] > 0)

    def arch(row, model):
        models = row.get("cfg.workload.models")
        if isinstance(models, list) and models and pd.notna(model):
            return models[int(model)].get("arch", row.get("cfg.workload.arch"))
        return row.get("cfg.workload.arch")
    pairs = records.drop_duplicates(["run_id", "model"])
    arch_of = {(rid, model): arch(row, model) for rid, model, (_, row) in
               zip(pairs["run_id"], pairs["model"], pairs.iterrows())}
    records["model_arch"] = [arch_of.get(key) for key in zip(records["run_id"], records["model"])]
    from .drawing.labels import setup_label

    runs = records.drop_duplicates("run_id").set_index("run_id")
    per_run = {"setup": setup_label, "n_way": _n_way, "gamma": _gamma}
    for column, function in per_run.items():
        records[column] = records["run_id"].map({rid: function(row) for rid, row in runs.iterrows()})
    return records


def _n_way(row):
    """Models that codistill: 1 for all_reduce and for models trained apart (independent, alpha = 0)."""
    return int(row.get("cfg.method.n", 1)) if row.get("cfg.method.name") == "codistill" else 1


def _gamma(row):
    """alpha's growth per epoch: gamma for the exponential schedule, 1 for a constant alpha."""
    if row.get("cfg.method.alpha_schedule") == "exponential":
        return float(row.get("cfg.method.alpha_gamma"))
    return 1.0 if row.get("cfg.method.alpha_schedule") == "constant" else float("nan")


def load(spec, results_root, scale):
    empty = pd.DataFrame(columns=["run_id", "seed", "setting", "state", "shared_from", "notes"])
    scales = sweep_scales(spec.sweep_id)
    try:
        records, status = collect(results_root, spec.sweep_id, scale, kinds=("eval", "test"))
    except ManifestMissing:
        if scales is None:
            problem = f"no sweep file sweeps/{spec.sweep_id}.yaml yet"
        elif scale not in scales:
            problem = f"sweep {spec.sweep_id} has no job at {scale} scale (jobs at: {', '.join(sorted(scales))})"
        else:
            problem = (f"not run at {scale} scale in {results_root} "
                       f"(python src/run.py -m sweep={spec.sweep_id} scale={scale})")
        return FigureData(spec, scale, Path(results_root), pd.DataFrame(), empty, problem)
    # Churn between retrains (figures/logs/churn.py) joins the records as rows of kind "churn" wherever
    # runs saved their validation predictions, so that figures and claims read it as any metric.
    return FigureData(spec, scale, Path(results_root), with_churn(_derived_columns(records), results_root), status)


def output_dir(scale):
    return OUT if scale == "mini" else OUT / scale


def _save_figure(fig, out, id):
    import matplotlib.pyplot as plt

    paths = [out / f"{id}.pdf", out / f"{id}.png"]
    fig.savefig(paths[0])
    fig.savefig(paths[1], dpi=130)
    plt.close(fig)
    return paths


def _table_text(spec, data, table, notes):
    caption = f"{spec.title}. {data.scale_note}; {notes.text()}"
    if data.status_text():
        caption += f"; {data.status_text()}"
    markdown = f"**{spec.title}** — {data.scale_note}\n\n{table.to_markdown(index=False)}\n\n{notes.text()}"
    if data.status_text():
        markdown += f"; {data.status_text()}"
    latex = table.to_latex(index=False, caption=caption.replace("_", r"\_").replace("%", r"\%"),
                           label=f"tab:{spec.id}")
    return markdown + "\n", latex


def render(spec, data, out=None):
    """Draws one id from its collected data; returns the paths written. An id with nothing to
    draw gets a file that says why."""
    out = Path(out) if out else output_dir(data.scale)
    out.mkdir(parents=True, exist_ok=True)
    reason = data.problem or ("no finished run yet" if data.records.empty else None)
    if spec.kind == "table":
        from .drawing.seed_means import SeedNotes

        notes = SeedNotes()
        if reason:
            markdown, latex = f"**{spec.title}** — {data.scale.upper()} scale: {reason}\n", f"% {spec.id}: {reason}\n"
        else:
            markdown, latex = _table_text(spec, data, spec.draw(data, notes), notes)
        paths = [out / f"{spec.id}.md", out / f"{spec.id}.tex"]
        paths[0].write_text(markdown)
        paths[1].write_text(latex)
        return paths
    return _save_figure(draw_figure(spec, data), out, spec.id)


def draw_figure(spec, data):
    """The finished matplotlib figure of a figure id: its plot, title with the scale the logs
    say, footer with seeds and unplotted runs; or a figure saying why there is nothing."""
    from .drawing.layout import finish
    from .drawing.panels import message_figure
    from .drawing.seed_means import SeedNotes

    reason = data.problem or ("no finished run yet" if data.records.empty else None)
    if reason:
        why = dict(spec.why_not_run).get(data.scale)
        return message_figure(spec.title, f"{data.scale.upper()} scale: {reason}" + (f"\n\n{why}" if why else ""))
    notes = SeedNotes()
    return finish(spec.draw(data, notes), spec.title, data.scale_note, notes.text(), data.status_text())


def output_names(spec):
    return [f"{spec.id}.{suffix}" for suffix in (("md", "tex") if spec.kind == "table" else ("pdf", "png"))]


def stamp_of(spec, results_root, scale):
    """The hash of what an id is drawn from (figures/stamps.py)."""
    drawers = {draw_module(other.draw) for other in SPEC_LIST}
    record = [path for path in [RECORDS / f"{spec.id}.yaml"] if path.exists()]   # none: a Spec of one's own
    files = stamps.code_files(draw_module(spec.draw), drawers) + record + stamps.log_files(results_root, spec.sweep_id, scale)
    return stamps.stamp(files, Path(results_root).resolve(), scale, spec.id)


def draw_one(spec_id, results_root, scale, out, allow_missing=False):
    """Loads and draws one id: (status lines, the names written, or the error's text). An id
    with unreadable logs is not drawn unless allow_missing: a mean over fewer seeds than the
    sweep ran would pass for the whole."""
    spec = SPECS[spec_id]
    data = load(spec, results_root, scale)
    if not allow_missing and data.missing_problem():
        return data.status_lines(), [], data.missing_problem()
    try:
        return data.status_lines(), [path.name for path in render(spec, data, out)], None
    except Exception as error:  # one broken id must not hide the others
        return data.status_lines(), [], f"{type(error).__name__}: {error}"


def workers_for(count, jobs=None):
    return max(1, min(count, jobs or cores()))


def draw(specs, results_root, scale, out=None, jobs=None, everything=False, progress=print, allow_missing=False):
    """Draws the ids among `specs` whose stamp changed (all with `everything`), `jobs` processes at
    once (default: one per core); an id with unreadable logs fails unless allow_missing. Returns
    (drawn ids, ids left as they were, {failed id: error})."""
    out = Path(out) if out else output_dir(scale)
    stamped = {spec.id: stamp_of(spec, results_root, scale) for spec in specs}
    due = [spec for spec in specs if everything or not stamps.is_current(
        out, spec.id, stamped[spec.id], [out / name for name in output_names(spec)])]
    kept = [spec.id for spec in specs if spec not in due]
    drawn, failed = [], {}
    if not due:
        return drawn, kept, failed
    # fork: each worker starts with this process's imports (pandas, matplotlib, seaborn: seconds each)
    for module in {draw_module(spec.draw) for spec in due} | {f"{__package__}.drawing.layout"}:
        importlib.import_module(module)
    with ProcessPoolExecutor(workers_for(len(due), jobs), mp_context=multiprocessing.get_context("fork")) as pool:
        futures = [(spec, pool.submit(draw_one, spec.id, results_root, scale, out, allow_missing)) for spec in due]
        for spec, future in futures:
            lines, names, error = future.result()
            progress("\n".join(lines))
            if error:
                failed[spec.id] = error
                progress(f"  FAILED to draw {spec.id}: {error}")
                continue
            stamps.record(out, spec.id, stamped[spec.id])
            drawn.append(spec.id)
            progress(f"  wrote {', '.join(names)}")
    return drawn, kept, failed


def main(argv=None):
    parser = argparse.ArgumentParser(description="draw figures and tables from the logs")
    parser.add_argument("ids", nargs="*", help="figure/table ids (default: all)")
    parser.add_argument("--results", default=str(COMMITTED), help="results root holding runs/ and sweeps/")
    parser.add_argument("--scale", default="mini", choices=["mini", "paper"])
    parser.add_argument("--out", default=None, help="output folder (default figures/out, figures/out/paper)")
    parser.add_argument("--jobs", type=int, default=None, help="processes drawing at once (default: one per core)")
    parser.add_argument("--all", action="store_true", help="draw every id, changed or not")
    parser.add_argument("--allow-missing", action="store_true",
                        help="draw an id even when some of its runs' logs cannot be read (the figure names the "
                             "missing seeds); without it such an id fails, naming the logs")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    drawn, kept, failed = draw(select(args.ids), args.results, args.scale, args.out, args.jobs, args.all,
                               allow_missing=args.allow_missing)
    print(f"{len(drawn)} drawn, {len(kept)} unchanged (inputs as when last drawn) in "
          f"{time.perf_counter() - started:.1f} s" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
