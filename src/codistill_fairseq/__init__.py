"""Codistillation for fairseq, loaded with `--user-dir src/codistill_fairseq` (no fork of fairseq).

Registers the `codistill` criterion (criterion.py), the `codistill_translation` and
`codistill_language_modeling` tasks (task.py) and the `codistill_lstm_lm` model (lstm_lm.py: Anil et
al.'s layer-normalised LSTM language model) with fairseq's own decorators. The criterion and the
tasks only adapt fairseq's hooks to the codistill library: the task
trains through a codistill.Codistiller over snapshot files (teachers, burn-in, the bit counter),
the criterion adds its distillation term weighted by alpha; the run's records are the
experiments'. The plugin depends on `codistill` and `codistill_experiments`, never the other
way: codistill_experiments/translation/ builds the fairseq-train command of every model of a run
and points `--user-dir` here without importing it.
The plugin also works by hand, e.g.

    fairseq-train data-bin/iwslt14.tokenized.de-en --user-dir src/codistill_fairseq \\
        --task codistill_translation --codistill-dir runs/x --n-models 2 --model-index 0 \\
        --exchange-period 1000 --criterion codistill --codistill-alpha 1 --alpha-schedule exponential ...
"""
from . import criterion, lstm_lm, task  # noqa: F401  (registration)
