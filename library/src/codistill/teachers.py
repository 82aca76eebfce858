"""The teachers of a checkpoint exchange: how they are built and how they run forward, one policy
for every client (the training engine, the fairseq plugin, a loop of your own).

A teacher is a fresh module of a peer's architecture into which the exchange loads the peer's
parameters. It runs forward as in evaluation (dropout off: a teacher's prediction is the peer's
function, not a noisy draw of it), except that every batch norm the model trains with normalises
with the batch's own statistics: running statistics are buffers, they do not travel with the
parameters, so a teacher's own would describe no model. A part that the model keeps in evaluation
mode while it trains (a frozen prefix) stays so in its teacher too.

FrozenTeachers holds trained teachers that never change (Codistiller.from_teachers): the exchange
of a distillation in which nothing travels.
"""
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from .checkpoints import check_held_parameters


def teacher_mode(teacher):
    """Puts `teacher` in the teachers' mode (module docstring) and returns it."""
    teacher.train()   # the modes the model trains in: a model may keep parts in eval mode
    training_norms = [module for module in teacher.modules() if isinstance(module, _BatchNorm) and module.training]
    teacher.eval()
    for module in training_norms:
        module.train()
    return teacher


def build_teachers(model, make_teacher, group_index, n_groups):
    """make_teacher(j) for each other model group j, in group order: on the model's device and in its
    dtype, without gradients, in teacher mode. Built without drawing from the model's random
    stream (its dropout, its data order), so that a run draws the same numbers with or without them.
    A model with DTensor parameters (FSDP2's fully_shard) is refused: checkpoint exchanges need plain ones."""
    check_held_parameters(model)
    return prepared_teachers(model, make_teacher, [j for j in range(n_groups) if j != group_index])


def prepared_teachers(model, make_teacher, indices):
    """make_teacher(j) for each j of `indices`, as build_teachers prepares them (the one policy for
    the teachers of an exchange and for frozen teachers: Codistiller.from_teachers)."""
    reference = next(model.parameters())
    devices = [reference.device] if reference.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        teachers = [make_teacher(j).to(device=reference.device, dtype=reference.dtype) for j in indices]
    for teacher in teachers:
        teacher.requires_grad_(False)
        teacher_mode(teacher)
    return teachers


class FrozenTeachers:
    """The exchange of a distillation from trained models (Codistiller.from_teachers): the
    `teachers` hold their parameters from the start and never change; nothing is sent, nothing is
    charged, and a resumed run needs nothing of it (the teachers are loaded again)."""

    sends = "checkpoints"   # teachers are modules the student's rank runs on its own batch

    def __init__(self, teachers):
        self.teachers = list(teachers)

    def publish(self, step, model):
        """Nothing: frozen teachers send nothing."""

    def refresh(self, step, model):
        """Nothing: the teachers never change."""

    def held_steps(self):
        """None: the teachers come from no update of this run."""
        return None

    def present(self):
        """Per teacher: True (every frozen teacher is there from the start)."""
        return [True] * len(self.teachers)

    def teacher_ages(self, step):
        """None: trained models have no age in this run's updates."""
        return None

    def state_dict(self):
        """Nothing: a resumed run loads the teachers again."""
        return {}

    def load_state_dict(self, state):
        """Nothing to restore (its state_dict is empty)."""
