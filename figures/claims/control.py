"""The alpha = 0 control (method=independent: the same models, batches and schedule, no distillation,
0 bits) in the claims that compare a method with all_reduce: which claims have one (equivalence_sides),
its group (control_group), and its gap from the reference with its noise (Control). How it bears on a
verdict is the verdict rule's (rule.py: control_distance, control_fails, capped_margin,
with_control_verdict; its prose in paper/report.md, "Noise and verdicts").

control_share: the control's gap beside the gap of a codistillation vs all_reduce comparison."""
from ..logs.churn import CHURN_METRICS
from .groups import NotRun, group_stats
from .noise import TOP1_METRICS, noise_of
from .rule import EQUIVALENCE_OPS, capped_margin, control_distance, control_fails, with_control_verdict

# What a claim may compare with all_reduce; the control too, so that it can be judged in a method's place.
METHODS = {"codistill", "powersgd", "localsgd", "diloco", "independent"}


def method_of(group):
    return group.get("method.name") if isinstance(group, dict) else None


def control_group(method_group, check):
    """The control of a method's group: its keys less the method's own (the schedule, the
    architecture, the regime stay), method.name independent; or the check's `control` group."""
    if "control" in check:
        return check["control"]
    kept = {k: v for k, v in method_group.items() if not k.startswith("method.") or k == "method.n"}
    return {**kept, "method.name": "independent"}


def equivalence_sides(check):
    """(key of the method's group, key of all_reduce's group, op) of a claim that a method comes close
    to all_reduce (compare within / at_least, tradeoff), or to group b when the check names its
    `control` (two-phase distillation, an ensemble); None for any other claim."""
    kind = check["kind"]
    if kind == "compare" and check.get("op") in EQUIVALENCE_OPS and "control" in check:
        return "a", "b", check["op"]   # a method against another reference than all_reduce, its control named
    if kind == "tradeoff":
        sides, op = ("a", "b"), "at_least"
    elif kind == "compare" and check.get("op") in EQUIVALENCE_OPS:
        sides, op = ("a", "b"), check["op"]
    else:
        return None
    methods = [method_of(check.get(side)) for side in sides]
    if "allreduce" not in methods or not ({*methods} - {"allreduce"}) <= METHODS:
        return None
    method_side, reference_side = sides if methods[1] == "allreduce" else sides[::-1]
    if op == "at_least" and method_side != "a":
        return None
    return method_side, reference_side, op


class Control:
    """The control of one claim's method group against all_reduce: its Stat and its distance."""

    def __init__(self, records, method_group, reference, check, metric, op):
        self.stat = group_stats(records, control_group(method_group, check), metric)[None]
        self.gap = self.stat.mean - reference.mean
        self.noise = noise_of(metric, (1, self.stat), (-1, reference))
        self.distance = control_distance(self.gap, self.noise.width, op)
        self.metric = metric
        self.named = check.get("control")   # a control the claim names, against its own reference

    def fails_at(self, margin):
        """The control surely fails the claim at this margin (its interval outside the open band)."""
        return control_fails(self.distance, margin)

    def text(self, margin):
        verdict = "fails the claim" if self.fails_at(margin) else "passes or could pass the claim"
        which = (f"control {self.named} - reference" if self.named else "alpha = 0 control - all_reduce")
        return f"{which} {_points(self.gap, self.metric)} ({self.noise.text()}): it {verdict} at margin {margin:.3f}"


def find_control(records, check, metric, method_group, reference, op):
    if metric in CHURN_METRICS and "control" not in check:
        return None   # an independent run's churn is its ensemble's (figures/logs/churn.py): no implicit control
    try:
        return Control(records, method_group, reference, check, metric, op)
    except NotRun:
        return None


def capped(margin, how, control, scale):
    """(margin, how it was set), capped by the rule at the control's distance (rule.capped_margin)."""
    if control is None:
        return margin, how
    margin, was_capped = capped_margin(margin, control.distance, scale)
    return margin, (f"{how}, capped at the control's distance {margin:.3f}" if was_capped else how)


def decided(verdict, control, margin):
    """An equivalence verdict as the rule lets it stand given the control (None: not in the logs)."""
    return with_control_verdict(verdict, control is not None and control.fails_at(margin))


def control_note(control, margin):
    if control is None:
        return "no alpha = 0 control (method=independent, same schedule) in these logs: cannot discriminate"
    return control.text(margin)


def over_control(stat, control, metric):
    """(a setting's mean - the control's, the noise width of that difference); None without a
    control (a Control) in the logs."""
    if control is None:
        return None
    return stat.mean - control.stat.mean, noise_of(metric, (1, stat), (-1, control.stat)).width


def _points(value, metric):
    """A difference with its unit: points (2 decimals) of top-1, 3 significant digits otherwise."""
    return f"{value:+.2f} pts" if metric in TOP1_METRICS else f"{value:+.3g}"


def control_share(records, check, metric):
    """'gap ...; alpha = 0 control ... (share)' for a codistillation vs all_reduce comparison;
    '' for any other claim."""
    a, b = check.get("a"), check.get("b")
    methods = (method_of(a), method_of(b))
    if sorted(methods, key=str) != ["allreduce", "codistill"]:
        return ""
    codistill, allreduce = (a, b) if methods[0] == "codistill" else (b, a)
    try:
        ours, theirs = group_stats(records, codistill, metric)[None], group_stats(records, allreduce, metric)[None]
    except NotRun:
        return ""
    gap, noise = ours.mean - theirs.mean, noise_of(metric, (1, ours), (-1, theirs))
    text = f"gap codistillation - all_reduce {_points(gap, metric)}"
    if abs(gap) <= noise.width:
        text += " (within noise)"
    if metric in CHURN_METRICS:
        return text + "; no alpha = 0 control for churn: an independent run serves its ensemble's mean prediction"
    try:
        control = group_stats(records, control_group(codistill, check), metric)[None]
    except NotRun:
        return text + "; no alpha = 0 control (method=independent, same schedule) in these logs"
    control_gap = control.mean - theirs.mean
    share = f" ({100 * control_gap / gap:.0f} %)" if gap else ""
    return text + f"; alpha = 0 control {_points(control_gap, metric)}{share}"
