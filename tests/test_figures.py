"""Figures, tables, claims and the report from small hand-made log trees: the plotted values are
read back from the figure's artists (lines, bands, bars, error bars), never from the image, and
compared with means and standard errors computed by hand."""
import math
import re

import matplotlib.pyplot as plt
import numpy as np
import pytest
import yaml
from test_collect import config, eval_record, write_manifest, write_run

from figures import registry, report
from figures.claims.evaluation import evaluate, load_claims
from figures.claims.rule import CANNOT_DISCRIMINATE, FAILS, HOLDS, INCONCLUSIVE, NOT_APPLICABLE, NOT_RUN
from figures.paths import REPO

# the experiment ids: the later version's figures and tables, the earlier version's studies, the pretraining
EXPERIMENT_IDS = {*(f"fig{i}" for i in range(1, 18)), "table1", "table2", "iwslt_overfit", "exchange_frequency",
                  "lr_robustness", "nmt_exchange_frequency", "alpha_gamma", "alpha_schedule_vision", "multiview",
                  "wrn_pretrain", "frontier", "fig2_regimes", "tuned_baselines", "table2_matched",  # beyond the paper
                  "frontier8", "frontier8_curves", "frontier8_bits", "frontier8_lm", "frontier8_lm_curves", "frontier8_lm_bits",
                  "anil_fig2a", "anil_fig2b", "anil_fig4", "anil_fig4_lm", "anil_two_phase", "anil_table1"}  # Anil et al. 2018's


def se(values):
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) / math.sqrt(len(values))


def run_with(root, run_id, cfg, per_step, sweep_id, models=2, **record):
    """A finished run whose every model logs per_step[step] = (val_top1, train_loss)."""
    records = [eval_record(step, m, val_top1=top1, train_loss=loss, **record)
               for step, (top1, loss) in per_step.items() for m in range(models)]
    write_run(root, run_id, cfg, records, sweep_id)


# fig5: n = 2 and n = 4, three seeds each; top-1 at steps 10 and 20
FIG5_TOP1 = {2: {10: [60.0, 62.0, 67.0], 20: [90.0, 91.0, 95.0]},
             4: {10: [61.0, 61.0, 64.0], 20: [90.5, 91.5, 92.0]}}


def fig5_tree(root):
    entries = []
    for n, by_step in FIG5_TOP1.items():
        for seed in range(3):
            run_id = f"n{n}s{seed}"
            per_step = {step: (top1[seed], 1.0 / (step + seed)) for step, top1 in by_step.items()}
            run_with(root, run_id, config(seed, **{"method.n": n}), per_step, "fig5", models=n)
            entries.append((run_id, [f"method.n={n}", f"seed={seed}"]))
    write_manifest(root, "fig5", entries)


# fig16: final top-1 per (method, fraction); codistillation at 1/2 lacks seed 2
FIG16_TOP1 = {("allreduce", 1.0): [94.0, 95.0, 96.5], ("allreduce", 0.5): [90.0, 91.0, 92.0],
              ("codistill", 1.0): [95.0, 95.5, 96.0], ("codistill", 0.5): [93.0, 94.0]}


def fig16_tree(root):
    entries = []
    for (method, fraction), values in FIG16_TOP1.items():
        for seed, top1 in enumerate(values):
            run_id = f"{method}-{fraction}-{seed}"
            cfg = config(seed, **{"method.name": method, "method.n": 2 if method == "codistill" else 1,
                                  "data.fraction": fraction})
            run_with(root, run_id, cfg, {10: (50.0, 2.0), 20: (top1, 0.1 * fraction)}, "fig16")
            entries.append((run_id, [f"method={method}", f"data.fraction={fraction}", f"seed={seed}"]))
    entries.append(("codistill-0.5-2", ["method=codistill", "data.fraction=0.5", "seed=2"]))   # never ran
    write_manifest(root, "fig16", entries)


# fig1: measured bits per iteration = comm_bits_inter_node / step at the last evaluation
FIG1_RUNS = {"ar": ("allreduce", None, 1, 2000, 95.0), "p1": ("codistill", "predictions", 1, 40, 94.8),
             "p5": ("codistill", "predictions", 5, 8, 94.6), "c9": ("codistill", "checkpoints", 9, 100, 94.0)}


