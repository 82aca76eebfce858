"""The reproduction report: for every figure and table, the figure regenerated from the logs, the
status of its runs, and each of the paper's claims about it beside its verdict at each scale
(figures/claims/rule.py decides it, and its prose is the section "Noise and verdicts"); each
workload's accuracy granularity and seed standard error; for every codistillation-vs-all_reduce gap, the
share of it the alpha = 0 control already shows; and the
mini benchmark of a model job killed and rejoining (benchmarks/results.json, figures/kill_rejoin.py).

    python -m figures.report [--results paper/logs] [--md paper/report.md] [--bench benchmarks/results.json]

writes paper/report.md, the figures it shows into paper/figures/ (committed with it), and
paper/report.html (the same report with the figures embedded).
"""
import argparse
import base64
import filecmp
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import markdown

from . import kill_rejoin, registry, tuning
from .claims.configured import CONFIGURED
from .claims.evaluation import (
    Outcome,
    comparison_counts,
    configured_outcome,
    correct,
    distinct_comparisons,
    evaluate,
    load_claims,
)
from .claims.findings import bottom_line, findings_section, frontier_rows, pilot_headlines, table_cell, verdict_mark
from .claims.multiplicity import NAME, corrected_note, describe
from .claims.noise import Resolution
from .claims.rule import ALPHA, CANNOT_DISCRIMINATE, FAILS, HEADING, HOLDS, INCONCLUSIVE, NOT_APPLICABLE, NOT_RUN, prose
from .logs.provenance import provenance_lines
from .paths import BENCH_RESULTS, COMMITTED, REPO
from .regime.verdicts import DOCS, read_declarations

SCALES = ("mini", "paper")
REPORT = REPO / "paper" / "report.md"
STATUS_MARK = {HOLDS: "✅ holds", FAILS: "❌ does not hold",
               CANNOT_DISCRIMINATE: "⚪ cannot discriminate", INCONCLUSIVE: "❔ inconclusive", NOT_RUN: "⏳ not run",
               NOT_APPLICABLE: "n/a"}
# The report's images, in a folder beside it that is committed with it: the figures are drawn into
# figures/out, which git ignores, so a link there shows as a broken image in a clean clone.
IMAGES = "figures"
# final metrics whose seed standard error the noise section states, where a workload logs them
NOISE_METRICS = {"val_top1": "top-1 (points)", "train_loss": "training loss", "val_nll": "validation NLL",
                 "bleu": "BLEU"}


def _git_commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def collect_everything(results_root, out=None):
    """{scale: {id: FigureData}} and {(scale, id): files drawn}, for the scales with any manifest.
    Figures go to registry.output_dir(scale), or under `out` (mini: out, paper: out/paper)."""
    data, drawn = {}, {}
    for scale in SCALES:
        loaded = {spec.id: registry.load(spec, results_root, scale) for spec in registry.SPEC_LIST}
        if all(d.problem for d in loaded.values()):
            continue   # nothing at all was run at this scale
        data[scale] = loaded
        folder = (Path(out) if scale == "mini" else Path(out) / scale) if out else None
        for spec_id, figure_data in loaded.items():
            drawn[(scale, spec_id)] = registry.render(registry.SPECS[spec_id], figure_data, folder)
    return data, drawn


def resolutions(data, source=registry.SODHANI):
    """{scale: Resolution over the records of every figure of `source`'s own experiments at that
    scale}: the mini noise unit (seed s.e.) of a paper's claims comes from that paper's experiments,
    so that one beyond it (frontier) or another paper's (Anil et al.'s) cannot move its margins."""
    def counts(spec_id):
        spec = registry.SPECS[spec_id]
        return spec.paper and spec.source == source
    return {scale: Resolution([d.records for spec_id, d in figures.items() if counts(spec_id)])
            for scale, figures in data.items()}


