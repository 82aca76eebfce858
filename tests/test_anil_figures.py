"""Anil et al. 2018's figures and Table 1 from hand-made log trees: churn between retrains from
hand-made prediction files (mean absolute difference and flipped predictions computed by hand, the
prediction each kind of run serves, the disjoint pairs of seeds), the predictions packed with the
logs, the plotted curves read back from the figure's lines, the table's cells and a claim on churn,
and the report's section for Anil et al."""
import math
import re

import numpy as np
import pytest
import yaml
from test_collect import config, eval_record, write_manifest, write_run

from figures import pack, registry, report
from figures.claims.evaluation import evaluate
from figures.claims.groups import group_stats
from figures.claims.rule import FAILS, HOLDS, INCONCLUSIVE
from figures.drawing import anil
from figures.drawing.seed_means import SeedNotes
from figures.logs import churn


def se(values):
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) / math.sqrt(len(values))


def save(directory, model, rows):
    directory.mkdir(parents=True, exist_ok=True)
    np.save(directory / f"predictions-model{model}.npy", np.array(rows, dtype=np.float16))


# ---------------------------------------------------------------- churn from prediction files

def test_churn_of_two_hand_made_prediction_sets(tmp_path):
    # float16-exact probabilities; per example |p_a(click) - p_b(click)| = 0.25, 0.25, 0 -> 1/6;
    # the predicted class differs on the second example only (the third is a tie both ways: class 0)
    save(tmp_path / "a", 0, [[0.875, 0.125], [0.375, 0.625], [0.5, 0.5]])
    save(tmp_path / "b", 0, [[0.625, 0.375], [0.625, 0.375], [0.5, 0.5]])
    a, b = churn.read_predictions(tmp_path / "a")[0], churn.read_predictions(tmp_path / "b")[0]
    mad, flips = churn.churn(a, b)
    assert mad == pytest.approx(1 / 6) and flips == pytest.approx(1 / 3)
    # three classes: the total-variation distance 1/2 (0.25 + 0.25 + 0)
    assert churn.churn(np.array([[0.5, 0.25, 0.25]]), np.array([[0.25, 0.5, 0.25]])) == pytest.approx((0.25, 1.0))
    with pytest.raises(ValueError, match="not the same validation set"):
        churn.churn(a, b[:2])


def test_a_run_serves_its_ensembles_mean_or_model_0():
    predictions = {0: np.array([[0.75, 0.25]]), 1: np.array([[0.25, 0.75]])}
    assert churn.served(predictions, "independent").tolist() == [[0.5, 0.5]]     # an ensemble: the mean
    assert churn.served(predictions, "codistill").tolist() == [[0.75, 0.25]]     # one copy: model 0
    assert churn.served({0: predictions[1]}, "allreduce").tolist() == [[0.25, 0.75]]


def test_retrains_are_paired_disjointly_in_seed_order():
    assert churn.seed_pairs([4, 0, 3, 1, 2]) == [(0, 1), (2, 3)]      # seed 4 has no partner
    assert churn.seed_pairs([7, 5]) == [(5, 7)] and churn.seed_pairs([3]) == []


# ---------------------------------------------------------------- Table 1 from a results tree

N_VAL = 8
BASE = np.array([10, 20, 30, 40, 24, 34, 44, 54])        # p(click) x 64 of each validation example
AMPLITUDE = {"allreduce": 3, "independent": 3, "codistill": 1}
TABLE1_SEEDS = {"allreduce": range(6), "independent": range(5), "codistill": range(6)}
VAL_LOSS = {"allreduce": 0.46, "independent": 0.455, "codistill": 0.452}


def p_click(method, seed, model):
    """float16-exact probabilities (multiples of 1/64): seed and model move each example's p(click);
    model 1 of a codistilled run is far from model 0, so that averaging them would show."""
    k = BASE + ((seed * 3 + np.arange(N_VAL) * 5 + model * 2) % 7 - 3) * AMPLITUDE[method]
    if method == "codistill" and model == 1:
        k = 64 - k
    return np.clip(k, 1, 63) / 64


