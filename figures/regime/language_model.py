"""The LSTM language-model stand-in's invariants (Anil et al. 2018, Fig. 4 on its own kind of
model; docs/mini-scale.md, "LSTM language-model stand-in"), measured on the baseline alone (method
independent of sweep anil_fig4_lm: each model trained without communication, no codistillation run
enters them)."""
from .runs import Check, missing, seed_stats
from .translation import run_curves

LM, FIG4_LM = "lm_mini", "anil_fig4_lm"
MAX_SE_SHARE = 0.1     # the seed s.e. of the final val NLL is at most a tenth of the second half's drop

TAIL = 0.2   # still falling over the last fifth of the updates (fairseq evaluates at an epoch's end and at the last)

LM_CHECKS = {
    "still_falling": "budget-limited: val NLL, last evaluation - the last at or before 80 % of the updates (bits)",
    "resolvable": "resolvable: seed s.e. of the final val NLL / its drop over the second half of the updates",
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


def language_model_checks(records):
    """Every language-model invariant, in LM_CHECKS' order; records: anil_fig4_lm's collected records."""
    baseline = baseline_records(records)
    return [check_still_falling(baseline), check_resolvable(baseline)]
