"""The invariants of the grammar translation stand-in (workload translation_grammar), measured on
the all_reduce baseline of sweep translation_regime with and without label smoothing, before any
codistillation run on it (docs/mini-scale.md, "The grammar stand-in"): far from the corpus's noise
floor and below its BLEU ceiling (both computed from the generator), trained until validation NLL
flattens, label smoothing helping it beyond noise, BLEU's seed noise small enough to decide Table
2's steps, and enough evaluations for curves."""
import math

import pandas as pd

from codistill_experiments.translation.data import ceiling_bleu, noise_floor_bits

from ..logs.manifests import ManifestMissing, manifest, seed_of, setting_of
from .runs import SCALE, Check, header_config, missing, seed_stats
from .translation import FLAT_TAIL, MAX_TAIL_DROP, run_curves, tail_share

GRAMMAR_SWEEP, GRAMMAR_WORKLOAD, TABLE2 = "translation_regime", "translation_grammar", "table2"
FLOOR_RATIO, CEILING_GAP, STEP_NOISE, EVALUATIONS, HELPS_SE = 3.0, 10.0, 1.0, 10, 2.0
GRAMMAR = {
    "floor_distance": "far from the noise floor: all_reduce final val NLL / the corpus's noise floor",
    "below_ceiling": "below the BLEU ceiling: best possible BLEU - all_reduce BLEU",
    "baseline_flattened": f"all_reduce trained until val NLL flattens: last {FLAT_TAIL:.0%} of updates' share of "
                          "its drop (%)",
    "label_smoothing_helps": "label smoothing 0.1 helps all_reduce: its BLEU - BLEU without it",
    "bleu_step_noise": "Table 2's step noise: s.e. of the difference of two settings' mean BLEU over Table 2's seeds",
    "evaluations": "evaluations per run (curves)",
}


def smoothing(records):
    """Each record's run's label smoothing (the schedule's)."""
    return pd.to_numeric(records["cfg.schedule.label_smoothing"], errors="coerce")


def table2_seeds(results):
    """The fewest seeds of a setting of Table 2's sweep at mini scale (its manifest), None without one."""
    try:
        jobs = manifest(results, TABLE2, SCALE)
    except ManifestMissing:
        return None
    seeds = {}
    for job in jobs:
        seeds.setdefault(setting_of(job["overrides"]), set()).add(seed_of(job["overrides"]))
    return min(len(each) for each in seeds.values())


def grammar_checks(records, results):
    """records: translation_regime's eval and test records (collect's table)."""
    if records.empty:
        return [missing(check, "", f"no {GRAMMAR_SWEEP} runs") for check in GRAMMAR]
    evals, tests = records[records["kind"] == "eval"], records[records["kind"] == "test"]
    smoothed = smoothing(evals) > 0
    baseline = evals[smoothed]
    bleu = tests.groupby("run_id")["bleu"].mean()
    smoothed_runs = set(baseline["run_id"])
    baseline_bleu = bleu[bleu.index.isin(smoothed_runs)]
    plain_bleu = bleu[~bleu.index.isin(smoothed_runs)]
    corpus = header_config(results, evals["run_id"].iloc[0])["workload"]["corpus"]
    floor, ceiling = noise_floor_bits(corpus), ceiling_bleu(corpus)
    curves = run_curves(baseline)
    finals = pd.Series({run: curve.iloc[-1] for run, curve in curves.items()})
    final, _, n = seed_stats(finals)
    mean_bleu, se_bleu, n_bleu = seed_stats(baseline_bleu)
    plain_mean, plain_se, n_plain = seed_stats(plain_bleu)
    shares = pd.Series({run: tail_share(curve) for run, curve in curves.items()})
    difference, difference_se = mean_bleu - plain_mean, math.hypot(se_bleu, plain_se)
    # the baseline's seed-to-seed spread of BLEU, averaged over as many seeds as Table 2 runs
    seeds = table2_seeds(results) or n_bleu
    spread = se_bleu * math.sqrt(n_bleu)
    step_noise = math.sqrt(2) * spread / math.sqrt(seeds)
    counts = evals.groupby("run_id")["step"].nunique()
    return [
        Check("floor_distance", f">= {FLOOR_RATIO:g}", final / floor,
              f"{final / floor:.1f} ({final:.3f} bits over {n} seeds; floor {floor:.3f})", final / floor >= FLOOR_RATIO),
        Check("below_ceiling", f">= {CEILING_GAP:g}", ceiling - mean_bleu,
              f"{ceiling - mean_bleu:.1f} (BLEU {mean_bleu:.2f} over {n_bleu} seeds; ceiling {ceiling:.2f})",
              ceiling - mean_bleu >= CEILING_GAP),
        Check("baseline_flattened", f"< {MAX_TAIL_DROP:g} (mean over seeds)", shares.mean(),
              f"{shares.mean():.1f} (seeds {', '.join(f'{s:.1f}' for s in shares)})", bool(shares.mean() < MAX_TAIL_DROP)),
        Check("label_smoothing_helps", f"> {HELPS_SE:g} s.e. of the difference", difference,
              f"{difference:+.2f} BLEU ({mean_bleu:.2f} against {plain_mean:.2f}, {n_bleu} and {n_plain} seeds; "
              f"s.e. {difference_se:.2f})", bool(difference > HELPS_SE * difference_se)),
        Check("bleu_step_noise", f"< {STEP_NOISE:g} BLEU", step_noise,
              f"{step_noise:.2f} (sqrt 2 x the baseline's BLEU s.d. {spread:.2f} over {n_bleu} seeds / sqrt {seeds}, "
              "Table 2's seeds)", bool(step_noise < STEP_NOISE)),
        Check("evaluations", f">= {EVALUATIONS}", float(counts.min()),
              f"{int(counts.min())} (fewest in a run)", bool(counts.min() >= EVALUATIONS)),
    ]
