"""The check kinds of the figures' claims (paper/figures/) (value, difference, compare, monotone, spread, tradeoff,
recovers, fewest_bits; figures/claims/__init__.py describes each): the differences, noises and
margins each judges, decided by the verdict rule (rule.py), the alpha = 0 control's included
(control.py). Each check returns (verdict, the numbers shown, fewest seeds)."""
from .control import capped, control_note, decided, equivalence_sides, find_control, over_control
from .groups import NotRun, fewest_seeds, fmt, group_stats
from .noise import margin_for, noise_of
from .rule import (
    EQUIVALENCE_OPS,
    HOLDS,
    INCONCLUSIVE,
    cheapest,
    decision,
    every,
    interval_verdict,
    ratio_verdict,
    reaches,
    recovers,
    some,
    value_margin,
)
from .to_target import BITS_TO_TARGET, bits_to_target

NEEDS_MINI_MARGIN = EQUIVALENCE_OPS   # compare ops whose margin needs mini units


# ---------------------------------------------------------------- the checks

def check_value(records, check, metric, claim, context):
    stat = group_stats(records, check["group"], metric)[None]
    tolerance = check.get("tolerance", abs(claim["value"]) * check.get("rel_tolerance", 0))
    noise = noise_of(metric, (1, stat))
    verdict, room = decision(stat.mean - claim["value"], noise, "within", value_margin(tolerance, claim["value"]))
    return verdict, f"{fmt(stat)} (paper {claim['value']} ± {tolerance:g}); {noise.text()}{room}", stat.seeds


def check_difference(records, check, metric, claim, context):
    a, b = group_stats(records, check["a"], metric)[None], group_stats(records, check["b"], metric)[None]
    diff, noise = a.mean - b.mean, noise_of(metric, (1, a), (-1, b))
    verdict, room = decision(diff - claim["value"], noise, "within", check["tolerance"])
    return (verdict, f"a - b = {diff:.3f} (a {fmt(a)}, b {fmt(b)}); {noise.text()}{room}", min(a.seeds, b.seeds))


def check_compare(records, check, metric, claim, context):
    a, b = group_stats(records, check["a"], metric)[None], group_stats(records, check["b"], metric)[None]
    diff, noise = a.mean - b.mean, noise_of(metric, (1, a), (-1, b))
    margin, how = margin_for(check, "margin", context, records, metric)
    sides = equivalence_sides(check)
    control = None
    if sides:
        method_side, reference_side, _ = sides
        control = find_control(records, check, metric, check[method_side], b if reference_side == "b" else a,
                               check["op"])
        margin, how = capped(margin, how, control, context.scale)
    shown = f"a {fmt(a)}, b {fmt(b)}, a - b = {diff:+.3f}; {noise.text()}"
    if check["op"] in NEEDS_MINI_MARGIN or margin:
        shown += f"; margin {how}"
    verdict, room = decision(diff, noise, check["op"], margin)
    shown += room
    if sides:
        verdict, shown = decided(verdict, control, margin), shown + "; " + control_note(control, margin)
    return verdict, shown, min(a.seeds, b.seeds)


def _step_verdicts(steps, order):
    """Verdict of a monotone sequence from its steps [(d, Noise)]: every step must hold."""
    op = "greater" if order == "increasing" else "less"
    return every(*(interval_verdict(d, noise.width, op) for d, noise in steps))


def check_monotone(records, check, metric, claim, context):
    stats = group_stats(records, check["group"], metric, check["by"])
    fewest = fewest_seeds(stats)
    if "minus" in check:
        other = group_stats(records, check["minus"], metric, check["by"])
        points = {k: [(1, s), (-1, other[k])] for k, s in stats.items() if k in other}
        fewest = min(fewest, fewest_seeds(other))
    else:
        points = {k: [(1, s)] for k, s in stats.items()}
    if len(points) < 2:
        raise NotRun(f"fewer than two values of {check['by']}")
    keys = sorted(points)
    value = {k: sum(w * s.mean for w, s in points[k]) for k in keys}
    steps = [(value[y] - value[x], noise_of(metric, *points[y], *((-w, s) for w, s in points[x])))
             for x, y in zip(keys, keys[1:])]
    shown = ", ".join(f"{k:g}: {value[k]:.3f}" for k in keys)
    widths = ", ".join(f"{d:+.3f} (noise {n.width:.3f})" for d, n in steps)
    return _step_verdicts(steps, check["order"]), f"by {check['by']}: {shown}; steps {widths}", fewest