def evaluate_all(all_claims, data, resolution=None):
    """{(claim id, scale): Outcome}; a scale with no logs at all gives `not run` everywhere. A
    claim's mini margins are in the noise unit of its figure's source (resolution: Sodhani et al.'s)."""
    outcomes, by_source = {}, {registry.SODHANI: resolution or resolutions(data)}
    for claim in all_claims:
        source = registry.SPECS[claim["figure"]].source
        if source not in by_source:
            by_source[source] = resolutions(data, source)
        for scale in SCALES:
            if claim["check"]["kind"] in CONFIGURED:   # decided without logs
                outcome = configured_outcome(claim, scale)
            elif scale not in data:
                outcome = Outcome(NOT_RUN, f"no {scale}-scale logs")
                if scale not in claim.get("scales", SCALES):
                    outcome = Outcome(NOT_APPLICABLE, "paper-scale number")
            else:
                outcome = evaluate(claim, data[scale][claim["figure"]], by_source[source][scale])
            outcomes[(claim["id"], scale)] = outcome
    for scale in SCALES:   # a claim that repeats another's comparison says so, and is counted with it
        for first, later in distinct_comparisons([c["id"] for c in all_claims], outcomes, scale).items():
            for claim_id in later:
                outcomes[(claim_id, scale)].same_as = first
    for scale in data:     # many comparisons: each decided one's p-value, corrected per scale
        unit = {c["id"]: by_source[registry.SPECS[c["figure"]].source][scale] for c in all_claims}
        correct(all_claims, outcomes, data[scale], unit, scale)
    return outcomes


def frontier_at_equal_top1(results_root):
    """The frontier rows of the Findings from the logs in results_root at mini scale (for
    benchmarks/results.md, which states bits per update beside them): the margin's noise unit comes
    from every paper figure, as in the report."""
    data = {spec.id: registry.load(spec, results_root, "mini") for spec in registry.SPEC_LIST}
    claim = next((c for c in load_claims() if c["check"]["kind"] == "fewest_bits"), None)
    return frontier_rows(claim, data["frontier"], resolutions({"mini": data})["mini"])


def _paper_value(claim):
    return f"{claim['value']:g}" if "value" in claim else "(qualitative)"


def summary_section(all_claims, outcomes, data):
    lines = ["## Summary", "", "| scale | comparisons | " + " | ".join(STATUS_MARK.values()) + " |",
             "|---|---|" + "---|" * len(STATUS_MARK)]
    for scale in SCALES:
        for corrected in (False, True) if scale in data else (False,):
            counts = comparison_counts(all_claims, outcomes, scale, corrected)
            label = f"{scale}{'' if scale in data else ' (no logs)'}" + (f", after {NAME}" if corrected else ", raw"
                                                                         if scale in data else "")
            lines.append(f"| {label} | {sum(counts.values())} | "
                         + " | ".join(str(counts[status]) for status in STATUS_MARK) + " |")
    lines += ["", f"{len(all_claims)} claims in the figures' records (`paper/figures/`); each is checked at each scale from the "
              "collected logs of its figure's sweep (final values: last evaluation, mean over a run's models, "
              "then mean over seeds). Claims that test the same runs the same way (the same check, op, metric "
              "and verdict) are one comparison, counted once; each later one names the first under its figure. "
              f"Raw: each verdict at level {ALPHA:g}; after {NAME}: {describe()} (figures/claims/multiplicity.py); a "
              "decided verdict whose adjusted p-value exceeds the level is counted as inconclusive.", ""]
    for scale in SCALES:
        borderline = [c["id"] for c in all_claims if outcomes[(c["id"], scale)].borderline]
        if borderline:
            lines += [f"Borderline at {scale} scale (decided, but within one validation sample of the boundary): "
                      + ", ".join(f"`{i}`" for i in borderline) + ".", ""]
    return lines



def _se_cell(resolution, workload, metric):
    se, settings = resolution.seed_se(workload, metric)
    return "–" if not settings else f"{se:.3f} ({settings})"


def noise_section(data, resolution=None):
    """The verdict rule (figures/claims/rule.py's prose), then per workload and scale: one validation
    sample in points of top-1 and the seed standard error of each final metric (median over the
    workload's settings)."""
    lines = [f"## {HEADING}", "", *prose(), "",
             "| scale | workload | validation samples | one sample (points of top-1) | "
             + " | ".join(f"seed s.e.: {name}" for name in NOISE_METRICS.values()) + " |",
             "|---|---|---|---|" + "---|" * len(NOISE_METRICS)]
    by_source = [(registry.SODHANI, resolution or resolutions(data))]
    by_source += [(source, resolutions(data, source)) for source in registry.SOURCES if source != registry.SODHANI]
    for source, scales in by_source:
        for scale, unit in scales.items():
            for workload in unit.workloads():
                samples = unit.val_samples(workload)
                known = samples == samples
                name = f"`{workload}`" + ("" if source == registry.SODHANI else f" ({source}'s experiments)")
                cells = [scale, name, f"{samples:.0f}" if known else "–", f"{100 / samples:.3f}" if known else "–"]
                cells += [_se_cell(unit, workload, metric) for metric in NOISE_METRICS]
                lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Seed s.e.: the median, over the workload's settings (runs that differ only in their seed; "
              "their number in brackets), of the standard error over seeds of the final value. The margins of "
              f"{registry.ANIL}'s claims are in the unit of its own experiments' rows.", ""]
    return lines