def table1_tree(root, sweep="anil_table1"):
    entries = []
    for method, seeds in TABLE1_SEEDS.items():
        n = 1 if method == "allreduce" else 2
        for seed in seeds:
            run_id = f"{method}-{seed}"
            cfg = config(seed, **{"method.name": method, "method.n": n, "workload.name": "criteo_mini"})
            records = []
            for model in range(n):
                loss = VAL_LOSS[method] + 0.001 * seed + 0.002 * model
                ensemble = VAL_LOSS[method] - 0.004 + 0.0005 * seed if method == "independent" else None
                records.append(eval_record(50, model, val_loss=loss, ensemble_val_loss=ensemble, val_samples=N_VAL))
                p = p_click(method, seed, model)
                save(root / "runs" / run_id, model, np.stack([1 - p, p], axis=1))
            write_run(root, run_id, cfg, records, sweep)
            entries.append((run_id, [f"method={method}", f"seed={seed}"]))
    write_manifest(root, sweep, entries)


def hand_churn(method):
    """[(mad, flip share)] of each disjoint pair of the method's runs, from the 2-class formula."""
    def served(seed):
        if method == "independent":
            return (p_click(method, seed, 0) + p_click(method, seed, 1)) / 2
        return p_click(method, seed, 0)
    seeds = list(TABLE1_SEEDS[method])
    pairs = [(seeds[i], seeds[i + 1]) for i in range(0, len(seeds) - 1, 2)]
    return [(np.abs(served(a) - served(b)).mean(), ((served(a) > 0.5) != (served(b) > 0.5)).mean()) for a, b in pairs]


def cell(text):
    """(mean, s.e., half a unit of the last printed decimal) of a 'mean ± s.e.' cell."""
    mean, error = text.split(" ± ")
    return float(mean), float(error), 0.5 * 10 ** -len(mean.split(".")[1])


def test_churn_rows_join_the_records_and_the_claims_read_them_as_a_metric_over_pairs(tmp_path):
    table1_tree(tmp_path)
    data = registry.load(registry.SPECS["anil_table1"], tmp_path, "mini")
    rows = data.records[data.records["kind"] == "churn"]
    assert len(rows) == 3 + 2 + 3 and set(rows[rows["cfg.method.name"] == "independent"]["pair_seeds"]) == {"0,1", "2,3"}
    for method, group in (("allreduce", {"method.name": "allreduce"}),
                          ("independent", {"method.name": "independent", "method.n": 2}),
                          ("codistill", {"method.name": "codistill"})):
        mads, flips = zip(*hand_churn(method))
        stat = group_stats(data.records, group, "retrain_mad")[None]
        assert (stat.mean, stat.se, stat.seeds) == pytest.approx((np.mean(mads), se(mads), len(mads)), abs=1e-6)
        assert group_stats(data.records, group, "retrain_flip_share")[None].mean == pytest.approx(np.mean(flips))
        # the churn rows leave the models' own final loss alone
        losses = [VAL_LOSS[method] + 0.001 * s + (0.001 if method != "allreduce" else 0) for s in TABLE1_SEEDS[method]]
        assert group_stats(data.records, group, "val_loss")[None].mean == pytest.approx(np.mean(losses))


