"""Single-process references the multi-process engine is checked against. They share only the
data definition (workload, sample order) and the schedules (tested by hand elsewhere) with the
engine; the training step is written out here."""
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from codistill_experiments.run_schedules import build_schedules
from codistill_experiments.seeds import model_seed
from codistill_experiments.training.sampling import epoch_permutation
from codistill_experiments.workloads import build_workload


def full_batches(n_samples, batch, order_seed, total_steps):
    steps_per_epoch = n_samples // batch
    step, epoch = 0, 0
    while step < total_steps:
        order = epoch_permutation(n_samples, order_seed, epoch)
        for index in range(steps_per_epoch):
            if step == total_steps:
                return
            yield order[index * batch:(index + 1) * batch]
            step += 1
        epoch += 1


def hand_optimizer(schedule, parameters):
    """The schedule's inner optimizer, its learning rate and weight decay set per update by the
    caller: SGD with momentum, or AdamW (beta1 the schedule's momentum, beta2 0.95)."""
    if schedule.get("optimizer", "sgd") == "adamw":
        return torch.optim.AdamW(parameters, lr=0.0, betas=(schedule.momentum, 0.95))
    return torch.optim.SGD(parameters, lr=0.0, momentum=schedule.momentum)


def algorithm1(container, n_models, batch_per_model, alpha_on=True, dtype=torch.float32):
    """Trains n models together in one process: every model on the same full batch, loss
    CE + alpha/(n-1) * sum_j MSE(f_i(x), f_j(x).detach()) (Algorithm 1, T = 1), every target a
    sample (a language model's every token). With n_models = 1 or alpha_on False it is plain
    training on k times the per-rank batch. With schedule.clip_norm c, each model's gradient times
    min(1, c / its norm) before the step. dtype: of the models and inputs."""
    cfg = OmegaConf.create(container)
    workload = build_workload(cfg.workload)
    train = workload.train_set
    spe = len(train) // batch_per_model
    schedules = build_schedules(cfg.schedule, cfg.method, batch_per_model, spe)
    clip = cfg.schedule.get("clip_norm")
    models = [workload.make_model(model_seed(cfg.seed, i)).to(dtype) for i in range(n_models)]
    optimizers = [hand_optimizer(cfg.schedule, m.parameters()) for m in models]
    for step, indices in enumerate(full_batches(len(train), batch_per_model, cfg.seed, schedules.total_steps)):
        inputs = train.inputs[indices]
        x = inputs.to(dtype) if inputs.is_floating_point() else inputs
        y = train.targets[indices].reshape(-1)
        logits = [m(x) for m in models]
        for i, (_, optimizer) in enumerate(zip(models, optimizers)):
            loss = F.cross_entropy(logits[i], y)
            if alpha_on and n_models > 1:
                peers = sum(F.mse_loss(logits[i], logits[j].detach()) for j in range(n_models) if j != i)
                loss = loss + schedules.alpha(step) * peers / (n_models - 1)
            for group in optimizer.param_groups:
                group["lr"], group["weight_decay"] = schedules.lr(step), schedules.weight_decay(step)
            optimizer.zero_grad()
            loss.backward()
        for model, optimizer in zip(models, optimizers):
            if clip is not None:
                norm = float(torch.sqrt(sum((p.grad ** 2).sum() for p in model.parameters())))
                for p in model.parameters():
                    p.grad.mul_(min(1.0, clip / (norm + 1e-6)))
            optimizer.step()
    return models
