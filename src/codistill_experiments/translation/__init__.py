"""Translation (paper Sec. 4.2, A.3, A.5): a client of the codistill library, trained by fairseq.

n fairseq transformers, each trained by `fairseq-train` itself with the `src/codistill_fairseq`
plugin, codistilled through checkpoint snapshots on the run directory's file system. The plugin
trains through the library's Codistiller (Codistiller.through_files: the file exchange, burn-in,
teachers, the token-level distillation term and alpha), as the vision engine trains through
Codistiller over collectives. This package builds and runs the fairseq processes and the run's
records; nothing here imports the plugin (fairseq loads it from `--user-dir`).

  checks.py           compose-time checks of translation jobs (config.validate calls them; no torch)
  data.py             the data-bin check and the generated mini corpus
  label_smoothing.py  the per-epoch label-smoothing schedule of the criterion
  commands.py         each rank's fairseq-train / fairseq-generate command line
  processes.py        fairseq in child processes (forked on CPUs, spawned on GPUs): start, wait, stop, fail with the log's tail
  launcher.py         a run: its ranks (local or one task each), flag files, resume repairs
  results.py          the end of a run: BLEU of every model and the assembled metrics.jsonl
  records.py          the eval record of one model (from the criterion's exact sums) and the
                      task's state beside each fairseq checkpoint (resume)
"""
