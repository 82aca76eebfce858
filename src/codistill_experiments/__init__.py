"""The experiments: the paper's runs, built on the codistill library (which never imports this package).

  config/           a run's config: each group's schema, checked by Hydra as it composes, and
                    the validation of the composed job (Hydra, OmegaConf; no torch)
  launch.py         the ranks of a run, locally or under submitit/Slurm (jobs.py: the job environment,
                    the GPUs a rank may use)
  run_state.py      crash-safe run state: each model group's saved state, committed atomically
  file_lock.py      the run's lock (and model jobs' merge lock), where a file system has no flock too
  runlog.py         run ids, run directories, metrics.jsonl and how a run's log ends
  progress.py       one-line progress reports; divergence.py a non-finite loss as a failed run
  run_schedules.py  the library's schedules from a run's schedule and method config
  names.py          the experiments' choices (stand-in architectures, scenarios), torch-free
  data_checks.py    whether a paper-scale data set is on disk (torch-free)
  seeds.py          each model's initialisation seed
  training/         the training engine every workload below and every method runs on (one rank's loop,
                    evaluation, sampling, the supervised term, two-phase distillation)
  workloads.py      the workloads by name; datasets.py what every workload builds
  vision/           the vision workloads (generated stand-ins, digits, ImageNet, CIFAR-10, multi-view)
  tabular/          the tabular workloads (Criteo's click prediction)
  language_model/   the language-model workloads and the generated corpus they and fairseq's read
  baselines/        the methods codistillation is compared with (PowerSGD, local SGD, DiLoCo, ...)
  translation/      the fairseq client: fairseq command lines, processes, records (the fairseq
                    plugin, src/codistill_fairseq, trains through the library from inside fairseq)
"""
