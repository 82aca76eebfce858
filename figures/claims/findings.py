"""The Findings that open paper/report.md: per figure, the paper's finding, what the runs show and
the verdict; then what the runs show that the paper does not claim (codistillation against the
alpha = 0 control, Fig. 2 across regimes, the frontier at equal top-1). Every number is computed
from the logs here; the selection of rows (which claim heads each figure, which settings have a
control) is each figure's record's (paper/figures/)."""
import dataclasses
import math
import re

from .. import records
from .checks import reaching_rows
from .control import control_group, equivalence_sides, method_of
from .evaluation import comparison_counts, evaluate
from .groups import NotRun, config_keys, group_stats, select
from .multiplicity import NAME, corrected_status
from .noise import TOP1_METRICS, Context, noise_of
from .rule import ALPHA, CANNOT_DISCRIMINATE, FAILS, HOLDS, INCONCLUSIVE, NOT_APPLICABLE, NOT_RUN, beats, summary

PILOT_SEEDS = (0, 1, 2)   # the paper's three seeds, which every mini setting ran before the power analysis
# The claims that head each figure's row (`headline: true` in its record, paper/figures/), of this paper
# and of Anil et al. 2018, the paper codistillation builds on (every one a mini run can decide).
HEADLINES = records.headlines(records.SODHANI)
ANIL_HEADLINES = records.headlines(records.ANIL)
# Settings where codistillation has an alpha = 0 control (each record's `controls`):
# (figure, label, codistillation group, metric, all_reduce group).
CONTROLLED = records.controlled()
LOWER_IS_BETTER = {"val_nll", "train_loss"}


