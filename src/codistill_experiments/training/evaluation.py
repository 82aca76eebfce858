"""What a rank measures and logs: its training losses between evaluations, the validation of its
model (top-1, loss, the ensemble's top-1 and loss and the churn between models), the records each
evaluation appends to metrics.jsonl (one per model, gathered on rank 0), and a model's validation
predictions at the end of a run (save_predictions)."""
import numpy as np
import torch
import torch.distributed as dist

from codistill.internals import atomic_write_bytes, flat_parameters

from .sampling import to_device

# Columns of the per-group statistics that rank 0 gathers for each log record.
(TRAIN_CE, TRAIN_DISTILL, TRAIN_BATCHES, VAL_LOSS, VAL_CORRECT, VAL_COUNT, DIST_FROM_INIT,
 ENSEMBLE_CORRECT, CHURN_SUM, ENSEMBLE_LOSS) = range(10)
N_STATS = 10


class TrainLosses:
    """Sums of this rank's supervised and distillation losses since the last evaluation: float32
    tensors on the device (no host synchronisation per update), read at each evaluation."""

    def __init__(self, device):
        self.supervised, self.distill = torch.zeros((), device=device), torch.zeros((), device=device)
        self.batches = 0

    def add(self, supervised, distill):
        self.supervised += supervised
        if distill is not None:  # no teachers at this update: nothing to add
            self.distill += distill
        self.batches += 1

    def drain_into(self, stats):
        stats[TRAIN_CE], stats[TRAIN_DISTILL] = self.supervised.item(), self.distill.item()
        stats[TRAIN_BATCHES] = self.batches
        self.supervised.zero_()
        self.distill.zero_()
        self.batches = 0


def agreement(probabilities, targets):
    """probabilities: [n_models, batch, classes] of the same samples. Returns (samples the
    ensemble (mean of probabilities) gets right, sum over samples of the churn, sum over samples
    of the ensemble's negative log-likelihood -log mean_i p_i,y): churn is the total-variation
    distance 1/2 sum_c |p_i,c - p_j,c| averaged over model pairs, which is Anil et al.'s "mean
    absolute difference between predictions" in the binary case. A mean probability of the
    target that underflows to 0 counts as the smallest positive float (a finite loss)."""
    ensemble = probabilities.mean(0)
    ensemble_correct = (ensemble.argmax(-1) == targets).sum().item()
    target_probability = ensemble.gather(-1, targets[:, None]).squeeze(-1)
    ensemble_loss = -target_probability.clamp_min(torch.finfo(ensemble.dtype).tiny).log().sum().item()
    n = len(probabilities)
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    churn = sum(0.5 * (probabilities[i] - probabilities[j]).abs().sum(-1).sum().item() for i, j in pairs)
    return ensemble_correct, churn / len(pairs), ensemble_loss


def evaluate(state, val_loader, stats):
    model = state.model
    model.eval()
    with torch.no_grad():
        for batch in val_loader:
            inputs, targets = to_device(state.device, batch, state.cfg.workload.get("channels_last", False))
            logits = model(inputs)
            stats[VAL_LOSS] += torch.nn.functional.cross_entropy(logits, targets, reduction="sum").item()
            stats[VAL_CORRECT] += (logits.argmax(dim=-1) == targets).sum().item()
            stats[VAL_COUNT] += len(targets)
            if state.layout.n_groups > 1 and state.groups.peers is not None:  # not in a model job
                # Peers evaluate the same samples; this gather is bookkeeping, not exchange traffic.
                # Group 0's rank alone gathers and scores them (the table carries its row to every
                # model's record): on every peer, the n x n churn and n copies of [samples, classes]
                # probabilities cost more than the evaluation itself (8 models of a 1001-word LM).
                probabilities = logits.softmax(-1)
                scorer = state.layout.peer_ranks(state.layout.rank_in_group)[0]
                scores = dist.get_rank() == scorer
                gathered = [torch.empty_like(probabilities) for _ in range(state.layout.n_groups)] if scores else None
                dist.gather(probabilities, gathered, dst=scorer, group=state.groups.peers)
                if scores:
                    correct, churn, ensemble_loss = agreement(torch.stack(gathered), targets)
                    stats[ENSEMBLE_CORRECT] += correct
                    stats[CHURN_SUM] += churn
                    stats[ENSEMBLE_LOSS] += ensemble_loss
    model.train()
    if state.layout.rank_in_group == 0:
        current = flat_parameters(model)
        stats[DIST_FROM_INIT] = torch.linalg.vector_norm(current - state.initial_params).item()