def fig1_tree(root):
    entries = []
    for name, (method, exchange, period, bits_at_20, top1) in FIG1_RUNS.items():
        for seed in range(3):
            cfg = config(seed, **{"method.name": method, "method.exchange": exchange, "method.period": period})
            records = [eval_record(10, 0, comm_bits_inter_node=bits_at_20 // 2),
                       eval_record(20, 0, comm_bits_inter_node=bits_at_20, val_top1=top1 + seed)]
            write_run(root, f"{name}{seed}", cfg, records, "fig1")
            entries.append((f"{name}{seed}", [f"method={method}", f"method.period={period}", f"seed={seed}"]))
    write_manifest(root, "fig1", entries)


# table1: final training loss and top-1 per batch size (b per model 16, 32)
TABLE1 = {0.5: ([1.10, 1.20, 1.15], [75.0, 76.0, 77.5]), 1: ([1.00, 1.04, 1.08], [76.0, 76.5, 77.0])}


def table1_tree(root):
    entries = []
    for batch_scale, (losses, top1s) in TABLE1.items():
        for seed in range(3):
            run_id = f"b{batch_scale}s{seed}"
            run_with(root, run_id, config(seed, batch_scale=batch_scale),
                     {20: (top1s[seed], losses[seed])}, "table1", batch_per_model=int(32 * batch_scale))
            entries.append((run_id, [f"batch_scale={batch_scale}", f"seed={seed}"]))
    write_manifest(root, "table1", entries)


@pytest.fixture
def logs(tmp_path):
    root = tmp_path / "logs"
    for build in (fig5_tree, fig16_tree, fig1_tree, table1_tree):
        build(root)
    return root


def drawn(root, id):
    spec = registry.SPECS[id]
    return registry.draw_figure(spec, registry.load(spec, root, "mini"))


def by_gid(artists, gid):
    found = [a for a in artists if a.get_gid() == gid]
    assert len(found) == 1, f"{gid}: {[a.get_gid() for a in artists]}"
    return found[0]


def figure_text(fig):
    return " ".join(t.get_text() for t in fig.texts) + " " + fig._suptitle.get_text()


def test_curves_are_seed_means_with_a_standard_error_band(logs):
    fig = drawn(logs, "fig5")
    top1_axes = fig.axes[1]
    assert top1_axes.get_title() == "(b) top-1"
    for n, by_step in FIG5_TOP1.items():
        line = by_gid(top1_axes.lines, f"{n}-way").get_xydata()
        expected = [[step, sum(values) / 3] for step, values in by_step.items()]
        assert np.allclose(line, expected)
        band = by_gid(top1_axes.collections, f"{n}-way s.e.").get_paths()[0].vertices
        for step, values in by_step.items():
            ys = band[band[:, 0] == step][:, 1]
            mean = sum(values) / 3
            assert ys.min() == pytest.approx(mean - se(values)) and ys.max() == pytest.approx(mean + se(values))
    text = figure_text(fig)
    assert "mean ± 1 s.e. over 3 seeds" in text and "FEWER" not in text
    assert "MINI scale (test fixture)" in text     # the scale, as the logs say it
    plt.close(fig)


def test_final_values_are_seed_means_as_points_with_standard_error_bars_and_flag_a_missing_seed(logs):
    fig = drawn(logs, "fig16")
    ax = fig.axes[0]
    assert not ax.patches   # points, not bars: a top-1 axis need not start at zero
    for (method, fraction), values in FIG16_TOP1.items():
        label = {"allreduce": "all_reduce", "codistill": "codistillation"}[method]
        gid = f"{label}|1/{1 / fraction:g}"
        mean = sum(values) / len(values)
        assert by_gid(ax.lines, gid).get_ydata()[0] == pytest.approx(mean)
        (segment,) = by_gid(ax.collections, f"{gid} s.e.").get_segments()
        assert sorted(segment[:, 1]) == [pytest.approx(mean - se(values)), pytest.approx(mean + se(values))]
    text = figure_text(fig)
    assert "FEWER THAN 3 SEEDS (2 seeds: 1/2 / codistillation)" in text
    assert "NOT PLOTTED: 1 missing run(s)" in text
    plt.close(fig)


def test_figure_1_x_axis_is_the_measured_inter_server_bits_per_iteration(logs):
    fig = drawn(logs, "fig1")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and "measured" in ax.get_xlabel()
    predictions = by_gid(ax.lines, "codistillation, predictions").get_xydata()
    # 8 bits over 20 updates (T = 5) and 40 over 20 (T = 1); top-1 94.6 + seed and 94.8 + seed
    assert np.allclose(predictions, [[0.4, 95.6], [2.0, 95.8]])
    assert np.allclose(by_gid(ax.lines, "all_reduce").get_xydata(), [[100.0, 96.0]])
    assert by_gid(ax.lines, "codistillation, checkpoints").get_xydata()[0, 0] == pytest.approx(5.0)
    plt.close(fig)


def test_table_1_text_holds_the_seed_means_and_standard_errors(logs, tmp_path):
    spec = registry.SPECS["table1"]
    paths = registry.render(spec, registry.load(spec, logs, "mini"), tmp_path / "out")
    markdown, latex = (p.read_text() for p in paths)
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in markdown.splitlines()
            if line.startswith("|") and "---" not in line]
    expected = [["Batch Size", "Training Loss (cross-entropy, nats)", "Validation Accuracy (%)", "seeds"]]
    for batch_scale, (losses, top1s) in TABLE1.items():
        expected.append([f"2 × {int(32 * batch_scale)}", f"{sum(losses) / 3:.2f} ± {se(losses):.2f}",
                         f"{sum(top1s) / 3:.2f} ± {se(top1s):.2f}", "3"])
    assert rows == expected
    assert expected[1][1] == "1.15 ± 0.03" and expected[2][2] == "76.50 ± 0.29"   # by hand
    assert "MINI scale (test fixture)" in markdown and "mean ± 1 s.e. over 3 seeds" in markdown
    assert r"\begin{table}" in latex and "1.15 ± 0.03" in latex and "MINI scale" in latex


