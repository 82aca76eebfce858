"""Bits to reach a target from the runs' curves (figures/claims/to_target.py), on hand-made eval
records whose crossings are worked out by hand."""
import math

import pandas as pd
import pytest

from figures.logs.to_target import table, text, to_target


def records(runs):
    """runs: {(run_id, seed): [(step, value, bits), ...]} -> eval records, two models per run (the
    metric logged by each, as the engine logs val_top1_mean_over_models on every model's row)."""
    rows = []
    for (run_id, seed), curve in runs.items():
        for step, value, bits in curve:
            for model in (0, 1):
                rows.append({"run_id": run_id, "seed": seed, "step": step, "model": model,
                             "val_top1_mean_over_models": value, "comm_bits_inter_node": bits})
    return pd.DataFrame(rows)


TWO_SEEDS = records({("a", 0): [(10, 50.0, 100), (20, 70.0, 200), (30, 80.0, 300)],
                     ("b", 1): [(10, 60.0, 100), (20, 66.0, 200), (30, 90.0, 300)]})   # seed mean: 55, 68, 85


def test_the_seed_mean_curve_reaches_the_target_at_its_first_evaluation_at_or_above_it():
    result = to_target(TWO_SEEDS, "val_top1_mean_over_models", 68.0)
    assert (result.bits, result.bits_before, result.step) == (200.0, 100.0, 20.0)
    assert (result.seeds_reaching, result.seeds) == (2, 2)   # seed 0 at step 20 (70), seed 1 at 30 (90)
    assert text(result) == "200 bits at update 20, > 100 before (2 of 2 seeds reach it)"


def test_a_target_the_mean_never_reaches_is_not_reached_though_one_seed_does():
    result = to_target(TWO_SEEDS, "val_top1_mean_over_models", 86.0)   # the mean ends at 85; seed 1 at 90
    assert math.isinf(result.bits) and result.bits_before == 300.0 and (result.seeds_reaching, result.seeds) == (1, 2)
    assert text(result) == "not reached (1 of 2 seeds reach it)"


def test_reached_at_the_first_evaluation_nothing_was_sent_before():
    result = to_target(TWO_SEEDS, "val_top1_mean_over_models", 40.0)
    assert (result.bits, result.bits_before, result.step, result.seeds_reaching) == (100.0, 0.0, 10.0, 2)


def test_seeds_evaluated_at_different_steps_are_refused():
    uneven = records({("a", 0): [(10, 50.0, 100), (20, 70.0, 200)], ("b", 1): [(10, 60.0, 100), (25, 66.0, 250)]})
    with pytest.raises(ValueError, match="different steps"):
        to_target(uneven, "val_top1_mean_over_models", 60.0)


def test_the_table_reads_all_reduces_final_mean_and_99_percent_of_it():
    # all_reduce ends at 80: the targets are 80 and 79.2
    cheap_slow = records({("c", 0): [(10, 70.0, 10), (20, 79.5, 20), (30, 80.5, 30)]})
    costly_fast = records({("d", 0): [(10, 80.0, 1000), (20, 81.0, 2000), (30, 81.0, 3000)]})
    rows = table({"cheap": cheap_slow, "costly": costly_fast}, "val_top1_mean_over_models", 80.0)
    by_label = rows.set_index("setting")
    assert by_label.loc["cheap", "to 100%"].bits == 30 and by_label.loc["cheap", "to 99%"].bits == 20
    assert by_label.loc["costly", "to 100%"].bits == 1000 and by_label.loc["costly", "to 99%"].bits == 1000
