"""Part 3's other methods, which bench_network.py measures in the same two namespaces with the same
harness: PowerSGD, local SGD and DiLoCo beside all_reduce and codistillation (their section, 3c of
results.md, is bench_network_methods_report.py).

- powersgd: one model over both ranks, DDP with torch's PowerSGD hook at powersgd.yaml's rank (2),
  start_iter 2 (torch's smallest with error feedback): the harness's two warm-up updates are plain
  all_reduce, every measured update is compressed. Compute only: the same update with the same hook
  on a one-rank group (`alone`), so the compression (error feedback, the factors' matmuls,
  orthogonalisation) is in it, as the teacher's forward pass is in checkpoints' compute-only time.
- localsgd, diloco: 2 groups of 1 rank; the updates between averagings (no collective at all: their
  compute-only time) and one averaging (DiLoCo: one outer step: the outer gradient's all_reduce and
  the outer Nesterov step) timed apart, as part 3 does for checkpoints; at period H an update costs
  between + averaging / H, reported for H = 16 (localsgd.yaml's default, ours) and H = 500
  (diloco.yaml's, the DiLoCo paper's).
"""
POWERSGD_OVERRIDES = ("method=powersgd", "method.start_iter=2")
METHOD_LAYOUTS = (("all_reduce", (1, 2)), ("predictions", (2, 1)), ("checkpoints", (2, 1)),
                  ("powersgd", (1, 2)), ("localsgd", (2, 1)), ("diloco", (2, 1)))   # (n groups, k ranks)
TIMED_APART = {"checkpoints": "exchange", "localsgd": "averaging", "diloco": "outer step"}
PERIODIC = TIMED_APART
AVERAGING_PERIODS = (16, 500)
# PowerSGD: past start_iter (2) and its first compressed update, which allocates the error-feedback
# and warm-start memories (seen: a one-update window of the 100M twin 50 % slower when it was first)
WARMUP_UPDATES = {"powersgd": 3}
NEVER = 1_000_000_000   # the period of the runs whose exchange is timed apart: none between


def method_containers(compose):
    return {"powersgd": compose(list(POWERSGD_OVERRIDES)),
            "localsgd": compose(["method=localsgd", f"method.period={NEVER}"]),
            "diloco": compose(["method=diloco", f"method.period={NEVER}"])}


def alone(timed):
    """PowerSGD's update without its collectives: the model in a DDP over a one-rank group with its own
    PowerSGD state and the engine's hook, so that the compression runs as in the real update and
    every all_reduce is local. Made once (both ranks make the one-rank groups together), then
    warmed past start_iter so that every timed update compresses."""
    if getattr(timed, "alone", None) is None:
        import types

        import torch
        import torch.distributed as dist

        from codistill import CommCounter
        from codistill_experiments.baselines.methods import ONE_BUCKET_MB, PowerSGD, counted_powersgd_hook

        own = [dist.new_group([rank]) for rank in range(dist.get_world_size())][dist.get_rank()]
        method = PowerSGD(timed.cfg.method, types.SimpleNamespace(group=own, group_spans_nodes=False), CommCounter())
        timed.alone = torch.nn.parallel.DistributedDataParallel(timed.state.model, process_group=own,
                                                                bucket_cap_mb=ONE_BUCKET_MB)
        timed.alone.register_comm_hook(method, counted_powersgd_hook)
        saved, timed.state.trainable = timed.state.trainable, timed.alone
        timed.run(WARMUP_UPDATES["powersgd"])
        timed.state.trainable = saved
    return timed.alone


def periodic_call(timed, method):
    """One exchange of `method` through the engine's own objects (and their counters), now."""
    if method == "checkpoints":
        state = timed.state   # update 0 is an exchange point at any period: one exchange, now
        return lambda: state.codistiller.refresh(0)
    own = timed.state.method
    if method == "diloco":
        return lambda: own.after_update(own.period)

    def average():  # torch's PeriodicModelAverager averages when its step count says so
        own.averager.step = own.averager.warmup_steps
        own.after_update(None)
    return average