def table_cell(text):
    """Text for one cell of a markdown table (the report's and the Findings')."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _diff(x, y, metric):
    """(mean x - mean y, its noise width)."""
    return x.mean - y.mean, noise_of(metric, (1, x), (-1, y)).width


def _pm(d, width, metric):
    unit = " pts" if metric in TOP1_METRICS else ""
    return f"{d:+.2f} ± {width:.2f}{unit}" if metric in TOP1_METRICS else f"{d:+.3f} ± {width:.3f}{unit}"


def codistillation_second(check):
    """Whether a compare names codistillation as its reference (b) and another method first (a):
    its d is then shown negated, codistillation - reference, as in every other table."""
    sides = [check.get(side) for side in ("a", "b")]
    return (check.get("kind") == "compare" and all(isinstance(side, dict) for side in sides)
            and method_of(sides[1]) == "codistill" and method_of(sides[0]) != "codistill")


def short(outcome, check=None):
    """The numbers of an outcome in a few words: the difference with its noise (codistillation -
    reference wherever codistillation is compared), the margin, the control."""
    text = outcome.reproduced
    parts = []
    found = re.search(r"a - b = ([+-]?[\d.]+); noise ([\d.]+)", text)
    if found:
        d = float(found.group(1)) * (-1 if check and codistillation_second(check) else 1)
        parts.append(f"d = {d:+.{len(found.group(1).split('.')[-1])}f} ± {found.group(2)}")
    for pattern in (r"(margin [^;]+)", r"(slack [^;]+)", r"(alpha = 0 control - all_reduce [+-]?[\d.]+(?: pts)?)",
                    r"(control \{[^}]*\} - reference [+-]?[\d.]+(?: pts)?)",
                    r"(treated - base [^;]+)", r"(spread [\d.]+)", r"(best: [^;]+)", r"(steps [^;]+)"):
        found = re.search(pattern, text)
        if found:
            parts.append(found.group(1))
    return "; ".join(parts) if parts else text


def verdict_mark(outcome, marks):
    """The verdict as a table shows it (marks: the report's symbol and word per status)."""
    return marks[outcome.status] + (" (borderline)" if outcome.borderline else "")


def headline_rows(all_claims, outcomes, marks, headlines=HEADLINES):
    by_id = {claim["id"]: claim for claim in all_claims}
    lines = ["| figure | the paper finds | the mini runs show | verdict |", "|---|---|---|---|"]
    for claim_id in headlines:
        claim = by_id.get(claim_id)
        if claim is None:
            continue
        outcome = outcomes[(claim_id, "mini")]
        lines.append(f"| {claim['figure']} | {table_cell(claim['claim'])} | {table_cell(short(outcome, claim['check']))} | "
                     f"{verdict_mark(outcome, marks)} |")
    return lines


def _stat(records, group, metric):
    try:
        return group_stats(records, group, metric)[None]
    except NotRun:
        return None


def against_control(mini):
    """[(label, metric, codistillation, control, all_reduce Stats, whether codistillation beats the
    control beyond the noise)] of each setting of CONTROLLED in the mini logs. A setting whose
    codistillation runs have the configs (all but the seed) of an earlier row's is that row again
    (Fig. 13's predictions every update are Fig. 2's decaying weight decay): it is left out, so that
    no setting is counted twice."""
    rows, seen = [], []
    for figure, label, group, metric, reference in CONTROLLED:
        data = mini.get(figure)
        if data is None or data.records.empty:
            continue
        records = data.records
        setting = _configs(records, group)
        if setting in seen:
            continue
        seen.append(setting)
        ours, control, theirs = (_stat(records, g, metric) for g in (group, control_group(group, {}), reference))
        if ours is None or control is None or theirs is None:
            continue
        better = -1 if metric in LOWER_IS_BETTER else 1
        d, width = _diff(ours, control, metric)
        rows.append((label, metric, ours, control, theirs, beats(better * d, width)))
    return rows


def _configs(records, group):
    """The settings (groups.config_keys) of the runs a group selects (empty where none)."""
    try:
        return frozenset(config_keys(select(records, group).drop_duplicates("run_id")))
    except NotRun:
        return frozenset()


def control_rows(mini):
    """Codistillation against its alpha = 0 control, and both against all_reduce, per setting."""
    lines = ["| setting | metric | codistillation - all_reduce | control - all_reduce | "
             "codistillation - control | codistillation beats the control |", "|---|---|---|---|---|---|"]
    for label, metric, ours, control, theirs, verdict in against_control(mini):
        lines.append(f"| {label} | {metric} | {_pm(*_diff(ours, theirs, metric), metric)} | "
                     f"{_pm(*_diff(control, theirs, metric), metric)} | {_pm(*_diff(ours, control, metric), metric)} | "
                     f"{verdict} |")
    return lines if len(lines) > 2 else []


def pilot_headlines(all_claims, mini, resolution, seeds=PILOT_SEEDS):
    """{headline claim id: its Outcome from the runs of the pilot's seeds alone}: what the report
    decided before the power analysis added seeds."""
    by_id = {claim["id"]: claim for claim in all_claims}
    outcomes = {}
    for claim_id in HEADLINES:
        if claim_id not in by_id or by_id[claim_id]["figure"] not in mini:
            continue
        data = mini[by_id[claim_id]["figure"]]
        if not data.records.empty and "cfg.seed" in data.records:
            data = dataclasses.replace(data, records=data.records[data.records["cfg.seed"].isin(seeds)])
        outcomes[claim_id] = evaluate(by_id[claim_id], data, resolution)
    return outcomes


def _undecided(outcome, corrected=False):
    status = corrected_status(outcome) if corrected else outcome.status
    return status not in (HOLDS, FAILS)


def bottom_line(all_claims, outcomes, mini, pilot=None):
    """At most five sentences on what the mini runs found, each computed from the verdicts: the
    comparisons' verdicts (raw and corrected for many comparisons), codistillation's closeness to
    all_reduce judged against the control, its gain over the control, the paper's headline findings
    (beside the pilot's three seeds: `pilot`, pilot_headlines), and what the numbers are not."""
    if not mini:
        return []
    counts = comparison_counts(all_claims, outcomes, "mini")
    corrected = comparison_counts(all_claims, outcomes, "mini", corrected=True)
    first = [c for c in all_claims if outcomes[(c["id"], "mini")].same_as is None]
    close = [outcomes[(c["id"], "mini")].status for c in first if _codistill_close_to_allreduce(c["check"])
             and outcomes[(c["id"], "mini")].status not in (NOT_RUN, NOT_APPLICABLE)]
    beats = against_control(mini)
    headlines = [outcomes[(i, "mini")] for i in HEADLINES if (i, "mini") in outcomes]
    holding = sum(o.status == HOLDS for o in headlines)
    failing = [i for i in HEADLINES if (i, "mini") in outcomes and outcomes[(i, "mini")].status == FAILS]
    sentences = [
        f"At mini scale the claims make {sum(counts.values())} distinct comparisons: after {NAME}'s correction for "
        f"many comparisons {corrected[HOLDS]} hold, {corrected[FAILS]} do not and {corrected[INCONCLUSIVE]} are "
        "inconclusive "
        f"(raw, each at level {ALPHA:g}: {counts[HOLDS]} hold, {counts[FAILS]} do not, {counts[INCONCLUSIVE]} "
        f"inconclusive); {counts[CANNOT_DISCRIMINATE]} cannot discriminate (the alpha = 0 control would pass them "
        f"too) and {counts[NOT_RUN] + counts[NOT_APPLICABLE]} are not run or not testable there.",
        f"Of the {len(close)} comparisons testable at mini scale in which codistillation should come within a "
        "margin of all_reduce, "
        f"{close.count(HOLDS)} hold where the control fails, {close.count(CANNOT_DISCRIMINATE)} cannot discriminate, "
        f"{close.count(FAILS)} do not hold and {close.count(INCONCLUSIVE)} are inconclusive.",
        f"Against its alpha = 0 control (the same models and batches, no distillation), codistillation is better "
        f"beyond the noise in {sum(v == HOLDS for *_, v in beats)} of {len(beats)} settings"
        + (f"; with both tuned on one budget, that it beats the control {TUNED_VERDICT[tuned.status]}"
           if (tuned := outcomes.get((TUNED_BEATS_CONTROL, "mini"))) is not None and tuned.status in TUNED_VERDICT
           else "") + ".",
        f"Of the paper's {len(headlines)} headline findings, {holding} hold at mini scale"
        + (f" and {len(failing)} do not ({', '.join(f'`{i}`' for i in failing)})" if failing else "")
        + f"; the other {len(headlines) - holding - len(failing)} are undecided at the seeds the power analysis "
        f"declares ({sum(_undecided(o, corrected=True) for o in headlines)} after {NAME}'s correction)"
        + (f", against {sum(_undecided(o) for o in pilot.values())} of {len(pilot)} from the pilot's "
           f"{len(PILOT_SEEDS)} seeds alone" if pilot else "") + ".",
        "These are CPU stand-ins' numbers, never the paper's; the paper-scale path has run for a few updates "
        "per workload on one GPU, never on several or at length (docs/gpu-cluster.md).",
    ]
    return ["**Bottom line.** " + " ".join(sentences), ""]


[TUNED_BEATS_CONTROL] = records.bottom_line_claims()   # tuned codistillation against its tuned control
TUNED_VERDICT = {HOLDS: HOLDS, FAILS: FAILS, INCONCLUSIVE: f"is {INCONCLUSIVE}"}


def _codistill_close_to_allreduce(check):
    """A claim that codistillation comes within a margin of all_reduce (its control implicit or named)."""
    sides = equivalence_sides(check)
    return sides is not None and [method_of(check[side]) for side in sides[:2]] == ["codistill", "allreduce"]


def regime_rows(data):
    """Fig. 2's arms per regime: the constant-w.d. gap, the control's gap, what decaying w.d. recovers,
    and what distillation adds to the decaying-w.d. recipe (against that recipe's own control)."""
    if data is None or data.records.empty:
        return []
    lines = ["| regime | constant w.d. - all_reduce | control - all_reduce | decaying - constant w.d. | "
             "decaying w.d. - its control | all_reduce top-1 |", "|---|---|---|---|---|---|"]
    metric = "val_top1"
    record = records.record("fig2_regimes")   # its drawn arms: all_reduce, then each recipe beside its control
    for label, regime in record.regimes.items():
        arms = [_stat(data.records, {**regime, **record.arm(name)}, metric) for name in record.drawn]
        if any(arm is None for arm in arms):
            lines.append(f"| {label} | not run | | | | |")
            continue
        allreduce, constant, control, decaying, decaying_control = arms
        lines.append(f"| {label} | {_pm(*_diff(constant, allreduce, metric), metric)} | "
                     f"{_pm(*_diff(control, allreduce, metric), metric)} | "
                     f"{_pm(*_diff(decaying, constant, metric), metric)} | "
                     f"{_pm(*_diff(decaying, decaying_control, metric), metric)} | "
                     f"{allreduce.mean:.2f} ± {allreduce.se:.2f} |")
    return lines


def frontier_rows(frontier_claim, data, resolution):
    """Per method, the fewest bits per update that reach all_reduce's top-1 within the margin while
    beating the alpha = 0 control, and how many times fewer than all_reduce's that is."""
    if frontier_claim is None or data is None or data.records.empty:
        return []
    check = frontier_claim["check"]
    try:
        rows, allreduce, control, tolerance, how = reaching_rows(data.records, check, "val_top1",
                                                                 Context(data.scale, resolution))
        allreduce_bits = group_stats(data.records, check["b"], check["cost"])[None].mean
    except NotRun:
        return []
    lines = [f"all_reduce: {allreduce.mean:.2f} ± {allreduce.se:.2f} top-1, {allreduce_bits:.3g} bits per update "
             f"between servers; margin {how}; alpha = 0 control "
             + (f"{control.stat.mean:.2f} ± {control.stat.se:.2f} at 0 bits" if control else "not in these logs") + ".",
             "", "| method | fewest bits per update reaching all_reduce and beating the control | setting | "
             "fewer bits than all_reduce |", "|---|---|---|---|"]
    for candidate in check["candidates"]:
        label = candidate["label"]
        sure = [row for row in rows.get(label, []) if row[2] == HOLDS]
        if not sure:
            lines.append(f"| {label} | none of its settings | | |")
            continue
        cost, knob = sure[0][0], sure[0][1]
        key = candidate.get("by", "").split(".")[-1]
        ratio = allreduce_bits / cost if cost > 0 else math.inf
        lines.append(f"| {label} | {cost:.3g} | {key} = {knob:g} | {ratio:,.0f}x |")
    return lines


def findings_section(all_claims, outcomes, data, marks, resolution):
    """Markdown lines of the Findings, from the mini logs (the paper-scale logs are not committed)."""
    mini = data.get("mini")
    if not mini:
        return ["## Findings", "", "No mini-scale logs: nothing to report yet.", ""]
    lines = ["## Findings", "",
             "What the committed **mini-scale** runs show (CPU stand-ins, docs/mini-scale.md; never the paper's "
             "numbers). In every table d is codistillation minus its reference (all_reduce, the control, the other "
             "arm) wherever codistillation is one of the two, else the claim's first arm minus the second. "
             + summary(), "",
             "### The paper's findings at mini scale", ""]
    lines += headline_rows(all_claims, outcomes, marks) + [""]
    anil = headline_rows(all_claims, outcomes, marks, ANIL_HEADLINES)
    if len(anil) > 2:
        lines += ["### Anil et al. 2018's findings at mini scale", "",
                  "The paper codistillation builds on (its section below says how each experiment stands in; "
                  "losses are validation cross-entropies, lower is better):", ""] + anil + [""]
    controls = control_rows(mini)
    if controls:
        lines += ["### Beyond the paper: codistillation against the alpha = 0 control", "",
                  "Does the distillation term do anything the two half-batch models would not do alone? "
                  "(Higher top-1 is better; lower NLL is better: the last column says whether codistillation is "
                  "better than the control beyond the noise.)", ""] + controls + [""]
    regimes = regime_rows(mini.get("fig2_regimes"))
    if regimes:
        lines += ["### Beyond the paper: Figure 2 across regimes", "",
                  "The paper reports that constant weight decay costs codistillation about 2 points of top-1 and "
                  "that decaying it recovers most of that. The same four arms in four regimes of the stand-in, "
                  "fixed before any run (sweeps/fig2_regimes.yaml; claims `fig2-regimes-*`):", ""] + regimes + [""]
    frontier_claim = next((c for c in all_claims if c["check"]["kind"] == "fewest_bits"
                           and c["figure"] == "frontier"), None)
    frontier = frontier_rows(frontier_claim, mini.get("frontier"), resolution.get("mini"))
    if frontier:
        lines += ["### Beyond the paper: bits at equal top-1 (frontier)", ""] + frontier + [""]
    to_target = to_target_rows([c for c in all_claims if c["figure"] == "frontier8" and c["check"]["kind"] == "fewest_bits"],
                               mini.get("frontier8"), resolution.get("mini"))
    if to_target:
        lines += ["### Beyond the paper: bits to reach all_reduce at 8 servers (frontier8)", "",
                  "Where training apart costs clearly (the regime gated by `make regime`): the fewest bits each device "
                  "had sent by the first evaluation at which one of a method's settings' seed-mean curve reached the "
                  "target (the reading of the table frontier8_bits, which lists every setting), and whether that "
                  "setting's final top-1 surely reaches the target while beating the tuned 0-bit control, as the "
                  "claims `frontier8-*` ask; where it does not, the fewest bits of a setting that surely does.", ""] + to_target + [""]
    to_target_lm = to_target_rows([c for c in all_claims if c["figure"] == "frontier8_lm"
                                   and c["check"]["kind"] == "fewest_bits"], mini.get("frontier8_lm"), resolution.get("mini"))
    if to_target_lm:
        lines += ["### Beyond the paper: bits to reach all_reduce at 8 servers on a language model (frontier8_lm)", "",
                  "The same reading on a small transformer language model (workload lm_transformer_mini; top-1 is "
                  "next-token top-1 on held-out text), in its regime gated by `make regime` (sweep "
                  "frontier_regime_lm; claims `frontier8-lm-*`; every setting in the table frontier8_lm_bits).",
                  ""] + to_target_lm + [""]
    return lines


REACHED = {HOLDS: "", INCONCLUSIVE: "its final top-1 not surely at the target and above the control",
           FAILS: "its final top-1 surely below the target or the control"}


def to_target_cell(rows, key, total):
    """One method's cell of the bits-to-target table from its settings' _reaching rows (cheapest
    first): the fewest bits at which a setting's seed-mean curve reaches the target (the quantity of
    the table frontier8_bits), how many times fewer than all_reduce sends in its whole run, and whether
    that setting's final top-1 surely reaches the target while beating the control (what the claims
    ask); where it does not, the fewest bits of a setting that surely does beside it."""
    def bits(row):
        return f"{row[0]:.3g} at {key} = {row[1]:g}" + (f" ({total / row[0]:,.0f}x fewer)" if row[0] > 0 else "")
    reached = [row for row in rows if math.isfinite(row[0])]
    if not reached:
        return "none of its settings"
    cheapest = reached[0]
    if cheapest[2] == HOLDS:
        return bits(cheapest)
    sure = [row for row in reached if row[2] == HOLDS]
    return (f"{bits(cheapest)}, {REACHED.get(cheapest[2], REACHED[INCONCLUSIVE])}; "
            + (f"surely: {bits(sure[0])}" if sure else "surely: none of its settings"))


def to_target_rows(claims, data, resolution):
    """Per method, the fewest bits to each fewest_bits claim's target (bits_to_target: all_reduce's final
    top-1 within the tolerance, 99 % of it) at which a setting's seed-mean curve reaches it, with
    whether that setting surely reaches it while beating the control (to_target_cell)."""
    if not claims or data is None or data.records.empty:
        return []
    columns, header = {}, None
    for claim in claims:
        check = claim["check"]
        try:
            rows, allreduce, control, tolerance, how = reaching_rows(data.records, check, "val_top1",
                                                                     Context(data.scale, resolution))
            total = group_stats(data.records, check["b"], "comm_bits_inter_node")[None].mean
        except NotRun:
            return []
        header = header or (f"all_reduce: {allreduce.mean:.2f} ± {allreduce.se:.2f} top-1, {total:.3g} bits per device "
                            f"in its whole run; tuned 0-bit control " + (f"{control.stat.mean:.2f} ± {control.stat.se:.2f}"
                                                                     if control else "not in these logs") + ".")
        target = f"{allreduce.mean - tolerance:.2f} (all_reduce's final less {how})"
        for candidate in check["candidates"]:
            columns.setdefault(candidate["label"], []).append(
                to_target_cell(rows.get(candidate["label"], []), candidate.get("by", "").split(".")[-1], total))
        columns.setdefault("| target |", []).append(target)
    targets = columns.pop("| target |")
    lines = [header, "", "| method | " + " | ".join(f"bits to {t}" for t in targets) + " |",
             "|---|" + "---|" * len(targets)]
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in columns.items()]
    return lines