def test_table_1_shows_log_loss_and_churn_over_pairs_beside_the_papers_numbers(tmp_path):
    table1_tree(tmp_path)
    spec = registry.SPECS["anil_table1"]
    markdown = registry.render(spec, registry.load(spec, tmp_path, "mini"), tmp_path / "out")[0].read_text()
    lines = [line for line in markdown.splitlines() if line.startswith("|") and "---" not in line]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = {r[0]: dict(zip(header, r)) for r in ([c.strip() for c in line.strip("|").split("|")] for line in lines[1:])}
    assert list(rows) == ["DNN", "Ensemble of two DNNs", "Two-way codistilled DNN"]
    hand_loss = {"DNN": [VAL_LOSS["allreduce"] + 0.001 * s for s in range(6)],
                 "Ensemble of two DNNs": [VAL_LOSS["independent"] - 0.004 + 0.0005 * s for s in range(5)],   # its ensemble
                 "Two-way codistilled DNN": [VAL_LOSS["codistill"] + 0.001 * s + 0.001 for s in range(6)]}
    for name, method in zip(rows, ("allreduce", "independent", "codistill")):
        row = rows[name]
        mean, error, half = cell(row["Validation log loss (nats)"])
        assert abs(mean - np.mean(hand_loss[name])) <= half and abs(error - se(hand_loss[name])) <= half
        mads, flips = zip(*hand_churn(method))
        mean, error, half = cell(row["Mean absolute difference between retrains"])
        assert abs(mean - np.mean(mads)) <= half and abs(error - se(mads)) <= half
        mean, _, half = cell(row["Predicted class differs between retrains (% of examples)"])
        assert abs(mean - 100 * np.mean(flips)) <= half
        assert int(row["seeds"]) == len(hand_loss[name]) and int(row["pairs of retrains"]) == len(mads)
    assert rows["DNN"][f"{anil.PAPER}: mean absolute difference"] == "0.029 ± 0.001"
    assert rows["Two-way codistilled DNN"][f"{anil.PAPER}: log loss"] == "0.4458 ± 0.002"


def test_a_claim_on_churn_is_judged_over_pairs(tmp_path):
    table1_tree(tmp_path)
    data = registry.load(registry.SPECS["anil_table1"], tmp_path, "mini")
    claim = {"id": "less-churn", "figure": "anil_table1", "section": "s", "claim": "c", "setting": "s",
             "metric": "retrain_mad", "check": {"kind": "compare", "a": {"method.name": "codistill"},
                                                "b": {"method.name": "allreduce"}, "op": "less"}}
    a, b = [m for m, _ in hand_churn("codistill")], [m for m, _ in hand_churn("allreduce")]
    d, width = np.mean(a) - np.mean(b), 2 * math.sqrt(se(a) ** 2 + se(b) ** 2)
    expected = HOLDS if d + width < 0 else FAILS if d - width >= 0 else INCONCLUSIVE
    outcome = evaluate(claim, data)
    assert outcome.status == expected and f"a - b = {d:+.3f}" in outcome.reproduced and outcome.seeds == 3


def test_packed_predictions_travel_with_the_logs_and_give_the_same_churn(tmp_path):
    results, committed = tmp_path / "results", tmp_path / "committed"
    table1_tree(results)
    pack.pack(results, committed, "mini")
    packed = committed / "runs" / "codistill-3"
    assert (packed / churn.PACKED).exists() and not list(packed.glob("*.npy"))
    original = churn.read_predictions(results / "runs" / "codistill-3")
    again = churn.read_predictions(packed)
    assert set(again) == {0, 1} and all(np.array_equal(original[m], again[m]) for m in original)
    before = (packed / churn.PACKED).read_bytes()
    pack.pack(results, committed, "mini")              # packing again gives the same bytes
    assert (packed / churn.PACKED).read_bytes() == before
    spec = registry.SPECS["anil_table1"]
    columns = ["run_id", "retrain_mad", "retrain_flip_share"]
    rows = [registry.load(spec, root, "mini").records.query("kind == 'churn'")[columns].reset_index(drop=True)
            for root in (results, committed)]
    assert rows[0].equals(rows[1])


def test_runs_without_predictions_get_no_churn_rows(tmp_path):
    write_run(tmp_path, "r0", config(0), [eval_record(10, 0)], "anil_table1")
    write_manifest(tmp_path, "anil_table1", [("r0", ["seed=0"])])
    records = registry.load(registry.SPECS["anil_table1"], tmp_path, "mini").records
    assert set(records["kind"]) == {"eval"} and "retrain_mad" not in records


# ---------------------------------------------------------------- curves

def lines_of(fig):
    return {line.get_gid(): line for line in fig.axes[0].lines if line.get_gid()}


