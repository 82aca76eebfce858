"""The translation invariants of the regime check: Figure 4's runs trained until validation NLL
flattens, its codistilled models at the paper's alpha_0 and growth of alpha train (they leave the
unigram plateau), the over-fitting stand-in's all_reduce baseline over-fits (runs of sweeps fig4 and
iwslt_overfit), and every codistilled model pulls each logit as hard as the paper's model of the data
set it stands for (fig4, iwslt_overfit, table2). A workload is judged on the sweeps it has runs in."""
import math

import pandas as pd

from codistill_experiments.translation.data import (
    generate_corpus,
    generate_grammar_corpus,
    is_grammar,
    unigram_plateau_bits,
)

from .runs import Check, header_config, missing, seed_stats

FLAT_TAIL, MAX_TAIL_DROP = 0.2, 2.0   # the last 20 % of updates lower val NLL by < 2 % of its drop
OVERFIT_SE = 2.0
# The paper's alpha_0 (not stated: 1, the method's default) and alpha's growth over a run (x1.1 per
# epoch, A.3, over the ~20 epochs of a codistilled WMT'16 model: schedule ott2018), matched within
# GROWTH_TOLERANCE; and the least share of its alpha = 0 control's progress from the unigram plateau
# that a codistilled model must make to count as training (a stalled model makes next to none)
PAPER_ALPHA, PAPER_GROWTH, GROWTH_TOLERANCE, MIN_PROGRESS = 1.0, 1.1 ** 20, 0.1, 50.0
# The paper's output dictionaries (fairseq's recipes: WMT'16 En-De's joined BPE dictionary, IWSLT'14
# De-En's English one), by the sweep whose mini runs stand in for them; a stand-in's alpha_scale must
# give each of its logits the paper's pull within PER_LOGIT_TOLERANCE (alpha_scale is rounded)
PAPER_LOGITS = {"fig4": 32768, "iwslt_overfit": 6632, "table2": 6632}
PER_LOGIT_TOLERANCE = 0.01
TRANSLATION = {
    "nll_flattened": "Fig. 4 trained until val NLL flattens: last 20 % of updates' share of its drop (%)",
    "paper_alpha_trains": "Fig. 4's codistillation at the paper's alpha_0 = 1 and alpha growth (x6.7) trains: its "
                          "share of the alpha = 0 control's progress from the unigram plateau (%), worst recipe",
    "overfits": "over-fitting stand-in over-fits: all_reduce final - minimum val NLL (bits)",
    "alpha_per_logit": "distillation per logit: alpha_scale x the paper's dictionary / the stand-in's logits, "
                       "farthest from 1 over fig4, iwslt_overfit, table2",
}


def run_curves(records):
    """{run_id: val NLL per update, mean over the run's models}."""
    curves = records.groupby(["run_id", "step"])["val_nll"].mean()
    return {run: curve.droplevel(0) for run, curve in curves.groupby(level=0)}


def tail_share(curve):
    """Share (%) of the drop in val NLL, from the first evaluation to the last, that the last
    FLAT_TAIL of updates made: from the last evaluation at or before 80 % of the final update."""
    final_step = curve.index.max()
    tail_start = curve[curve.index <= (1 - FLAT_TAIL) * final_step].iloc[-1]
    drop = curve.iloc[0] - curve.iloc[-1]
    return 100 * (tail_start - curve.iloc[-1]) / drop if drop > 0 else math.nan


def check_flattened(records):
    bound = f"< {MAX_TAIL_DROP:g} in every method (mean over seeds)"
    if records.empty:
        return missing("nll_flattened", bound, "no fig4 runs")
    shares = {run: tail_share(curve) for run, curve in run_curves(records).items()}
    by_method = records.groupby("run_id")["cfg.method.name"].first().to_frame("method").assign(
        share=pd.Series(shares)).groupby("method")["share"].mean()
    worst = by_method.idxmax() if by_method.notna().all() else by_method.index[by_method.isna()][0]
    detail = ", ".join(f"{m} {s:.1f}" for m, s in by_method.items())
    return Check("nll_flattened", bound, by_method[worst], f"{by_method[worst]:.1f} ({worst}; {detail})",
                 bool(by_method.notna().all() and by_method.max() < MAX_TAIL_DROP))


def final_nll(records):
    """{run_id: val NLL at its last evaluation, mean over its models}."""
    return pd.Series({run: curve.iloc[-1] for run, curve in run_curves(records).items()}, dtype=float)


def alpha_growth(records):
    """{run_id: alpha at its last evaluation / alpha_0}: alpha's growth over the run, as trained. The
    logged alpha is the criterion's, alpha_0 x the workload's alpha_scale x its growth."""
    last = records[records["step"] == records.groupby("run_id")["step"].transform("max")]
    scale = pd.to_numeric(last.get("cfg.workload.alpha_scale", pd.Series(index=last.index, dtype=float)),
                          errors="coerce").fillna(1.0)
    alpha = pd.to_numeric(last["alpha"], errors="coerce") / (pd.to_numeric(last["cfg.method.alpha"], errors="coerce")
                                                            * scale)
    return alpha.groupby(last["run_id"]).mean()