def claim(kind_check, metric="val_top1", figure="fig5", **extra):
    return {"id": "t", "figure": figure, "section": "s", "claim": "c", "setting": "s", "metric": metric,
            "check": kind_check, **extra}


def test_claims_hold_fail_or_were_not_run_from_the_collected_table(logs, tmp_path):
    data = registry.load(registry.SPECS["fig5"], logs, "mini")
    n2, n4 = sum(FIG5_TOP1[2][20]) / 3, sum(FIG5_TOP1[4][20]) / 3      # 92.0 and 91.333...
    # s.e. 1.528 (n = 2) and 0.441 (n = 4), combined 1.590 with Welch's (1.528² + 0.441²)² /
    # (1.528⁴ / 2 + 0.441⁴ / 2) = 2.33 degrees of freedom, whose one-sided 95 % t quantile is 2.656: noise
    # 2.656 x 1.590 = 4.223 (no sample count in these logs); at mini the margin is k x the median s.e. of
    # the two settings, 0.984
    within = claim({"kind": "compare", "a": {"method.n": 4}, "b": {"method.n": 2}, "op": "within", "margin": 0.7,
                    "mini_margin_se": 5.2})
    outcome = evaluate(within, data)      # 0.667 + 4.223 = 4.889 <= 5.2 x 0.984 = 5.118
    assert outcome.status == HOLDS and f"a - b = {n4 - n2:+.3f}" in outcome.reproduced
    assert "noise 4.223 = t 2.66 (df 2.3) x s.e. 1.590" in outcome.reproduced
    tight = dict(within, check={**within["check"], "mini_margin_se": 4.8})
    assert evaluate(tight, data).status == INCONCLUSIVE      # 4.889 > 4.8 x 0.984 = 4.724
    value = claim({"kind": "value", "group": {"method.n": 2}, "tolerance": 0.3}, value=76.1, scales=["paper"])
    outcome = evaluate(value, data)     # a paper-scale number at mini: n/a, the mini value shown as such
    assert outcome.status == NOT_APPLICABLE and outcome.reproduced.startswith("MINI value 92.000 ± 1.528;")
    paper = registry.load(registry.SPECS["fig5"], logs, "paper")
    assert evaluate(value, paper).status == NOT_RUN
    unmatched = claim({"kind": "compare", "a": {"method.n": 8}, "b": {"method.n": 2}, "op": "less"})
    assert evaluate(unmatched, data).status == NOT_RUN
    fig16 = registry.load(registry.SPECS["fig16"], logs, "mini")
    gap = claim({"kind": "monotone", "group": {"method.name": "codistill"}, "minus": {"method.name": "allreduce"},
                 "by": "data.fraction", "order": "decreasing"}, figure="fig16")
    # codistill - all_reduce: 93.5 - 91 = 2.5 at 1/2, 95.5 - 95.1667 = 0.33 at 1: decreasing in the fraction,
    # by 2.167, just beyond its noise: s.e. sqrt(0.5² + 0.577² + 0.289² + 0.726²) = 1.093 with Welch's
    # 5.47 degrees of freedom (the 2-seed group's variance counting with 1), t quantile 1.977: 2.161
    outcome = evaluate(gap, fig16)
    assert outcome.status == HOLDS and "FEWER THAN 3 SEEDS: 2" in outcome.reproduced
    assert "steps -2.167 (noise 2.161)" in outcome.reproduced
    fig1 = registry.load(registry.SPECS["fig1"], logs, "mini")
    tradeoff = claim({"kind": "tradeoff", "a": {"method.exchange": "predictions"}, "b": {"method.name": "allreduce"},
                      "by": "method.period", "cost": "bits_per_iteration", "tolerance": 2.5, "min_ratio": 250},
                     figure="fig1")
    # T = 5: 95.6 vs 96.0 (s.e. 0.577 each: noise 1.633), -0.4 - 1.633 >= -2.5; 100 / 0.4 = 250x fewer bits;
    # but these logs have no alpha = 0 control to fail the claim, so reaching all_reduce cannot be told
    # from what two models that never communicate would do
    outcome = evaluate(tradeoff, fig1)
    assert outcome.status == CANNOT_DISCRIMINATE and "-0.4" not in outcome.reproduced.split("best:")[0]
    assert "best: method.period=5, val_top1 95.600 vs 96.000" in outcome.reproduced
    assert evaluate(dict(tradeoff, check={**tradeoff["check"], "min_ratio": 251}), fig1).status == FAILS


