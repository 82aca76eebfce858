"""Codistillation for fairseq, loaded with `--user-dir src/codistill_fairseq` (no fork of fairseq).

Registers the `codistill` criterion (criterion.py) and the `codistill_translation` task (task.py)
with fairseq's own decorators. Their pure parts (the distillation term, the alpha and
label-smoothing schedules, the snapshot files) live in the codistill library:
codistill/translation_losses.py and codistill/snapshots.py. codistill/translation.py builds the
fairseq-train command of every model of a run from the repository's config; the plugin also works
by hand, e.g.

    fairseq-train data-bin/iwslt14.tokenized.de-en --user-dir src/codistill_fairseq \\
        --task codistill_translation --codistill-dir runs/x --n-models 2 --model-index 0 \\
        --exchange-period 1000 --criterion codistill --codistill-alpha 1 --alpha-schedule exponential ...
"""
from . import criterion, task  # noqa: F401  (registration)
