"""method=two_phase (Anil et al. 2018 Sec. 3.4.1): the library's distillation from frozen teachers
(Codistiller.from_teachers), the teacher run shared with an `independent` job, and a short run of
both phases against a single-process reference written out here."""
import copy

import pytest
import torch
import torch.nn.functional as F
from conftest import SHORT, compose_job
from omegaconf import OmegaConf
from reference import algorithm1, full_batches

from codistill import Codistiller
from codistill_experiments.run_schedules import build_schedules
from codistill_experiments.runlog import end_state, identity, read_records, run_dir, run_id
from codistill_experiments.seeds import model_seed
from codistill_experiments.training.two_phase import teacher_config
from codistill_experiments.workloads import build_workload


def linear(weight, bias, x):
    return x @ weight.T + bias


def test_frozen_teachers_give_alpha_times_the_mean_of_each_teachers_mse_and_never_move():
    torch.manual_seed(0)
    student = torch.nn.Linear(3, 4)
    teachers = [torch.nn.Linear(3, 4) for _ in range(2)]
    frozen = [(t.weight.detach().clone(), t.bias.detach().clone()) for t in teachers]
    alpha = 0.7
    codistiller = Codistiller.from_teachers(student, teachers, alpha=alpha)
    optimizer = torch.optim.SGD(student.parameters(), lr=0.5)
    for step in range(3):
        x = torch.randn(5, 3)
        logits = student(x)
        loss = codistiller.loss(step, x, logits)
        by_hand = alpha * sum(((logits - linear(w, b, x)) ** 2).sum() / logits.numel() for w, b in frozen) / 2
        torch.testing.assert_close(loss, by_hand, rtol=1e-6, atol=0)
        # For MSE the mean over teachers has the gradient of the MSE to the ensemble's mean logits.
        [grad] = torch.autograd.grad(loss, logits, retain_graph=True)
        ensemble = sum(linear(w, b, x) for w, b in frozen) / 2
        torch.testing.assert_close(grad, alpha * 2 * (logits - ensemble).detach() / logits.numel())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        for teacher, (w, b) in zip(codistiller.teachers, frozen):
            assert torch.equal(teacher.weight, w) and torch.equal(teacher.bias, b)
    assert not torch.equal(student.weight, teachers[0].weight)  # the student did move
    assert all(not p.requires_grad for t in codistiller.teachers for p in t.parameters())
    assert codistiller.counter.inter_node_bits == codistiller.counter.intra_node_bits == 0
    assert codistiller.state_dict()["exchange"] == {} and codistiller.teacher_ages(2) is None


def test_from_teachers_names_what_is_wrong():
    model = torch.nn.Linear(2, 2)
    for settings, expected in (({"loss": "l1"}, "loss='l1'"), ({"temperature": 0}, "temperature=0")):
        with pytest.raises(ValueError, match=expected):
            Codistiller.from_teachers(model, [torch.nn.Linear(2, 2)], **settings)
    with pytest.raises(ValueError, match="a teacher"):
        Codistiller.from_teachers(model, [])


@pytest.mark.parametrize("shared", [[], ["method.n=3", "method.nodes_per_model=2", "seed=4"],
                                    ["method.coordinated_sampling=false", "schedule=goyal_step_half"]])
def test_the_teacher_run_is_the_independent_job_with_the_same_settings(tmp_path, shared):
    two_phase = compose_job(["method=two_phase", "method.alpha=0.5", "method.loss=kl", *shared], tmp_path)
    independent = compose_job(["method=independent", *shared], tmp_path)
    teachers = teacher_config(two_phase)
    assert identity(teachers) == identity(independent)
    assert run_id(teachers) == run_id(independent) != run_id(two_phase)
    assert run_dir(teachers) == run_dir(independent)
    assert teacher_config(OmegaConf.create(two_phase)) == teachers


def final_params(directory, model):
    state = torch.load(directory / f"model{model}.pt", weights_only=True)
    return torch.cat([tensor.flatten() for tensor in state.values()])


def flat(module):
    return torch.cat([tensor.detach().flatten() for tensor in module.state_dict().values()])