def check_spread(records, check, metric, claim, context):
    stats = group_stats(records, check["group"], metric, check["by"])
    if len(stats) < 2:
        raise NotRun(f"fewer than two values of {check['by']}")
    high = max(stats, key=lambda k: stats[k].mean)
    low = min(stats, key=lambda k: stats[k].mean)
    spread, noise = stats[high].mean - stats[low].mean, noise_of(metric, (1, stats[high]), (-1, stats[low]))
    limit, how = margin_for(check, "max", context, records, metric)
    shown = ", ".join(f"{k:g}: {stats[k].mean:.3f}" for k in sorted(stats))
    verdict, room = decision(spread, noise, "within", limit)
    return verdict, f"spread {spread:.3f} ({noise.text()}; max {how}){room}; {shown}", fewest_seeds(stats)


def check_tradeoff(records, check, metric, claim, context):
    """Some setting of `a` reaches b within the tolerance, beats the alpha = 0 control beyond the
    noise, and costs min_ratio times less than b."""
    a = group_stats(records, check["a"], metric, check["by"])
    b = group_stats(records, check["b"], metric)[None]
    a_cost = group_stats(records, check["a"], check["cost"], check["by"])
    b_cost = group_stats(records, check["b"], check["cost"])[None]
    tolerance, how = margin_for(check, "tolerance", context, records, metric)
    control = find_control(records, check, metric, check["a"], b, "at_least")
    tolerance, how = capped(tolerance, how, control, context.scale)
    cheap = {k: b_cost.mean / a_cost[k].mean for k in a if a_cost[k].mean > 0}
    cheap = {k: r for k, r in cheap.items() if ratio_verdict(r, check["min_ratio"]) == HOLDS}
    verdicts = {k: reaches(a[k].mean - b.mean, noise_of(metric, (1, a[k]), (-1, b)).width, tolerance,
                           over_control(a[k], control, metric)) for k in cheap}
    verdict = some(verdicts.values())
    if not cheap:   # no setting cheap enough: some() of none does not hold
        return verdict, f"no {check['by']} sends {check['min_ratio']:g}x fewer", min(fewest_seeds(a), b.seeds)
    best = max(cheap, key=lambda k: (verdicts[k] == HOLDS, a[k].mean))
    noise = noise_of(metric, (1, a[best]), (-1, b))
    shown = (f"best: {check['by']}={best:g}, {metric} {a[best].mean:.3f} vs {b.mean:.3f} "
             f"({noise.text()}; tolerance {how}), {cheap[best]:.0f}x fewer; {control_note(control, tolerance)}")
    return decided(verdict, control, tolerance), shown, min(fewest_seeds(a), b.seeds)


def check_recovers(records, check, metric, claim, context):
    base, target, treated = (group_stats(records, check[k], metric)[None] for k in ("base", "target", "treated"))
    share = check["share"]
    sign = -1.0 if check.get("better") == "lower" else 1.0   # a loss: the target lies below the base
    gap, gap_noise = sign * (target.mean - base.mean), noise_of(metric, (1, target), (-1, base))
    recovered = sign * (treated.mean - base.mean)
    contrast = recovered - share * gap
    noise = noise_of(metric, (1, treated), (-(1 - share), base), (-share, target))
    shown = (f"gap target - base {gap:+.3f} ({gap_noise.text()}); treated - base {recovered:+.3f}"
             + (f" ({100 * recovered / gap:.0f} % of the gap)" if gap else "")
             + f"; recovered - {share:g} x gap = {contrast:+.3f} ({noise.text()})")
    fewest = min(base.seeds, target.seeds, treated.seeds)
    verdict, undecided = recovers(gap, gap_noise.width, contrast, noise.width)
    return verdict, shown + (f"; {undecided}" if undecided else ""), fewest