def curve_tree(root, sweep, runs):
    """runs: {name: (config changes, {step: [val_loss of each model]}, {step: ensemble_val_loss} or
    None, extra record fields)} for seeds 0-2; seed s adds 0.01 x s to every loss."""
    entries = []
    for name, (changes, losses, ensemble, extra) in runs.items():
        for seed in range(3):
            records = [eval_record(step, model, val_loss=loss + 0.01 * seed,
                                   ensemble_val_loss=None if ensemble is None else ensemble[step] + 0.01 * seed,
                                   **extra)
                       for step, per_model in losses.items() for model, loss in enumerate(per_model)]
            write_run(root, f"{name}-{seed}", config(seed, **changes), records, sweep)
            entries.append((f"{name}-{seed}", [f"run={name}", f"seed={seed}"]))
    write_manifest(root, sweep, entries)
    return registry.load(registry.SPECS[sweep], root, "mini")


INDEPENDENT = {"method.name": "independent", "method.n": 2}
CODISTILL = {"method.name": "codistill", "method.n": 2}


def test_fig2a_draws_the_baseline_the_ensemble_label_smoothing_and_codistillation(tmp_path):
    smoothing = {"supervised.label_smoothing": 0.1}
    data = curve_tree(tmp_path, "anil_fig2a", {
        "base": (INDEPENDENT, {10: [2.0, 2.2], 20: [1.0, 1.2]}, {10: 1.9, 20: 0.9}, {}),
        "uniform": ({**INDEPENDENT, **smoothing, "supervised.smoothing_prior": "uniform"},
                    {10: [2.0, 2.0], 20: [1.05, 1.05]}, {10: 1.0, 20: 0.5}, {}),
        "unigram": ({**INDEPENDENT, **smoothing, "supervised.smoothing_prior": "unigram"},
                    {10: [2.0, 2.0], 20: [1.08, 1.08]}, None, {}),
        "cod": (CODISTILL, {10: [1.8, 1.8], 20: [0.95, 0.97]}, None, {})})
    lines = lines_of(anil.fig2a(data, SeedNotes()))
    # means over seeds (+0.00, 0.01, 0.02: +0.01) of the mean over models; the ensemble: its ensemble_val_loss
    expected = {anil.BASELINE: [2.11, 1.11], "ensemble of 2 (baseline models)": [1.91, 0.91],
                "label smoothing, uniform prior (w = 0.1)": [2.01, 1.06],
                "label smoothing, unigram prior (w = 0.1)": [2.01, 1.09], "2-way codistillation": [1.81, 0.97]}
    assert set(lines) == set(expected)          # a label-smoothed run's ensemble is no series
    for name, values in expected.items():
        assert lines[name].get_xdata().tolist() == [10, 20]
        assert lines[name].get_ydata() == pytest.approx(values), name


def test_fig2b_and_fig4_name_data_splits_and_exchange_periods(tmp_path):
    data = curve_tree(tmp_path / "b", "anil_fig2b", {
        "base": (INDEPENDENT, {20: [1.0, 1.2]}, {20: 0.9}, {}),
        "same": (CODISTILL, {20: [0.95, 0.95]}, None, {}),
        "disjoint": ({**CODISTILL, "data.split": "disjoint"}, {20: [0.9, 0.92]}, None, {})})
    lines = lines_of(anil.fig2b(data, SeedNotes()))
    assert {name: line.get_ydata()[0] for name, line in lines.items()} == pytest.approx(
        {anil.BASELINE: 1.11, "2-way codistillation, same data": 0.96,
         "2-way codistillation, disjoint data shards": 0.92})
    data = curve_tree(tmp_path / "4", "anil_fig4", {
        "base": (INDEPENDENT, {20: [1.0, 1.2]}, {20: 0.9}, {}),
        **{f"T{t}": ({**CODISTILL, "method.exchange": "checkpoints", "method.period": t}, {20: [0.9 + t / 1000] * 2},
                     None, {}) for t in (250, 50, 100)}})
    fig = anil.fig4(data, SeedNotes())
    lines = lines_of(fig)
    assert list(lines) == [anil.BASELINE] + [f"codistillation, checkpoints exchanged every {t} updates"
                                             for t in (50, 100, 250)]      # ordered by period
    assert lines["codistillation, checkpoints exchanged every 250 updates"].get_ydata() == pytest.approx([1.16])


