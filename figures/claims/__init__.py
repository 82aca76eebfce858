"""The claims of the figures' records (paper/figures/<id>.yaml) checked against the collected logs. At each scale a claim gets one of the
verdicts of the verdict rule, rule.py, which decides every verdict and whose prose the report prints
(paper/report.md, "Noise and verdicts"); n/a for a paper-scale number, e.g. 76.1 % top-1, that a
mini stand-in cannot check (the mini value is still shown).

A claim's `check` selects groups of runs from its figure's collected records and compares the
mean over seeds of one metric at each run's last evaluation (mean over the run's models, or
over the models of one architecture with `model_arch`). Every comparison is a difference d
between means with its noise (noise.py: Welch's t quantile at the rule's level x the combined
standard error over seeds of d + one validation sample, 100 / val_samples points for a top-1
metric, val_samples from the eval records; where they do not carry it, from the run's workload
config: digits 1797 - train_size, workload.val_size, ImageNet 50,000, CIFAR-10 10,000). What d and
the bound are for each check kind:

- value:      |mean - value| <= tolerance (or rel_tolerance x |value|)
- difference: mean(a) - mean(b) - value, as `value`
- compare:    d = mean(a) - mean(b) against `margin`: greater (d > margin), less (d < -margin),
              at_least (d >= -margin), within (|d| <= margin)
- monotone:   the means of `group` (minus those of `minus`, matched on `by`) increase or decrease
              along the sorted values of `by`: every step must hold (rule.every)
- spread:     max - min of the means of `group` over the values of `by` is at most `max`
              (judged on the extreme pair, as `within`)
- tradeoff:   some `by` value of group a reaches mean(b) - tolerance on `metric` (as `at_least`,
              beating the alpha = 0 control) while group b costs at least `min_ratio` times more on
              `cost` (Fig. 1)
- recovers:   of the gap mean(target) - mean(base), group `treated` recovers more than `share`:
              (treated - base) - share x (target - base) > 0 beyond its noise, the gap itself
              being beyond its noise (Fig. 2: decaying weight decay recovers most of what constant
              weight decay costs); `better: lower` for a loss, whose target lies below its base
- fewest_bits: of `candidates` (each a labelled group with its knob `by`), the `expect` ones
              reach mean(b) - tolerance (as `at_least`, beating the alpha = 0 control) at a lower
              `cost` than any other candidate possibly does (rule.cheapest; frontier). `cost:
              bits_to_target` reads each setting's cost from its seed-mean curve: the bits sent by
              the first evaluation at or above mean(b) - tolerance (to_target.py); `share_of_b:
              0.99` sets the tolerance to 1 % of mean(b) at both scales
- configured_ratio: decided from the paper's configs alone, without a run (configured.py): the
              bits per update of job `a` are at least `min_ratio` times those of job `b`

A claim's `untestable: {scale: reason}` makes it n/a at that scale, the reason shown: what a
stand-in cannot test whatever the method does (Fig. 1's bits ratio at mini scale is set by the
stand-in's model size).

Margins and tolerances (`margin` of within / at_least, `max` of spread, `tolerance` of tradeoff)
are set by noise.margin_for: at mini scale from `mini_margin_se` (the workload's seed standard
error: the median, over every setting of that workload at that scale in the paper's experiments,
of the standard error of its final value over seeds; the frontier, beyond the paper, does not move
it) or, for a loss, `mini_margin_of` (the paper's value of that loss).

A claim that a method comes close to all_reduce (compare within / at_least, tradeoff, fewest_bits),
or a compare within / at_least that names its `control` group, is judged against the alpha = 0
control as well (control.py finds it; rule.py says how it bears on the verdict). For a compare or
difference between a codistillation group and an all_reduce group, the outcome also reports the gap
codistillation - all_reduce and the share of it that the control already shows.

A group maps config keys (dotted, as in the resolved config), or derived columns (model_arch,
setup, n_way, gamma), to a value, a list of values, or min / max (the extreme value present among
the runs the other keys select); `best_over: <key>` with `best: min|max` keeps the best mean over
that key's values (alpha_gamma: each γ with its best initial α); `metric` reads another metric for
that group than the claim's (an ensemble's ensemble_val_loss beside single models' val_loss).

The package: evaluation (the claims file loaded and each claim evaluated at one scale), checks (the
check kinds), groups (the runs a group names and their final metric over seeds), noise (the noise
of a difference, each workload's resolution, mini-scale margins), rule (the verdict rule: the
verdicts, the functions that decide each, and its prose), control (the alpha = 0 control's groups
and gaps), findings (the Findings that open the report).
"""