def _reaching(records, candidate, b, control, metric, cost, tolerance):
    """[(cost, knob value, verdict of reaching b's metric within tolerance while beating the control,
    seeds)] of one candidate's settings, cheapest first."""
    by = candidate.get("by")
    stats = group_stats(records, candidate["group"], metric, by)
    if cost == BITS_TO_TARGET:   # read from each setting's curve where it reaches what the verdict asks
        costs = bits_to_target(records, candidate["group"], metric, b.mean - tolerance, by)
    else:
        costs = {k: s.mean for k, s in group_stats(records, candidate["group"], cost, by).items()}
    rows = [(costs[k], k, reaches(s.mean - b.mean, noise_of(metric, (1, s), (-1, b)).width, tolerance,
                                       over_control(s, control, metric)), s.seeds)
            for k, s in stats.items()]
    return sorted(rows, key=lambda row: row[0])


def _cheapest(rows, verdicts):
    return min((row[0] for row in rows if row[2] in verdicts), default=float("inf"))


def reaching_rows(records, check, metric, context):
    """({candidate label: _reaching rows}, all_reduce's Stat, the control, tolerance, how it was set)
    of a fewest_bits check: which settings of each method reach all_reduce while beating the control."""
    b = group_stats(records, check["b"], metric)[None]
    if "share_of_b" in check:   # reach this share of b's final mean (0.99: within 1 %), at both scales
        tolerance = (1 - check["share_of_b"]) * b.mean
        how = f"{1 - check['share_of_b']:.0%} of {b.mean:.3f} = {tolerance:.3f}"
    else:
        tolerance, how = margin_for(check, "tolerance", context, records, metric)
    control = find_control(records, check, metric, {}, b, "at_least")
    tolerance, how = capped(tolerance, how, control, context.scale)
    rows = {}
    for candidate in check["candidates"]:
        try:
            rows[candidate["label"]] = _reaching(records, candidate, b, control, metric, check["cost"], tolerance)
        except NotRun:
            continue
    return rows, b, control, tolerance, how


def check_fewest_bits(records, check, metric, claim, context):
    """The `expect` candidates reach mean(b) - tolerance (as `at_least`) while beating the alpha = 0
    control (the 0-bit point) at fewer `cost` than any other candidate possibly does: holds when the
    cheapest setting of theirs that surely does costs less than the cheapest of the others that is
    not ruled out; does not hold when another candidate surely does at no more than theirs could;
    inconclusive in between."""
    rows, b, control, tolerance, how = reaching_rows(records, check, metric, context)
    shown = []
    for candidate in check["candidates"]:
        if candidate["label"] not in rows:
            continue
        reached = [r for r in rows[candidate["label"]] if r[2] == HOLDS]
        key = candidate.get("by", "").split(".")[-1]
        shown.append(f"{candidate['label']}: " + (f"{key}={reached[0][1]:g} at {reached[0][0]:.3g}" if reached
                                                  else "none surely reaches"))
    expected = [label for label in rows if label in check["expect"]]
    if not expected:
        raise NotRun(f"none of {check['expect']} in these logs")
    others = [label for label in rows if label not in check["expect"]]
    mine_sure = min(_cheapest(rows[label], {HOLDS}) for label in expected)
    mine_open = min(_cheapest(rows[label], {HOLDS, INCONCLUSIVE}) for label in expected)
    others_sure = min((_cheapest(rows[label], {HOLDS}) for label in others), default=float("inf"))
    others_open = min((_cheapest(rows[label], {HOLDS, INCONCLUSIVE}) for label in others), default=float("inf"))
    verdict = cheapest(mine_sure, mine_open, others_sure, others_open, with_control=control is not None)
    text = (f"reaching {fmt(b)} (tolerance {how}) while beating the alpha = 0 control, at the fewest "
            f"{check['cost']}: " + "; ".join(shown) + f"; {control_note(control, tolerance)}")
    seeds = min(b.seeds, *(row[3] for label in rows for row in rows[label]))
    return verdict, text, seeds


CHECKS = {"value": check_value, "difference": check_difference, "compare": check_compare,
          "monotone": check_monotone, "spread": check_spread, "tradeoff": check_tradeoff,
          "recovers": check_recovers, "fewest_bits": check_fewest_bits}
