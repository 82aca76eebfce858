"""Two-phase distillation, Anil et al. 2018 Sec. 3.4.1 (method=two_phase): train an ensemble of n
models, then distil it into one model; the cost is both phases' updates.

Phase 1, the teachers: this job with method=independent (`teacher_config`: the independent
method's own file with this job's n, nodes_per_model and coordinated_sampling), trained by the
engine into that run's own directory. An `independent` job with the same other settings is the
same run (same run id): whichever comes first trains it, and the ensemble baseline and the
teachers are one run. A finished teacher run is not trained again.
Phase 2, the students: this run's world (n groups, as independent's), each group training a
fresh model (initialisation seeds the teachers did not use) for the same schedule, distilling
from the n frozen teachers, the teacher run's model<i>.pt, through Codistiller.from_teachers:
codistillation's term and alpha. Its evaluation records carry `teacher_steps`, the teacher run's
updates, so that its total updates are teacher_steps + step. A killed job resumes where it
stopped: phase 1 from the teacher run's committed state, phase 2 from this run's.
"""
import contextlib
from pathlib import Path

import torch
import torch.distributed as dist
from omegaconf import OmegaConf

from codistill import Codistiller

from .. import run_state, runlog

INDEPENDENT = Path(__file__).resolve().parents[2] / "conf" / "method" / "independent.yaml"
# The keys of the two_phase method that the teachers' independent method takes over.
TEACHER_KEYS = ("n", "nodes_per_model", "coordinated_sampling")


def teacher_method(method):
    """The method of the teacher run: method=independent as a job's config resolves it (the
    independent method's file), with this job's n, nodes_per_model and coordinated_sampling."""
    independent = OmegaConf.to_container(OmegaConf.load(INDEPENDENT), resolve=True)
    independent.pop("defaults")
    return {**independent, **{key: method[key] for key in TEACHER_KEYS}}


def teacher_config(config):
    """The resolved config of the teacher run (`config`: this two_phase job's resolved config, a
    plain dict or an OmegaConf node)."""
    if OmegaConf.is_config(config):
        config = OmegaConf.to_container(config, resolve=True)
    return {**config, "method": teacher_method(config["method"]), "expected_run_id": None}


def teacher_directory(config):
    return runlog.run_dir(teacher_config(config))


def finished_teachers(directory):
    """The end record of the teacher run in `directory`; raises when it failed or its log is
    damaged (nothing to distil from), None while it has not ended."""
    state, detail = runlog.end_state(Path(directory) / runlog.METRICS_FILE)
    if state == runlog.FAILED:
        raise RuntimeError(f"the teacher run {directory} failed ({detail.get('reason')}): two_phase has no "
                           "teachers to distil from")
    if state == runlog.DAMAGED:
        raise RuntimeError(f"the teacher run's log is damaged: {detail}")
    return detail if state == runlog.FINISHED else None


def missing_weights(directory, n):
    """The weight files of the n teachers that a finished teacher run lacks: its log without its
    weights, as `figures.carry restore` or a copy of paper/logs leaves it."""
    return [path.name for path in (run_state.final_weights_path(directory, j) for j in range(n)) if not path.exists()]


def teacher_steps(config):
    """The teacher run's updates (of each teacher), from its end record."""
    return finished_teachers(teacher_directory(config))["steps"]


@contextlib.contextmanager
def teacher_run_lock(directory, config):
    """Held by the world's rank 0 while the teachers are trained here, as the entry point holds a
    run's (a sweep's independent job of the same run waits or is refused meanwhile); every rank
    leaves only once the teachers are done."""
    with run_state.run_lock(directory, config["launcher"]["lock_wait_s"]) if dist.get_rank() == 0 \
            else contextlib.nullcontext():
        dist.barrier()
        yield
        dist.barrier()


def train(config, layout, run_directory, device, train_rank):
    """This rank's part of a two_phase job: the teacher run unless it has finished, then this run's
    students. train_rank: the engine on a resolved config (launch.train_typed), which trains each phase."""
    teachers = teacher_config(config)
    directory = runlog.run_dir(teachers)
    with teacher_run_lock(directory, config):
        if finished_teachers(directory) is None:
            if dist.get_rank() == 0:
                run_state.recover(directory, layout.n_groups)
            dist.barrier()
            train_rank(teachers, layout, directory, device)
            finished_teachers(directory)   # a teacher run that diverged stops the job here
    missing = missing_weights(directory, config["method"]["n"])
    if missing:   # before any student trains: without them there is nothing to distil from
        raise RuntimeError(f"the teacher run {directory} has finished but its weights are not there "
                           f"({', '.join(missing)}): its log came without them (figures.carry restore, a copy "
                           f"of paper/logs). Move {directory} aside and run this again: the teachers train anew")
    return train_rank(config, layout, run_directory, device)


def distill_from_teachers(cfg, model, make_teacher, alpha, counter):
    """The student's Codistiller: the n teachers, make_teacher(j) holding the teacher run's
    model<j>.pt, loaded once without drawing from the run's random streams."""
    method = cfg.method
    directory = teacher_directory(cfg)
    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        teachers = []
        for j in range(method.n):
            teacher = make_teacher(j)
            weights = torch.load(run_state.final_weights_path(directory, j), map_location="cpu", weights_only=True)
            teacher.load_state_dict(weights)
            teachers.append(teacher)
    return Codistiller.from_teachers(model, teachers, alpha=alpha, loss=method.loss,
                                     temperature=method.temperature, counter=counter)