def test_two_phase_is_drawn_against_total_updates_with_where_each_reaches_the_students_loss(tmp_path):
    data = curve_tree(tmp_path, "anil_two_phase", {
        # the teachers: an independent run; its updates beyond teacher_steps are not the teachers'
        "teachers": (INDEPENDENT, {10: [1.6, 1.6], 20: [1.2, 1.2], 40: [0.5, 0.5]}, {10: 1.5, 20: 1.0, 40: 0.4}, {}),
        "student": ({"method.name": "two_phase", "method.n": 2}, {10: [0.95, 0.95], 20: [0.9, 0.9]}, None,
                    {"teacher_steps": 20}),
        "cod": (CODISTILL, {10: [1.4, 1.4], 20: [1.0, 1.0], 30: [0.89, 0.89], 40: [0.85, 0.85]}, None, {})})
    fig = anil.two_phase(data, SeedNotes())
    lines = lines_of(fig)
    assert lines[anil.STUDENT].get_xdata().tolist() == [30, 40]          # teacher_steps + step
    assert lines[anil.STUDENT].get_ydata() == pytest.approx([0.96, 0.91])
    assert lines[anil.TEACHERS].get_xdata().tolist() == [10, 20]         # the ensemble, up to teacher_steps
    assert lines[anil.TEACHERS].get_ydata() == pytest.approx([1.51, 1.01])
    # the student's final loss 0.91 (mean over seeds); codistillation's mean 0.90 reaches it at 30 updates,
    # the teachers' ensemble (1.01 at 20) never does
    assert lines["student's final loss"].get_ydata()[0] == pytest.approx(0.91)
    assert lines[f"reaches: {anil.CODISTILL}"].get_xdata()[0] == 30
    assert lines[f"reaches: {anil.STUDENT}"].get_xdata()[0] == 40
    assert f"reaches: {anil.TEACHERS}" not in lines


# ---------------------------------------------------------------- the report

@pytest.mark.slow
def test_the_report_has_a_section_for_anil_et_al_with_its_ids_and_claims(tmp_path):
    logs = tmp_path / "logs"
    table1_tree(logs)
    claims_file = tmp_path / "claims.yaml"
    claims_file.write_text(yaml.safe_dump({"claims": [
        {"id": "anil-churn", "figure": "anil_table1", "section": "Anil et al. Sec. 3.5", "claim": "less churn",
         "setting": "criteo", "metric": "retrain_mad",
         "check": {"kind": "compare", "a": {"method.name": "codistill"}, "b": {"method.name": "allreduce"},
                   "op": "less"}}]}))
    md = tmp_path / "paper" / "report.md"
    report.main(["--results", str(logs), "--md", str(md), "--claims", str(claims_file), "--out", str(tmp_path / "out")])
    text = md.read_text()
    sections = re.findall(r"^## (.+)$", text, flags=re.M)
    start = sections.index(registry.ANIL)
    assert sections[start + 1:] == [registry.SPECS[i].title for i in
                                    ("anil_fig2a", "anil_fig2b", "anil_fig4", "anil_fig4_lm", "anil_two_phase", "anil_table1")]
    assert all(not title.startswith("Anil et al.") for title in sections[:start])
    table1 = text.split(f"## {registry.SPECS['anil_table1'].title}")[1]
    assert re.search(r"^\| DNN +\| 0\.4625 ± 0\.0008 ", table1, flags=re.M)       # mean of 0.460 ... 0.465
    assert "(`anil-churn`, Anil et al. Sec. 3.5)" in table1
    # an independent run serves its ensemble: its churn is no alpha = 0 control
    assert "no alpha = 0 control for churn" in table1 and "alpha = 0 control -" not in table1
    assert "`criteo_mini` (Anil et al. 2018's experiments)" in text      # its own noise unit