@pytest.mark.slow
def test_the_report_marks_each_claim_at_each_scale_and_draws_every_id(logs, tmp_path):
    claims_file = tmp_path / "claims.yaml"
    claims_file.write_text(yaml.safe_dump({"claims": [
        claim({"kind": "compare", "a": {"method.n": 4}, "b": {"method.n": 2}, "op": "within", "margin": 0.7,
               "mini_margin_se": 9}, id="n4-like-n2"),   # 0.667 + 4.223 <= 9 x 0.577 (every figure's median s.e.)
        claim({"kind": "compare", "a": {"method.n": 4}, "b": {"method.n": 2}, "op": "greater"}, id="n4-better"),
        claim({"kind": "value", "group": {"method.name": "allreduce"}, "tolerance": 0.3}, figure="fig2",
              value=76.13, scales=["paper"], id="allreduce-76"),
        claim({"kind": "compare", "a": {"method.name": "codistill"}, "b": {"method.name": "allreduce"},
               "op": "within", "margin": 0.5, "mini_margin_se": 7}, figure="fig2", id="fig2-close")]}))
    out, md = tmp_path / "out", tmp_path / "paper" / "report.md"
    report.main(["--results", str(logs), "--md", str(md), "--claims", str(claims_file), "--out", str(out)])
    text = md.read_text()
    row = {line.split("`")[1]: line for line in text.splitlines() if line.startswith("| c (`")}
    assert row["n4-like-n2"].endswith("| ✅ holds | no paper-scale logs | ⏳ not run |")
    assert "| ❔ inconclusive |" in row["n4-better"]        # -0.667 within its noise 4.223
    assert "| 76.13 | paper-scale number: not comparable at this scale | n/a |" in row["allreduce-76"]   # fig2 not run
    assert "| ⏳ not run |" in row["fig2-close"] and "not run at mini scale" in row["fig2-close"]
    assert "| mini, raw | 4 | 1 | 0 | 0 | 1 | 1 | 1 |" in text             # the summary counts comparisons
    assert "![fig5 at mini scale](figures/fig5.png)" in text   # a copy beside the report, not figures/out
    assert (md.parent / "figures" / "fig5.png").read_bytes() == (out / "fig5.png").read_bytes()
    for spec in registry.SPEC_LIST:     # a file for every id, drawn or saying why not
        suffixes = ("md", "tex") if spec.kind == "table" else ("pdf", "png")
        assert all((out / f"{spec.id}.{s}").stat().st_size > 0 for s in suffixes), spec.id
    html = md.with_suffix(".html").read_text()
    # a figure is embedded only where it has runs to draw: no empty image in the report
    embedded = re.findall(r"!\[(\w+) at mini scale\]", text)
    assert "fig5" in embedded and "wrn_pretrain" not in embedded and "fig2" not in embedded
    assert len(re.findall(r'<img[^>]+src="data:image/png;base64,', html)) == len(embedded)
    assert "<table>" in html