def gap_section(all_claims, outcomes, data):
    """Every codistillation-vs-all_reduce gap a claim compares, with the alpha = 0 control's share."""
    rows = [(claim, scale, outcomes[(claim["id"], scale)]) for claim in all_claims for scale in data
            if outcomes[(claim["id"], scale)].control]
    if not rows:
        return []
    lines = ["## Codistillation vs all_reduce: what the alpha = 0 control already shows", "",
             "For each claim comparing codistillation with all_reduce: the gap codistillation - all_reduce in the "
             "claim's metric, and the same gap for the alpha = 0 control (`method=independent`: the same models, "
             "batches and schedule without the distillation term) with its share of the codistillation gap. A "
             "large share means the gap comes from training two models on half the batch each, not from "
             "distillation.", "", "| claim | scale | metric | gap and alpha = 0 control | verdict |", "|---|---|---|---|---|"]
    for claim, scale, outcome in rows:
        metric = claim["check"].get("metric", claim.get("metric"))
        lines.append(f"| `{claim['id']}` | {scale} | {metric} | {table_cell(outcome.control)} | "
                     f"{verdict_mark(outcome, STATUS_MARK)} |")
    return lines + [""]


def scale_section(data, results_root):
    lines = ["## Scales", ""]
    for scale in SCALES:
        if scale not in data:
            lines.append(f"- **{scale}**: no {scale}-scale logs in `{results_root}`: every {scale} column says "
                         "not run.")
            continue
        notes = sorted({d.scale_note for d in data[scale].values() if not d.records.empty})
        runs = sum(len(d.status) for d in data[scale].values())
        lines.append(f"- **{scale}**: {'; '.join(notes) or 'no finished run'} ({runs} run entries over the "
                     "figures' manifests; runs shared between figures are counted once per figure).")
    lines += ["", "**Mini-scale numbers are not the paper's numbers**: mini runs use small stand-ins "
              "(docs/mini-scale.md) and show whether each effect appears there, not its size. What was changed "
              "in each stand-in after its first results, and why: [docs/mini-scale.md, \"What was changed after a "
              "stand-in's first results\"](../docs/mini-scale.md#what-was-changed-after-a-stand-ins-first-results-and-why).",
              ""]
    return lines + regime_lines(data.get("mini", {}))


# The figures whose verdicts an unmet regime invariant undermines (docs/mini-scale.md).
UNMET_AFFECTS = {"nll_flattened": "fig4, fig12, nmt_exchange_frequency, alpha_gamma (runs stopped while "
                                  "validation NLL still fell)",
                 "paper_alpha_trains": "fig4, fig12, nmt_exchange_frequency, alpha_gamma at alpha_0 = 1 (the "
                                       "codistilled models fall back towards the unigram plateau: a comparison with "
                                       "them measures how much the distillation term damages training here)",
                 "overfits": "iwslt_overfit (its all_reduce baseline does not over-fit, so there is no "
                             "over-fitting for codistillation to reduce)",
                 "fig2_cost": "none (a cost, not a property of the runs)",
                 "reproduce_all_cost": "none (a cost, not a property of the runs)"}


def regime_lines(mini):
    """The regime invariants declared unmet and the figures still drawn from digits, for the header."""
    declared = read_declarations(DOCS)
    digits = sorted(id for id, d in mini.items() if not d.records.empty and "cfg.workload.name" in d.records
                    and (d.records["cfg.workload.name"] == "digits_mlp").any())
    if not declared and not digits:
        return []
    lines = ["**Regime of the mini stand-ins** (`make regime`, docs/mini-scale.md):", ""]
    for (workload, invariant), (measured, _) in sorted(declared.items()):
        # an invariant that means something else per column is keyed by (column, invariant)
        lines.append(f"- `{workload}`: invariant `{invariant}` unmet (measured {measured}); affects "
                     f"{UNMET_AFFECTS.get((workload, invariant), UNMET_AFFECTS.get(invariant, 'see docs/mini-scale.md'))}.")
    if digits:
        lines.append(f"- Still drawn from digits (memorised, at the ceiling; not the paper's regime): "
                     f"{', '.join(digits)}.")
    return lines + [""]


