"""The check kinds of paper/claims.yaml (value, difference, compare, monotone, spread, tradeoff,
recovers, fewest_bits; figures/claims.py describes each), and for a codistillation-vs-all_reduce
comparison the share of its gap that the alpha = 0 control already shows. Each check returns (verdict, the
numbers shown, fewest seeds)."""
from .claims_groups import NotRun, fewest_seeds, fmt, group_stats
from .claims_noise import EPS, FAILS, HOLDS, INCONCLUSIVE, TOP1_METRICS, interval_verdict, margin_for, noise_of

NEEDS_MINI_MARGIN = {"within", "at_least"}   # compare ops whose margin needs mini units


# ---------------------------------------------------------------- the alpha = 0 control

def _method(group):
    return group.get("method.name") if isinstance(group, dict) else None


def control_group(codistill_group, check):
    if "control" in check:
        return check["control"]
    kept = {k: v for k, v in codistill_group.items() if not k.startswith("method.") or k == "method.n"}
    return {**kept, "method.name": "independent"}


def _points(value, metric):
    """A difference with its unit: points (2 decimals) of top-1, 3 significant digits otherwise."""
    return f"{value:+.2f} pts" if metric in TOP1_METRICS else f"{value:+.3g}"


def control_share(records, check, metric):
    """'gap ...; alpha = 0 control ... (share)' for a codistillation vs all_reduce comparison;
    '' for any other claim."""
    a, b = check.get("a"), check.get("b")
    methods = (_method(a), _method(b))
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
    try:
        control = group_stats(records, control_group(codistill, check), metric)[None]
    except NotRun:
        return text + "; no alpha = 0 control (method=independent, same schedule) in these logs"
    control_gap = control.mean - theirs.mean
    share = f" ({100 * control_gap / gap:.0f} %)" if gap else ""
    return text + f"; alpha = 0 control {_points(control_gap, metric)}{share}"


# ---------------------------------------------------------------- the checks

def check_value(records, check, metric, claim, context):
    stat = group_stats(records, check["group"], metric)[None]
    tolerance = check.get("tolerance", abs(claim["value"]) * check.get("rel_tolerance", 0))
    noise = noise_of(metric, (1, stat))
    verdict = interval_verdict(stat.mean - claim["value"], noise.width, "within",
                               tolerance + EPS * max(1.0, abs(claim["value"])))
    return verdict, f"{fmt(stat)} (paper {claim['value']} ± {tolerance:g}); {noise.text()}", stat.seeds


def check_difference(records, check, metric, claim, context):
    a, b = group_stats(records, check["a"], metric)[None], group_stats(records, check["b"], metric)[None]
    diff, noise = a.mean - b.mean, noise_of(metric, (1, a), (-1, b))
    verdict = interval_verdict(diff - claim["value"], noise.width, "within", check["tolerance"])
    return (verdict, f"a - b = {diff:.3f} (a {fmt(a)}, b {fmt(b)}); {noise.text()}", min(a.seeds, b.seeds))


def check_compare(records, check, metric, claim, context):
    a, b = group_stats(records, check["a"], metric)[None], group_stats(records, check["b"], metric)[None]
    diff, noise = a.mean - b.mean, noise_of(metric, (1, a), (-1, b))
    margin, how = margin_for(check, "margin", context, records, metric)
    shown = f"a {fmt(a)}, b {fmt(b)}, a - b = {diff:+.3f}; {noise.text()}"
    if check["op"] in NEEDS_MINI_MARGIN or margin:
        shown += f"; margin {how}"
    return interval_verdict(diff, noise.width, check["op"], margin), shown, min(a.seeds, b.seeds)


def _step_verdicts(steps, order):
    """Verdict of a monotone sequence from its steps [(d, Noise)]."""
    op = "greater" if order == "increasing" else "less"
    verdicts = [interval_verdict(d, noise.width, op) for d, noise in steps]
    return FAILS if FAILS in verdicts else HOLDS if all(v == HOLDS for v in verdicts) else INCONCLUSIVE


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
    return (interval_verdict(spread, noise.width, "within", limit),
            f"spread {spread:.3f} ({noise.text()}; max {how}); {shown}", fewest_seeds(stats))