def test_the_registry_covers_every_experiment_and_every_sweep_file():
    assert set(registry.SPECS) == EXPERIMENT_IDS
    sweep_files = {path.stem for path in (REPO / "sweeps").glob("*.yaml")}
    from figures import reproduce_all  # the regime check's sweep is run by make reproduce-all, drawn by no figure

    assert sweep_files <= {spec.sweep_id for spec in registry.SPEC_LIST} | set(reproduce_all.CHECK_SWEEPS)
    assert "regime" in reproduce_all.sweeps_at("mini")[0]


def test_the_scales_of_a_sweep_come_from_its_grids_and_those_it_includes(tmp_path):
    (tmp_path / "both.yaml").write_text("hydra:\n  sweeper:\n    grids:\n      - {method: allreduce}\n"
                                        "      - {scale: paper, method: codistill}\n")
    (tmp_path / "paper_only.yaml").write_text("hydra:\n  sweeper:\n    grids:\n      - {scale: paper, seed: '0'}\n")
    (tmp_path / "same_runs.yaml").write_text("defaults:\n  - paper_only\n  - _self_\nsweep_id: same_runs\n")
    assert registry.sweep_scales("both", tmp_path) == {"mini", "paper"}
    assert registry.sweep_scales("paper_only", tmp_path) == {"paper"}
    assert registry.sweep_scales("same_runs", tmp_path) == {"paper"}
    assert registry.sweep_scales("absent", tmp_path) is None
    (tmp_path / "includes.yaml").write_text("hydra:\n  sweeper:\n    grids:\n      - {include: paper_only}\n")
    (tmp_path / "narrows.yaml").write_text("hydra:\n  sweeper:\n    grids:\n      - {include: both, scale: mini}\n")
    (tmp_path / "disjoint.yaml").write_text("hydra:\n  sweeper:\n    grids:\n      - {include: paper_only, scale: mini}\n")
    assert registry.sweep_scales("includes", tmp_path) == {"paper"}      # {include: <id>}: that sweep's scales
    assert registry.sweep_scales("narrows", tmp_path) == {"mini"}
    assert registry.sweep_scales("disjoint", tmp_path) == set()


def test_the_claims_file_is_well_formed_and_every_id_has_a_claim():
    all_claims = load_claims()
    figures = {c["figure"] for c in all_claims}
    assert figures <= set(registry.SPECS)
    # Figure 6's claims cover multiview's runs, frontier8's (and frontier8_lm's) those of its curves and its table
    assert set(registry.SPECS) - figures == {"multiview", "frontier8_curves", "frontier8_bits", "frontier8_lm_curves",
                                             "frontier8_lm_bits"}
    for c in all_claims:
        assert {"id", "figure", "section", "claim", "setting", "metric", "check"} <= set(c), c["id"]
        assert set(c.get("scales", ["mini", "paper"])) <= {"mini", "paper"}
    numbers = {(c["figure"], c["value"]) for c in all_claims if "value" in c}
    assert {("table1", 75.61), ("table1", 1.14), ("table2", 33.94), ("iwslt_overfit", 2.31),
            ("fig2", 76.13), ("fig1", 76.1), ("alpha_gamma", 2.12), ("wrn_pretrain", 94.92)} <= numbers


TRANSLATION_NOTE = "MINI scale (generated corpus, test fixture)"
TABLE2_BLEU = {1: [30.0, 31.0, 32.5], 2: [31.0, 31.5, 33.0], 4: [32.0, 33.0, 34.0]}


def table2_tree(root):
    """IWSLT-like runs: eval records with validation NLL, a `test` record with BLEU per model."""
    entries = []
    for n, bleus in TABLE2_BLEU.items():
        for seed, bleu in enumerate(bleus):
            cfg = config(seed, **{"method.name": "allreduce" if n == 1 else "codistill", "method.n": n,
                                  "workload.name": "translation_mini", "workload.note": TRANSLATION_NOTE,
                                  "schedule.label_smoothing": 0.1 if n == 1 else 0.0})   # as the recipe
            models = range(n)
            records = [eval_record(40, m, val_nll=2.5, val_loss=2.5) for m in models]
            # the models' BLEU differ by ±0.5 around the run's value: the table averages them
            records += [{"kind": "test", "model": m, "step": 40, "bleu": bleu + (0.5 if m % 2 else -0.5) * (n > 1)}
                        for m in models]
            write_run(root, f"t{n}s{seed}", cfg, records, "table2")
            entries.append((f"t{n}s{seed}", [f"method.n={n}", f"seed={seed}"]))
    write_manifest(root, "table2", entries)


