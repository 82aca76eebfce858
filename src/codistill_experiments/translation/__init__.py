"""Translation (paper Sec. 4.2, A.3, A.5): a client of the codistill core, trained by fairseq.

n fairseq transformers, each trained by `fairseq-train` itself with the `src/codistill_fairseq`
plugin, codistilled through checkpoint snapshots on the run directory's file system. The core
supplies what vision and translation share: the distillation term (losses.py, token-level with a
padding mask), the alpha schedule (schedules.AlphaSchedule), the file exchange
(file_exchange.FileCheckpointExchange on snapshots.SnapshotStore), the bit counter
(exchange.CommCounter), seeds (seeds.model_seed), the run's records and atomic writes (runlog.py)
and the job environment (jobs.py). The plugin only adapts fairseq's hooks to these; nothing here
imports the plugin (fairseq loads it from `--user-dir`).

  checks.py           compose-time checks of translation jobs (config.validate calls them; no torch)
  data.py             the data-bin check and the generated mini corpus
  label_smoothing.py  the per-epoch label-smoothing schedule of the criterion
  commands.py         each rank's fairseq-train / fairseq-generate command line
  processes.py        fairseq in forked child processes: start, wait, stop, fail with the log's tail
  launcher.py         a run: its ranks (local or one task each), flag files, resume repairs
  results.py          the end of a run: BLEU of every model and the assembled metrics.jsonl
  records.py          the eval record of one model (from the criterion's exact sums) and the
                      task's state beside each fairseq checkpoint (resume)
"""
