"""The regime check: is each mini stand-in in the paper's regime? Measures every invariant
that docs/mini-scale.md ("Regime check") lists from the committed logs, prints one table per task
(vision, translation) with the bound and each workload's value side by side, and says of each
whether it holds, fails, or is declared unmet there.

    python -m figures.regime [--results paper/logs] [--docs docs/mini-scale.md]

Vision invariants come from the runs of the `regime` sweep (the all_reduce baseline, its weight
decay x {0.1, 0.3, 3} and the alpha = 0 `independent` control), the largest batch and the cost
from Figure 2's sweep, the data and model sizes from the workload itself (built from a run's
config); translation invariants from the runs of sweeps fig4 and iwslt_overfit; the frontier's
regime where communication matters from sweep frontier_regime (all_reduce over 8 servers against the
tuned 0-bit control of 8 groups: frontier); the cost of `make reproduce-all` from the end records of
every mini sweep's runs (cost).

The workloads that the exit status judges ("gated") are those of Figure 2's mini runs, the
stand-in every vision figure is drawn from, every translation workload, Anil et al.'s stand-ins where
their sweeps have run, the frontier's regime ("frontier_regime", always: logs without its sweep exit
2) and the cost of every sweep ("every mini sweep"); any other vision workload (digits, when
Figure 2's runs use another stand-in) is printed beside them for reference.
Exit status: 0 when every invariant of every gated workload holds or is declared unmet with its
measured value; 1 when one fails, or a declaration does not match its measured value or declares
an invariant that holds; 2 when runs the check needs are missing or unfinished (listed, with the
commands that make them).

The package: check (the check over every workload and its exit status), vision, translation,
models, criteo, language_model, frontier and cost (the invariants), runs (what the check reads from
the logs and the Check each invariant returns), verdicts (declarations in docs/mini-scale.md and
each invariant's verdict).
"""