def check_tradeoff(records, check, metric, claim, context):
    a = group_stats(records, check["a"], metric, check["by"])
    b = group_stats(records, check["b"], metric)[None]
    a_cost = group_stats(records, check["a"], check["cost"], check["by"])
    b_cost = group_stats(records, check["b"], check["cost"])[None]
    tolerance, how = margin_for(check, "tolerance", context, records, metric)
    cheap = {k: b_cost.mean / a_cost[k].mean for k in a if a_cost[k].mean > 0}
    cheap = {k: r for k, r in cheap.items() if r >= check["min_ratio"] * (1 - EPS)}
    verdicts = {k: interval_verdict(a[k].mean - b.mean, noise_of(metric, (1, a[k]), (-1, b)).width,
                                    "at_least", tolerance) for k in cheap}
    verdict = HOLDS if HOLDS in verdicts.values() else INCONCLUSIVE if INCONCLUSIVE in verdicts.values() else FAILS
    if not cheap:
        return FAILS, f"no {check['by']} sends {check['min_ratio']:g}x fewer", min(fewest_seeds(a), b.seeds)
    best = max(cheap, key=lambda k: (verdicts[k] == HOLDS, a[k].mean))
    noise = noise_of(metric, (1, a[best]), (-1, b))
    shown = (f"best: {check['by']}={best:g}, {metric} {a[best].mean:.3f} vs {b.mean:.3f} "
             f"({noise.text()}; tolerance {how}), {cheap[best]:.0f}x fewer")
    return verdict, shown, min(fewest_seeds(a), b.seeds)


def check_recovers(records, check, metric, claim, context):
    base, target, treated = (group_stats(records, check[k], metric)[None] for k in ("base", "target", "treated"))
    share = check["share"]
    gap, gap_noise = target.mean - base.mean, noise_of(metric, (1, target), (-1, base))
    recovered = treated.mean - base.mean
    contrast = recovered - share * gap
    noise = noise_of(metric, (1, treated), (-(1 - share), base), (-share, target))
    shown = (f"gap target - base {gap:+.3f} ({gap_noise.text()}); treated - base {recovered:+.3f}"
             + (f" ({100 * recovered / gap:.0f} % of the gap)" if gap else "")
             + f"; recovered - {share:g} x gap = {contrast:+.3f} ({noise.text()})")
    fewest = min(base.seeds, target.seeds, treated.seeds)
    if interval_verdict(gap, gap_noise.width, "greater") != HOLDS:
        return INCONCLUSIVE, shown + "; no gap beyond the noise to recover", fewest
    return interval_verdict(contrast, noise.width, "greater"), shown, fewest


def _reaching(records, candidate, b, metric, cost, tolerance):
    """[(cost, knob value, verdict of reaching b's metric within tolerance, seeds)] of one
    candidate's settings, cheapest first."""
    by = candidate.get("by")
    stats, costs = group_stats(records, candidate["group"], metric, by), group_stats(records, candidate["group"], cost, by)
    rows = [(costs[k].mean, k, interval_verdict(s.mean - b.mean, noise_of(metric, (1, s), (-1, b)).width,
                                                 "at_least", tolerance), s.seeds) for k, s in stats.items()]
    return sorted(rows, key=lambda row: row[0])


def _cheapest(rows, verdicts):
    return min((row[0] for row in rows if row[2] in verdicts), default=float("inf"))


def check_fewest_bits(records, check, metric, claim, context):
    """The `expect` candidates reach mean(b) - tolerance (as `at_least`) at fewer `cost` than any
    other candidate possibly does: holds when the cheapest setting of theirs that surely reaches
    costs less than the cheapest of the others that is not ruled out; does not hold when another
    candidate surely reaches at no more than theirs could; inconclusive in between."""
    b = group_stats(records, check["b"], metric)[None]
    tolerance, how = margin_for(check, "tolerance", context, records, metric)
    rows, shown = {}, []
    for candidate in check["candidates"]:
        try:
            rows[candidate["label"]] = _reaching(records, candidate, b, metric, check["cost"], tolerance)
        except NotRun:
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
    if mine_sure < others_open:
        verdict = HOLDS
    elif mine_open == float("inf") or others_sure <= mine_open:
        verdict = FAILS
    else:
        verdict = INCONCLUSIVE
    text = f"reaching {fmt(b)} (tolerance {how}) at the fewest {check['cost']}: " + "; ".join(shown)
    return verdict, text, min(b.seeds, *(row[3] for label in rows for row in rows[label]))


CHECKS = {"value": check_value, "difference": check_difference, "compare": check_compare,
          "monotone": check_monotone, "spread": check_spread, "tradeoff": check_tradeoff,
          "recovers": check_recovers, "fewest_bits": check_fewest_bits}