def gather_stats(state, local):
    """Sums every rank's row into an [n_groups, N_STATS] table, returned on the CPU. Bookkeeping
    only: not counted as exchange traffic. The table is summed on the run's device: NCCL has no
    CPU backend, and a CPU tensor handed to its group is refused."""
    table = torch.zeros(state.layout.n_groups, N_STATS, dtype=torch.float64, device=state.device)
    table[state.layout.group_index] = local
    dist.all_reduce(table)
    return table.cpu()


def records(table, step, schedules, counter, wall_time, batch_per_model, models=None, alpha=None):
    """The evaluation's log records, one per model (of `models` only, when given: a model job
    has its own row of the table). alpha: the run's alpha as a function of the update, by default
    schedules.alpha (a codistilled run's is its Codistiller's alpha_at: 0 during the burn-in)."""
    last = max(step - 1, 0)
    alpha = schedules.alpha if alpha is None else alpha
    models = range(len(table)) if models is None else models
    multi = len(models) > 1
    mean_top1 = (100.0 * table[models, VAL_CORRECT] / table[models, VAL_COUNT]).mean().item()
    scored = table[0].tolist()   # the ensemble's and churn's sums: group 0 scores them (evaluate)
    for group in models:
        row = table[group].tolist()
        yield {
            "kind": "eval",
            "step": step,
            "epoch": step / schedules.steps_per_epoch,
            "model": group,
            "train_loss": row[TRAIN_CE] / max(row[TRAIN_BATCHES], 1),
            "train_distill_loss": row[TRAIN_DISTILL] / max(row[TRAIN_BATCHES], 1),
            "val_loss": row[VAL_LOSS] / row[VAL_COUNT],
            "val_top1": 100.0 * row[VAL_CORRECT] / row[VAL_COUNT],
            "val_samples": int(row[VAL_COUNT]),  # one sample is 100 / val_samples points of top-1
            "lr": schedules.lr(last),
            "weight_decay": schedules.weight_decay(last),
            "alpha": alpha(last),
            "param_distance_from_init": row[DIST_FROM_INIT],
            "val_top1_mean_over_models": mean_top1,
            "ensemble_top1": 100.0 * scored[ENSEMBLE_CORRECT] / row[VAL_COUNT] if multi else None,
            "churn": scored[CHURN_SUM] / row[VAL_COUNT] if multi else None,
            "ensemble_val_loss": scored[ENSEMBLE_LOSS] / row[VAL_COUNT] if multi else None,
            "batch_per_model": batch_per_model,
            "wall_time": wall_time,
            "comm_bits_inter_node": counter.inter_node_bits,
            "comm_bits_intra_node": counter.intra_node_bits,
        }


def save_predictions(state, val_loader, n_samples, path):
    """Writes this model's validation probabilities, softmax of its logits, to `path` (.npy,
    float16, [n_samples, classes], in the evaluation set's order). Each rank of the model group
    computes its EvalShardSampler rows (r, r + k, ...); the group's ranks gather them, and its
    first rank interleaves them back into order and writes the file."""
    model, k, device = state.model, state.layout.ranks_per_group, state.device
    model.eval()
    with torch.no_grad():
        own = torch.cat([model(to_device(device, batch, state.cfg.workload.get("channels_last", False))[0])
                         .float().softmax(-1) for batch in val_loader])
    model.train()
    if k > 1:
        most = -(-n_samples // k)   # rank 0's rows; a later rank has one fewer when k does not divide
        padded = torch.zeros(most, own.shape[1], device=device)
        padded[:len(own)] = own
        gathered = [torch.empty_like(padded) for _ in range(k)]
        dist.all_gather(gathered, padded, group=state.groups.group)
        own = torch.empty(n_samples, own.shape[1], device=device)
        for rank, rows in enumerate(gathered):
            own[rank::k] = rows[:len(range(rank, n_samples, k))]
    if state.layout.rank_in_group == 0:
        probabilities = own.cpu().numpy().astype(np.float16)
        atomic_write_bytes(path, lambda handle: np.save(handle, probabilities))