def report_image(png, md_dir, scale):
    """Copies a drawn figure into the report's images (paper scale in its own subfolder) and returns
    its link from the report. A copy already equal is left alone, so that a report regenerated
    from the same logs changes no file."""
    folder = Path(md_dir) / IMAGES / ("" if scale == "mini" else scale)
    target = folder / Path(png).name
    folder.mkdir(parents=True, exist_ok=True)
    if not (target.exists() and filecmp.cmp(png, target, shallow=False)):
        shutil.copyfile(png, target)
    return target.relative_to(md_dir).as_posix()


def prune_images(md_dir, lines):
    """Removes the report's images of figure ids it no longer embeds (a sweep with no runs, a scale
    not run), so that its folder holds only what it shows; files not named after an id stay."""
    linked = set(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", "\n".join(lines)))
    for scale in SCALES:
        folder = Path(md_dir) / IMAGES / ("" if scale == "mini" else scale)
        for image in folder.glob("*.png"):
            if image.stem in registry.SPECS and image.relative_to(md_dir).as_posix() not in linked:
                image.unlink()


def figure_section(spec, all_claims, outcomes, data, drawn, md_dir):
    lines = [f"## {spec.title}", "", f"Paper: {spec.section}. Sweep: `sweeps/{spec.sweep_id}.yaml`.", ""]
    for scale in SCALES:
        if scale not in data:
            continue
        figure_data = data[scale][spec.id]
        lines.append(f"**{scale} scale** — " + "; ".join(figure_data.status_lines()[:1]))
        lines.append("")
        paths = drawn.get((scale, spec.id), [])
        png = [p for p in paths if p.suffix == ".png"] if not figure_data.records.empty else []
        table = [p for p in paths if p.suffix == ".md"]
        if png:
            lines += [f"![{spec.id} at {scale} scale]({report_image(png[0], md_dir, scale)})", ""]
        if table:
            lines += [table[0].read_text().strip(), ""]
        details = [line.strip() for line in figure_data.status_lines()[1:]]
        if details:
            lines += ["<details><summary>run status</summary>", "", *[f"- {table_cell(d)}" for d in details], "",
                      "</details>", ""]
    mine = [c for c in all_claims if c["figure"] == spec.id]
    if spec.id == "multiview":
        lines += ["The claims of Figure 6 (same runs) are listed under Figure 6.", ""]
    if mine:
        lines += ["| claim | setting | paper | " + " | ".join(f"{s} scale: reproduced | {s}: verdict" for s in SCALES)
                  + " |", "|---|---|---|" + "---|---|" * len(SCALES)]
        for claim in mine:
            cells = [f"{table_cell(claim['claim'])} (`{claim['id']}`, {table_cell(claim['section'])})",
                     table_cell(claim["setting"]),
                     _paper_value(claim)]
            for scale in SCALES:
                outcome = outcomes[(claim["id"], scale)]
                shown = ((f"the same comparison as `{outcome.same_as}`; " if outcome.same_as else "")
                         + outcome.reproduced + (f"; {outcome.control}" if outcome.control else "")
                         + corrected_note(outcome))
                cells += [table_cell(shown), verdict_mark(outcome, STATUS_MARK)]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return lines


SOURCE_INTROS = {
    registry.ANIL: "Large scale distributed neural network training through online distillation (ICLR 2018): "
                   "codistillation against its baselines, on disjoint data, with stale checkpoints, against two-phase "
                   "distillation, and its prediction churn between retrains. Its mini stand-ins are "
                   "`clusters_resnet` (figures) and `criteo_mini` (Table 1); its claims' mini margins are in the "
                   "seed standard error of its own experiments.",
}


def source_section(source, all_claims, outcomes, data, drawn, md_dir):
    """The figures and tables of another paper's experiments (Anil et al. 2018), under its name."""
    specs = [spec for spec in registry.SPEC_LIST if spec.source == source]
    if not specs:
        return []
    lines = [f"## {source}", "", SOURCE_INTROS.get(source, ""), "",
             "Its figures and tables: " + ", ".join(f"`{spec.id}`" for spec in specs) + ".", ""]
    for spec in specs:
        lines += figure_section(spec, all_claims, outcomes, data, drawn, md_dir)
    return lines


def write_markdown(all_claims, outcomes, data, drawn, results_root, path, resolution=None, bench=BENCH_RESULTS):
    lines = ["# Reproduction report: A Closer Look at Codistillation for Distributed Training", "",
             f"Generated by `make report` (`figures/report.py`) at commit `{_git_commit()}` from the logs in "
             f"`{results_root}`; every number below is computed from those logs (`metrics.jsonl`) and "
             "the figures' records in `paper/figures/`, except the section on model jobs killed and rejoining, which comes from the "
             f"benchmark numbers in `{os.path.relpath(bench, REPO)}`. Regenerate with `make report`.", ""]
    resolution = resolution or resolutions(data)
    mini = data.get("mini")
    lines += bottom_line(all_claims, outcomes, mini, pilot_headlines(all_claims, mini, resolution["mini"]) if mini
                         else None)
    lines += findings_section(all_claims, outcomes, data, STATUS_MARK, resolution)
    lines += scale_section(data, results_root)
    lines += provenance_lines(results_root)
    lines += summary_section(all_claims, outcomes, data)
    lines += noise_section(data, resolution)
    lines += gap_section(all_claims, outcomes, data)
    lines += tuning.report_section(results_root)
    lines += kill_rejoin.report_section(Path(bench))
    for spec in registry.SPEC_LIST:
        if spec.source == registry.SODHANI:
            lines += figure_section(spec, all_claims, outcomes, data, drawn, path.parent)
    for source in registry.SOURCES[1:]:
        lines += source_section(source, all_claims, outcomes, data, drawn, path.parent)
    prune_images(path.parent, lines)
    path.write_text("\n".join(lines) + "\n")


def _embed_images(html, base):
    def data_uri(match):
        image = (base / match.group(1)).resolve()
        if not image.exists():
            return match.group(0)
        return f'src="data:image/png;base64,{base64.b64encode(image.read_bytes()).decode()}"'
    return re.sub(r'src="([^"]+\.png)"', data_uri, html)


def write_html(md_path, html_path):
    body = markdown.markdown(md_path.read_text(), extensions=["tables", "md_in_html", "toc"])
    style = ("body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em;line-height:1.4}"
             "table{border-collapse:collapse;font-size:90%}td,th{border:1px solid #ccc;padding:3px 6px;"
             "vertical-align:top}img{max-width:100%}")
    html = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>codistill reproduction report</title>"
            f"<style>{style}</style></head><body>{body}</body></html>")
    html_path.write_text(_embed_images(html, md_path.parent))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=str(COMMITTED))
    parser.add_argument("--md", default=str(REPORT))
    parser.add_argument("--claims", default=None, help="a claims file of one's own (default: the figures' records)")
    parser.add_argument("--out", default=None, help="figure folder (default figures/out, figures/out/paper)")
    parser.add_argument("--bench", default=str(BENCH_RESULTS), help="the benchmarks' results.json (part modeljobs)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    all_claims = load_claims(args.claims)
    unknown = sorted({c["figure"] for c in all_claims} - set(registry.SPECS))
    if unknown:
        raise SystemExit(f"{args.claims or 'paper/figures'}: unknown figure ids {unknown}")
    data, drawn = collect_everything(args.results, args.out)
    resolution = resolutions(data)
    outcomes = evaluate_all(all_claims, data, resolution)
    md_path = Path(args.md)
    md_path.parent.mkdir(parents=True, exist_ok=True)
    write_markdown(all_claims, outcomes, data, drawn, args.results, md_path, resolution, args.bench)
    write_html(md_path, md_path.with_suffix(".html"))
    for scale in SCALES:
        counts = comparison_counts(all_claims, outcomes, scale)
        print(f"{scale}: {sum(counts.values())} comparisons, " + ", ".join(f"{counts[s]} {s}" for s in STATUS_MARK))
    print(f"wrote {md_path} and {md_path.with_suffix('.html')} in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