def test_table_2_reads_bleu_from_test_records_and_names_the_workloads_scale(tmp_path):
    table2_tree(tmp_path)
    spec = registry.SPECS["table2"]
    data = registry.load(spec, tmp_path, "mini")
    markdown = registry.render(spec, data, tmp_path / "out")[0].read_text()
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in markdown.splitlines()
            if line.startswith("|") and "---" not in line]
    assert rows == [["n", "label smoothing", "BLEU Score", "seeds"]] + [
        [str(n), "0.1" if n == 1 else "0", f"{sum(b) / 3:.2f} ± {se(b):.2f}", "3"] for n, b in TABLE2_BLEU.items()]
    assert TRANSLATION_NOTE in markdown and "digits" not in markdown
    increasing = claim({"kind": "monotone", "group": {}, "by": "n_way", "order": "increasing"}, metric="bleu",
                       figure="table2")
    outcome = evaluate(increasing, data)      # steps +0.667, +1.167, each within its noise
    assert outcome.status == INCONCLUSIVE and "1: 31.167, 2: 31.833, 4: 33.000" in outcome.reproduced


ALPHA_GAMMA_NLL = {("exponential", 0.5): [2.11, 2.12, 2.13], ("exponential", 1.0): [2.20, 2.21, 2.22],
                   ("constant", 0.5): [2.30, 2.31, 2.32], ("constant", 1.0): [2.14, 2.15, 2.16]}


def write_alpha_gamma_logs(root):
    """alpha_gamma's sweep with ALPHA_GAMMA_NLL's final validation NLLs, two models a run."""
    entries = []
    for (schedule, alpha), finals in ALPHA_GAMMA_NLL.items():
        for seed, nll in enumerate(finals):
            run_id = f"{schedule}-{alpha}-{seed}"
            cfg = config(seed, **{"method.alpha_schedule": schedule, "method.alpha": alpha, "method.alpha_gamma": 1.1})
            write_run(root, run_id, cfg, [eval_record(10, m, val_nll=3.0) for m in (0, 1)] +
                      [eval_record(20, m, val_nll=nll) for m in (0, 1)], "alpha_gamma")
            entries.append((run_id, [f"method.alpha_schedule={schedule}", f"method.alpha={alpha}", f"seed={seed}"]))
    write_manifest(root, "alpha_gamma", entries)


def test_alpha_gamma_keeps_each_gammas_best_initial_alpha(tmp_path):
    write_alpha_gamma_logs(tmp_path)
    data = registry.load(registry.SPECS["alpha_gamma"], tmp_path, "mini")
    best = {"kind": "compare", "a": {"gamma": 1.1, "best_over": "method.alpha", "best": "min"},
            "b": {"gamma": 1.0, "best_over": "method.alpha", "best": "min"}, "op": "less"}
    outcome = evaluate(claim(best, metric="val_nll", figure="alpha_gamma"), data)
    # -0.03 beyond Welch's noise 2.132 (4 degrees of freedom) x sqrt(2) x 0.00577 = 0.017
    assert outcome.status == HOLDS and "a 2.120 ± 0.006, b 2.150 ± 0.006" in outcome.reproduced
    fig = registry.draw_figure(registry.SPECS["alpha_gamma"], data)
    curves = fig.axes[1]     # (b): each gamma with its best initial alpha only
    assert sorted(line.get_gid() for line in curves.lines if line.get_gid()) == [
        "γ = 1 (constant α), α₀ = 1", "γ = 1.1, α₀ = 0.5"]
    assert by_gid(curves.lines, "γ = 1.1, α₀ = 0.5").get_ydata()[-1] == pytest.approx(2.12)
    finals = by_gid(fig.axes[0].lines, "γ = 1.1").get_xydata()   # (a): final NLL against the initial alpha
    assert np.allclose(finals, [[0.5, 2.12], [1.0, 2.21]])
    plt.close(fig)


@pytest.mark.parametrize("low, high", [(1.03, 2.3), (0.95, 2.3), (0.2, 3.0), (0.01, 5.0), (2.9, 3.4), (0.5, 0.9)])
def test_a_log_loss_axis_labels_at_least_four_plain_ticks_inside_any_range(low, high):
    """Fig. 17's training loss spans 1.03-2.3: 1-2-5 ticks give one label, too few to read."""
    from figures.drawing.log_axis import PlainLogLocator

    ticks = np.asarray(PlainLogLocator().tick_values(low, high))
    inside = ticks[(ticks >= low) & (ticks <= high)]
    assert 4 <= len(inside) <= 10, inside
    assert np.all(np.diff(inside) > 0)
