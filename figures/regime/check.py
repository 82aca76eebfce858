"""The regime check over every workload: measures each invariant from the logs, judges it against
the declarations in docs/mini-scale.md, prints one table per task, and says the exit status
(figures/regime/__init__.py says what is checked and what each exit status means).

    python -m figures.regime [--results paper/logs] [--docs docs/mini-scale.md] [--quote]
"""
import argparse
import sys
from dataclasses import dataclass

import pandas as pd
from omegaconf import OmegaConf

from ..paths import COMMITTED
from .cost import COST, EVERY, check_every_sweep
from .criteo import CRITEO, CRITEO_CHECKS, TABLE1, baseline_records, criteo_checks
from .frontier import FRONTIER, FRONTIER_CHECKS, FRONTIER_LM, frontier_checks, load_frontier
from .grammar import GRAMMAR, GRAMMAR_SWEEP, GRAMMAR_WORKLOAD, grammar_checks
from .language_model import FIG4_LM, LM, LM_CHECKS, language_model_checks
from .runs import final_rows, header_config, load_sweep
from .translation import TRANSLATION, translation_checks
from .verdicts import DECLARED, DOCS, HOLDS, INFO, MISSING, read_declarations, table, write_quotation
from .vision import VISION, Vision, vision_checks

REGIME, FIG2, FIG4, OVERFIT, TABLE2 = "regime", "fig2", "fig4", "iwslt_overfit", "table2"
VISION_ORDER = ("digits_mlp",)   # vision columns: these first, in this order, then any other found, by name


def ordered(names):
    known = [n for n in VISION_ORDER if n in names]
    return known + sorted(set(names) - set(known))


@dataclass
class Outcome:
    text: str        # what the command prints
    verdicts: dict   # {(workload, invariant id): (Check, verdict)}
    gated: set       # the workloads the exit status judges
    status: int      # 0 every gated verdict holds or is declared unmet, 1 one does not, 2 runs are missing


def load_vision(results):
    regime, fig2 = load_sweep(results, REGIME), load_sweep(results, FIG2)
    fig2_ends = load_sweep(results, FIG2, kinds=("end",))
    largest = int(fig2.records["batch_per_model"].max()) if "batch_per_model" in fig2.records else None
    vision = Vision(final_rows(regime.records), final_rows(fig2.records), fig2_ends.records,
                    not fig2.not_finished(), largest)
    return vision, [regime, fig2]


def vision_names(vision):
    runs = pd.concat([vision.regime, vision.fig2])
    return ordered(runs.loc[runs["task"].isna(), "workload"].dropna().unique().tolist())


def translation_names(*sweeps):
    frames = [s.records for s in sweeps if not s.records.empty]
    return sorted(pd.concat(frames)["cfg.workload.name"].unique()) if frames else []


def run_check(results=COMMITTED, docs=DOCS):
    """Measures every invariant from the logs under `results`, judges it against the declarations
    in `docs`, and says what the command prints and returns."""
    declarations = read_declarations(docs)
    vision, sweeps = load_vision(results)
    fig4, overfit = load_sweep(results, FIG4), load_sweep(results, OVERFIT)
    names, languages = vision_names(vision), translation_names(fig4, overfit)
    standins = set(vision.fig2.loc[vision.fig2["task"].isna(), "workload"]) or set(names)
    measured = {name: vision_checks(name, vision, results) for name in names}
    vision_table, verdicts = table({n: c for n, (c, _) in measured.items()}, VISION, standins, declarations)
    table2 = load_sweep(results, TABLE2)
    translation = {name: translation_checks(name, fig4.records, overfit.records, results, table2.records)
                   for name in languages}
    translation_table, translation_verdicts = table(translation, TRANSLATION, set(languages), declarations)
    verdicts.update(translation_verdicts)
    table1 = load_sweep(results, TABLE1, kinds=("eval",))
    criteo = criteo_checks(table1.records, results, criteo_workload(table1, results))
    criteo_table, criteo_verdicts = table({CRITEO: criteo},
                                          CRITEO_CHECKS, {CRITEO} if table1.problem is None else set(), declarations)
    verdicts.update(criteo_verdicts)
    fig4_lm = load_sweep(results, FIG4_LM, kinds=("eval",))
    lm_table, lm_verdicts = table({LM: language_model_checks(fig4_lm.records, results)}, LM_CHECKS,
                                  {LM} if fig4_lm.problem is None else set(), declarations)
    verdicts.update(lm_verdicts)
    frontier_records, frontier_ends, frontier_sweep = load_frontier(results)
    lm_records, lm_ends, frontier_lm_sweep = load_frontier(results, FRONTIER_LM)
    # the vision regime is always gated (logs without it exit 2); the language model's where its sweep has run
    lm_gated = {FRONTIER_LM} if frontier_lm_sweep.problem is None else set()
    frontier_table, frontier_verdicts = table({FRONTIER: frontier_checks(frontier_records, frontier_ends),
                                               FRONTIER_LM: frontier_checks(lm_records, lm_ends, FRONTIER_LM)},
                                              FRONTIER_CHECKS, {FRONTIER} | lm_gated, declarations)
    verdicts.update(frontier_verdicts)
    grammar = load_sweep(results, GRAMMAR_SWEEP, kinds=("eval", "test"))
    grammar_table, grammar_verdicts = table({GRAMMAR_WORKLOAD: grammar_checks(grammar.records, results)}, GRAMMAR,
                                            {GRAMMAR_WORKLOAD} if grammar.problem is None else set(), declarations)
    verdicts.update(grammar_verdicts)
    cost_table, cost_verdicts = table({EVERY: [check_every_sweep(results)]}, COST, {EVERY}, declarations)
    verdicts.update(cost_verdicts)
    # Anil et al.'s stand-ins are judged wherever their sweep has run (logs without its manifest: shown only)
    anil = [(CRITEO, table1), (LM, fig4_lm), (GRAMMAR_WORKLOAD, grammar)]
    gated = standins | set(languages) | {EVERY, FRONTIER} | lm_gated | {name for name, sweep in anil if sweep.problem is None}
    lines = ["# Regime check (MINI scale: not the paper's numbers)", "",
             f"Logs: {results}. Gated (judged by the exit status): Figure 2's mini stand-in(s) {sorted(standins)}, "
             f"every translation workload {languages}, Anil et al.'s Criteo and language-model stand-ins and the grammar "
             "translation stand-in where their sweeps have run, the frontier's regimes (sweep frontier_regime always, "
             "frontier_regime_lm where it has run) and the cost of "
             "every mini sweep; any other column is shown "
             "for reference.", "",
             *[f"- {name}: chosen weight-decay multiplier (workload.weight_decay_scale) {chosen}"
               for name, (_, chosen) in measured.items()],
             "", "## Vision", "", vision_table if names else "no vision runs found",
             "", "## Translation", "", translation_table if translation else "no translation runs found",
             "", f"## Grammar translation stand-in ({GRAMMAR_WORKLOAD}: the all_reduce baseline of sweep "
                 f"{GRAMMAR_SWEEP}, before any codistillation run)", "", grammar_table,
             "", "## Criteo stand-in (Anil et al. 2018, Table 1: the DNN baseline of anil_table1)", "", criteo_table,
             "", "## LSTM language-model stand-in (Anil et al. 2018, Fig. 4: the baseline of anil_fig4_lm)", "",
             lm_table,
             "", "## Frontier regimes (8 groups: all_reduce against the tuned 0-bit control; sweeps frontier_regime, "
             "the vision stand-in, and frontier_regime_lm, the transformer language model: next-token top-1)", "",
             frontier_table,
             "", "## Every sweep", "", cost_table]
    judged = ([*sweeps, fig4, overfit, frontier_sweep] + ([frontier_lm_sweep] if lm_gated else [])
              + [sweep for _, sweep in anil if sweep.problem is None])
    status, summary = judge(verdicts, gated, judged, bool(names and languages), results)
    return Outcome("\n".join(lines + summary), verdicts, gated, status)