def check_paper_alpha_trains(records, results):
    """For each codistillation recipe (schedule) of Fig. 4 run at the paper's alpha_0 and alpha
    growth: the share (%) of its alpha = 0 control's drop from the unigram plateau to the control's
    final val NLL that the codistilled models make (mean over seeds). Value: the worst recipe's."""
    bound = f">= {MIN_PROGRESS:g} in every recipe"
    method = records["cfg.method.name"]
    codistill = records[(method == "codistill")
                        & (pd.to_numeric(records.get("cfg.method.alpha"), errors="coerce") == PAPER_ALPHA)]
    growth = alpha_growth(codistill) if "alpha" in codistill else pd.Series(dtype=float)
    at_paper = growth[(growth / PAPER_GROWTH - 1).abs() <= GROWTH_TOLERANCE].index
    paper = codistill[codistill["run_id"].isin(at_paper)]
    if paper.empty:
        found = ", ".join(f"x{g:.3g}" for g in sorted(set(growth.round(3)))) or "none"
        return Check("paper_alpha_trains", bound, math.nan,
                     f"no codistillation run at alpha_0 = {PAPER_ALPHA:g} with alpha growing x{PAPER_GROWTH:.2f} "
                     f"(+-{GROWTH_TOLERANCE:.0%}) over the run (growths found: {found})", False)
    plateau = unigram_plateau_bits(header_config(results, paper["run_id"].iloc[0])["workload"]["corpus"])
    shares = {}
    for schedule, runs in paper.groupby("cfg.schedule.name"):
        control = records[(method == "independent") & (records["cfg.schedule.name"] == schedule)]
        if control.empty:
            return missing("paper_alpha_trains", bound, f"no alpha = 0 control of {schedule}")
        control_final = final_nll(control).mean()
        shares[schedule] = (100 * (plateau - final_nll(runs)) / (plateau - control_final)).mean()
    worst = min(shares, key=shares.get)
    detail = ", ".join(f"{schedule} {share:.1f}" for schedule, share in shares.items())
    return Check("paper_alpha_trains", bound, shares[worst],
                 f"{shares[worst]:.1f} ({worst}; {detail}; unigram plateau {plateau:.2f} bits)",
                 bool(shares[worst] >= MIN_PROGRESS))


def check_overfits(records):
    """The all_reduce baseline's final val NLL lies above its minimum by more than two standard
    errors (over seeds) of the final val NLL. Value: the mean rise over seeds."""
    bound = f"> {OVERFIT_SE:g} seed s.e. of the final"
    allreduce = records[records["cfg.method.name"] == "allreduce"] if not records.empty else records
    if allreduce.empty:
        return missing("overfits", bound, "no iwslt_overfit all_reduce runs")
    curves = run_curves(allreduce)
    finals = pd.Series({run: c.iloc[-1] for run, c in curves.items()})
    rise = pd.Series({run: c.iloc[-1] - c.min() for run, c in curves.items()}).mean()
    _, se, n = seed_stats(finals)
    if n < 2:
        return missing("overfits", bound, f"{n} all_reduce seed(s)")
    lowest = {run: int(c.idxmin()) for run, c in curves.items()}
    return Check("overfits", f"{bound} = {OVERFIT_SE * se:.3f}", rise,
                 f"{rise:.3f} ({n} seeds; minimum at update {sorted(lowest.values())} of "
                 f"{int(max(c.index.max() for c in curves.values()))})", rise > OVERFIT_SE * se)


def output_logits(workload):
    """A translation stand-in's output logits: the units of its training targets (the grammar's
    subword units) and fairseq's 4 special symbols, padded to a multiple of 8 (fairseq-preprocess's
    padding factor)."""
    generate = generate_grammar_corpus if is_grammar(workload) else generate_corpus
    units = {unit for pair in generate(workload["corpus"])["train"] for unit in pair[1].split()}
    return 8 * math.ceil((len(units) + 4) / 8)


def check_alpha_per_logit(by_sweep, results):
    """by_sweep: {sweep id of PAPER_LOGITS: its records of one workload}. Each sweep's codistillation
    runs scale alpha by workload.alpha_scale so that each logit is pulled as hard as the paper's: the
    distillation term is a mean over the logits (docs/mini-scale.md "Distillation per logit"). Value:
    the sweep's alpha_scale x its paper dictionary / the stand-in's logits farthest from 1."""
    bound = f"1 ± {PER_LOGIT_TOLERANCE:.0%} in every sweep"
    per_logit = {}
    for sweep, records in by_sweep.items():
        codistill = records[records["cfg.method.name"] == "codistill"] if not records.empty else records
        if codistill.empty:
            continue
        logits = output_logits(header_config(results, codistill["run_id"].iloc[0])["workload"])
        scales = pd.to_numeric(codistill.get("cfg.workload.alpha_scale", pd.Series(index=codistill.index, dtype=float)),
                               errors="coerce").fillna(1.0)
        for scale in sorted(set(scales)):
            per_logit[f"{sweep} {scale:g}"] = (scale * PAPER_LOGITS[sweep] / logits, logits)
    if not per_logit:
        return missing("alpha_per_logit", bound, "no codistillation runs")
    worst = max(per_logit, key=lambda key: abs(per_logit[key][0] - 1))
    detail = ", ".join(f"{key}: {value:.3g}" for key, (value, _) in per_logit.items())
    return Check("alpha_per_logit", bound, per_logit[worst][0],
                 f"{per_logit[worst][0]:.3g} ({detail}; {per_logit[worst][1]} logits)",
                 all(abs(value - 1) <= PER_LOGIT_TOLERANCE for value, _ in per_logit.values()))


def translation_checks(name, fig4, overfit, results, table2=None):
    """The checks of workload `name` on the sweeps it has runs in."""
    of = lambda records: records[records["cfg.workload.name"] == name] if not records.empty else records  # noqa: E731
    fig4, overfit = of(fig4), of(overfit)
    table2 = of(table2) if table2 is not None else pd.DataFrame()
    checks = [check_flattened(fig4), check_paper_alpha_trains(fig4, results)] if not fig4.empty else []
    checks += [check_overfits(overfit)] if not overfit.empty else []
    return checks + [check_alpha_per_logit({"fig4": fig4, "iwslt_overfit": overfit, "table2": table2}, results)]