def reference_students(container, teacher_directory, batch):
    """Phase 2 in one process: student g from seed*1000 + n + g, the same batches and schedules as
    the teachers, loss CE + alpha * mean_j MSE(student, teacher_j), teachers loaded from the
    teacher run's files (the digits MLP has neither dropout nor batch norm: their forward is
    their function). Returns the students and, per student, its distillation term at each update."""
    cfg = OmegaConf.create(container)
    workload = build_workload(cfg.workload)
    train = workload.train_set
    schedules = build_schedules(cfg.schedule, cfg.method, batch, len(train) // batch)
    n = cfg.method.n
    teachers = []
    for j in range(n):
        teacher = workload.make_model(0)
        teacher.load_state_dict(torch.load(teacher_directory / f"model{j}.pt", weights_only=True))
        teachers.append(teacher)
    students = [workload.make_model(model_seed(cfg.seed, n + g)) for g in range(n)]
    optimizers = [torch.optim.SGD(s.parameters(), lr=0.0, momentum=cfg.schedule.momentum) for s in students]
    terms = [[] for _ in students]
    for step, indices in enumerate(full_batches(len(train), batch, cfg.seed, schedules.total_steps)):
        x, y = train.inputs[indices], train.targets[indices]
        with torch.no_grad():
            targets = [teacher(x) for teacher in teachers]
        for student, optimizer, student_terms in zip(students, optimizers, terms):
            logits = student(x)
            term = sum(((logits - t) ** 2).mean() for t in targets) / n
            student_terms.append(term.item())
            loss = F.cross_entropy(logits, y) + schedules.alpha(step) * term
            for group in optimizer.param_groups:
                group["lr"], group["weight_decay"] = schedules.lr(step), schedules.weight_decay(step)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return students, terms


@pytest.mark.slow
def test_two_phase_trains_the_independent_teachers_then_students_distilling_from_them(run_job, tmp_path):
    directory, container = run_job(["method=two_phase", "method.alpha=0.5", *SHORT])
    independent = compose_job(["method=independent", *SHORT], tmp_path)
    teacher_directory = run_dir(independent)
    state, end = end_state(teacher_directory / "metrics.jsonl")
    assert state == "finished" and end["steps"] == 111   # 3 epochs x 37 updates (1200 // 32)
    [header] = [r for r in read_records(teacher_directory / "metrics.jsonl") if r["kind"] == "header"]
    assert header["run_id"] == run_id(independent)

    # Phase 1 is the independent job: each teacher trained alone on the shared batches.
    for model, reference in enumerate(algorithm1(independent, n_models=2, batch_per_model=32, alpha_on=False)):
        torch.testing.assert_close(final_params(teacher_directory, model), flat(reference), rtol=0, atol=1e-5)

    records = read_records(directory / "metrics.jsonl")
    evals = [r for r in records if r["kind"] == "eval"]
    assert records[-1]["kind"] == "end" and records[-1]["steps"] == 111
    assert len(evals) == 6 and all(r["teacher_steps"] == 111 for r in evals)
    assert all(r["alpha"] == 0.5 and r["train_distill_loss"] > 0 for r in evals)

    students, terms = reference_students(container, teacher_directory, batch=32)
    for model, student in enumerate(students):
        torch.testing.assert_close(final_params(directory, model), flat(student), rtol=0, atol=1e-5)
        [first_epoch] = [r for r in evals if r["step"] == 37 and r["model"] == model]
        assert first_epoch["train_distill_loss"] == pytest.approx(sum(terms[model][:37]) / 37, rel=1e-5)
        assert (final_params(directory, model) - final_params(teacher_directory, model)).abs().max() > 1e-2
    # The distillation term really acted: students trained without it end elsewhere.
    plain = copy.deepcopy(container)
    plain["method"]["alpha"] = 0.0
    plain_students, _ = reference_students(plain, teacher_directory, batch=32)
    assert (final_params(directory, 0) - flat(plain_students[0])).abs().max() > 1e-3


@pytest.mark.slow
def test_a_finished_teacher_run_is_not_trained_again(run_job, tmp_path):
    teachers, _ = run_job(["method=independent", *SHORT])
    log = (teachers / "metrics.jsonl").read_bytes()
    models = [(teachers / f"model{i}.pt").read_bytes() for i in range(2)]
    directory, _ = run_job(["method=two_phase", *SHORT])
    assert (teachers / "metrics.jsonl").read_bytes() == log
    assert [(teachers / f"model{i}.pt").read_bytes() for i in range(2)] == models
    evals = [r for r in read_records(directory / "metrics.jsonl") if r["kind"] == "eval"]
    assert evals and all(r["teacher_steps"] == 111 for r in evals)


@pytest.mark.slow
def test_a_finished_teacher_run_without_its_weights_stops_the_job_before_the_students_train(run_job, tmp_path):
    """A teacher run restored from its log alone (figures.carry restore carries no weights): the job
    stops before any student trains, naming the run and what to do, instead of a student rank's
    bare FileNotFoundError."""
    teachers, _ = run_job(["method=independent", *SHORT])
    (teachers / "model1.pt").unlink()
    with pytest.raises(Exception, match=r"model1\.pt\): its log came without them") as raised:
        run_job(["method=two_phase", *SHORT])
    assert "Move" in str(raised.value) and str(teachers) in str(raised.value)
    assert (teachers / "model0.pt").exists() and (teachers / "metrics.jsonl").exists()   # nothing of it removed
    teachers.rename(tmp_path / "aside")   # what the message asks: the teachers train anew, then the students
    directory, _ = run_job(["method=two_phase", *SHORT])
    assert end_state(teachers / "metrics.jsonl")[0] == "finished" and (teachers / "model1.pt").exists()
    assert end_state(directory / "metrics.jsonl")[0] == "finished"