def criteo_workload(table1, results):
    """The Criteo baseline's workload config (as its runs logged it), None without runs."""
    baseline = baseline_records(table1.records)
    if baseline.empty:
        return None
    return OmegaConf.create(header_config(results, baseline["run_id"].iloc[0])["workload"])


def judge(verdicts, gated, sweeps, anything, results=COMMITTED):
    """(exit status, lines saying why): 2 when runs are missing, 1 when a gated verdict is neither
    holds nor declared unmet, else 0. Missing runs come with the exact commands that make them."""
    not_finished = [line for sweep in sweeps for line in sweep.not_finished()]
    lines = []
    if not_finished:
        lines += ["", "Runs the check needs that are missing or unfinished:", *[f"  {line}" for line in not_finished]]
    judged = {key: state for key, (_, state) in verdicts.items() if key[0] in gated}
    needed = [sweep.id for sweep in sweeps if sweep.not_finished()]
    needed += [name for key, (check, _) in verdicts.items() if key[0] in gated for name in check.needs]
    lines += run_first(dict.fromkeys(needed), results)
    failing = {key: state for key, state in judged.items() if state not in (HOLDS, DECLARED, INFO)}
    named = ": " + ", ".join(f"{workload} {invariant}" for workload, invariant in failing) if failing else "."
    lines += ["", f"{len(judged)} gated verdicts: {len(judged) - len(failing)} hold, are declared unmet or are "
                  f"information; {len(failing)} do not{named}"]
    if not_finished or not anything or MISSING in failing.values():
        return 2, lines
    return (1 if failing else 0), lines


def run_first(sweep_ids, results):
    """The commands that fill the gap: each sweep's missing and unfinished runs, written where this
    check reads (a sweep skips the runs it finds finished), then the check again."""
    if not sweep_ids:
        return []
    return ["", f"Run first (from the repository root; then `make regime LOGS={results}` again):",
            *[f"  CODISTILL_RESULTS={results} .venv/bin/python src/run.py -m sweep={sweep} scale=mini"
              for sweep in sweep_ids]]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m figures.regime",
                                     description="the regime check: every invariant of each mini stand-in")
    parser.add_argument("--results", default=str(COMMITTED), help="the logs (default: the committed paper/logs)")
    parser.add_argument("--docs", default=str(DOCS), help="where invariants are declared unmet (default: %(default)s)")
    parser.add_argument("--quote", action="store_true",
                        help="also write the tables into the docs' \"The committed logs' values\" (after new logs)")
    args = parser.parse_args(argv)
    outcome = run_check(args.results, args.docs)
    print(outcome.text)
    if args.quote:
        changed = write_quotation(args.docs, outcome.text)
        print(f"\n{args.docs}: the quoted tables {'rewritten' if changed else 'were already these'}", file=sys.stderr)
    return outcome.status


if __name__ == "__main__":
    sys.exit(main())
