"""The LSTM language-model stand-in's invariants (Anil et al. 2018, Fig. 4 on its own kind of
model; docs/mini-scale.md, "LSTM language-model stand-in"), measured on the baseline alone (method
independent of sweep anil_fig4_lm: each model trained without communication, no codistillation run
enters them)."""
from codistill_experiments.translation.data import lm_noise_floor_bits

from .runs import Check, header_config, missing, seed_stats
from .translation import run_curves

LM, FIG4_LM = "lm_mini", "anil_fig4_lm"
MAX_SE_SHARE = 0.1     # the seed s.e. of the final val NLL is at most a tenth of the second half's drop
MIN_ABOVE_FLOOR = 0.5  # bits: the baseline ends this far above the corpus's noise floor at least
EVALUATIONS = 10

TAIL = 0.2   # still falling over the last fifth of the updates (fairseq evaluates at an epoch's end and at the last)

LM_CHECKS = {
    "still_falling": "budget-limited: val NLL, last evaluation - the last at or before 80 % of the updates (bits)",
    "resolvable": "resolvable: seed s.e. of the final val NLL / its drop over the second half of the updates",
    "floor_distance": "far from the noise floor: final val NLL - the corpus's noise floor (bits)",
    "evaluations": "evaluations per run (curves)",
}


def baseline_records(records):
    if records.empty:
        return records
    return records[(records["cfg.workload.name"] == LM) & (records["cfg.method.name"] == "independent")]


def tail_change(curve):
    """The last evaluation's val NLL less that of the last evaluation at or before (1 - TAIL) of the updates."""
    before = curve[curve.index <= (1 - TAIL) * curve.index.max()]
    return curve.iloc[-1] - before.iloc[-1] if len(before) else float("nan")


def check_still_falling(baseline):
    bound = "< 0"
    curves = run_curves(baseline) if not baseline.empty else {}
    if not curves or min(len(c) for c in curves.values()) < 2:
        return missing("still_falling", bound, "fewer than two evaluations of the baseline")
    change = sum(tail_change(c) for c in curves.values()) / len(curves)
    return Check("still_falling", bound, change, f"{change:+.4f} ({len(curves)} seeds)", change < 0)


def second_half_drop(curve):
    halfway = curve[curve.index <= curve.index.max() / 2]
    return (halfway.iloc[-1] if len(halfway) else curve.iloc[0]) - curve.iloc[-1]


def check_resolvable(baseline):
    bound = f"<= {MAX_SE_SHARE:g}"
    curves = run_curves(baseline) if not baseline.empty else {}
    finals = [c.iloc[-1] for c in curves.values()]
    _, se, n = seed_stats(finals)
    if n < 2:
        return missing("resolvable", bound, f"{n} baseline seed(s)")
    drop = sum(second_half_drop(c) for c in curves.values()) / n
    share = se / drop if drop > 0 else float("inf")
    return Check("resolvable", bound, share, f"{share:.3f} (s.e. {se:.4f} bits over {n} seeds, second half's drop "
                 f"{drop:.3f})", share <= MAX_SE_SHARE)


def check_floor_distance(baseline, results):
    """The baseline's final val NLL (mean over seeds) above the generator's own bits per token
    (translation/data.py lm_noise_floor_bits)."""
    bound = f">= {MIN_ABOVE_FLOOR:g}"
    curves = run_curves(baseline) if not baseline.empty else {}
    if not curves:
        return missing("floor_distance", bound, "no baseline runs")
    final, _, n = seed_stats([c.iloc[-1] for c in curves.values()])
    floor = lm_noise_floor_bits(header_config(results, baseline["run_id"].iloc[0])["workload"]["corpus"])
    return Check("floor_distance", bound, final - floor, f"{final - floor:.3f} ({final:.3f} over {n} seeds; floor "
                 f"{floor:.3f})", final - floor >= MIN_ABOVE_FLOOR)


def check_evaluations(baseline):
    bound = f">= {EVALUATIONS}"
    if baseline.empty:
        return missing("evaluations", bound, "no baseline runs")
    fewest = int(baseline.groupby("run_id")["step"].nunique().min())
    return Check("evaluations", bound, float(fewest), f"{fewest} (fewest in a run)", fewest >= EVALUATIONS)


def language_model_checks(records, results):
    """Every language-model invariant, in LM_CHECKS' order; records: anil_fig4_lm's collected records."""
    baseline = baseline_records(records)
    return [check_still_falling(baseline), check_resolvable(baseline), check_floor_distance(baseline, results),
            check_evaluations(baseline)]
