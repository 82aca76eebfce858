"""Multi-process runs (real torch.distributed, gloo) against single-process equivalents."""
import json

import pytest
import torch
from conftest import SHORT
from reference import algorithm1

from codistill_experiments.runlog import read_records
from codistill_experiments.training.engine import model_seed


def final_params(run_directory, model):
    state = torch.load(run_directory / f"model{model}.pt", weights_only=True)
    return torch.cat([tensor.flatten() for tensor in state.values()])


def reference_params(module):
    return torch.cat([tensor.detach().flatten() for tensor in module.state_dict().values()])


def last_eval(run_directory):
    records = read_records(run_directory / "metrics.jsonl")
    assert records[0]["kind"] == "header" and records[-1]["kind"] == "end"
    return [r for r in records if r["kind"] == "eval"][-1], records


@pytest.mark.slow
def test_allreduce_over_k_ranks_equals_one_process_with_k_times_the_batch(run_job):
    directory, container = run_job(["method=allreduce", "scale.ranks_per_model=2", *SHORT])
    [reference] = algorithm1(container, n_models=1, batch_per_model=64)
    torch.testing.assert_close(final_params(directory, 0), reference_params(reference), rtol=0, atol=1e-5)


@pytest.mark.slow
def test_codistill_with_alpha_zero_equals_independent_runs_with_each_groups_seed(run_job):
    seed = 3
    codistill, _ = run_job(["method=codistill", "method.alpha=0", f"seed={seed}", *SHORT])
    for group in range(2):
        alone, _ = run_job(["method=independent", "method.n=1", f"seed={seed}",
                            f"init_seed={model_seed(seed, group)}", *SHORT])
        assert torch.equal(final_params(codistill, group), final_params(alone, 0))
    assert not torch.equal(final_params(codistill, 0), final_params(codistill, 1))


@pytest.mark.parametrize("n, k", [(2, 2), (3, 1)])
def test_predictions_every_update_equals_algorithm1_in_one_process(run_job, n, k):
    directory, container = run_job(["method=codistill", f"method.n={n}", "method.period=1",
                                    f"scale.ranks_per_model={k}", *SHORT])
    references = algorithm1(container, n_models=n, batch_per_model=32 * k)
    for model, reference in enumerate(references):
        torch.testing.assert_close(final_params(directory, model), reference_params(reference),
                                   rtol=0, atol=1e-5)
    # The distillation term really acted: without it the parameters differ.
    plain = algorithm1(container, n_models=n, batch_per_model=32 * k, alpha_on=False)
    assert (final_params(directory, 0) - reference_params(plain[0])).abs().max() > 1e-3


@pytest.mark.slow
def test_checkpoint_teacher_at_step_s_is_the_peer_from_step_floor_s_over_T(run_job):
    period = 7
    directory, _ = run_job(["method=codistill", "method.exchange=checkpoints", f"method.period={period}",
                            "trace=true", *SHORT])
    traces = [[json.loads(line) for line in open(directory / f"trace-model{m}.jsonl")] for m in range(2)]
    own = [{entry["step"]: entry["own"] for entry in trace} for trace in traces]
    assert len(own[0]) == 111  # 3 epochs x 37 updates (1200 // 32)
    for model, trace in enumerate(traces):
        peer = 1 - model
        for entry in trace:
            source = entry["step"] // period * period
            assert entry["teachers_from_step"] == source
            assert entry["teachers"] == [own[peer][source]]
    assert own[0][period] != own[0][0]  # the peer really moved between exchanges


def bits_per_update(directory):
    record, _ = last_eval(directory)
    return record["comm_bits_inter_node"] / record["step"]


def n_params(container):
    from omegaconf import OmegaConf

    from codistill_experiments.workloads import build_workload

    workload = build_workload(OmegaConf.create(container["workload"]))
    return sum(p.numel() for p in workload.make_model(0).parameters())


@pytest.mark.slow
def test_measured_bits_equal_the_papers_formulas(run_job):
    # Mini scale: one rank per node, so every collective between ranks crosses nodes.
    directory, container = run_job(["method=allreduce", *SHORT])
    b_model = 32 * n_params(container)
    assert bits_per_update(directory) == 2 * b_model

    # 111 updates (3 epochs x 37): periods that divide it make the average exact.
    n, period, batch, classes = 3, 3, 32, 10
    directory, _ = run_job(["method=codistill", f"method.n={n}", f"method.period={period}", *SHORT])
    assert bits_per_update(directory) == (n - 1) * 32 * classes * batch / period

    n, period = 2, 37
    directory, _ = run_job(["method=codistill", "method.exchange=checkpoints", f"method.period={period}",
                            *SHORT])
    assert bits_per_update(directory) == (n - 1) * b_model / period


@pytest.mark.slow
def test_model_groups_inside_one_node_send_nothing_between_nodes(run_job):
    # 2 models x 2 ranks on nodes of 2 ranks: DDP stays inside a node, logits cross.
    directory, container = run_job(["method=codistill", "scale.ranks_per_model=2", "scale.ranks_per_node=2",
                                    *SHORT])
    record, _ = last_eval(directory)
    assert record["comm_bits_intra_node"] == record["step"] * 2 * 32 * n_params(container)
    assert record["comm_bits_inter_node"] == record["step"] * 32 * 10 * 32


def test_no_exchange_during_burn_in(run_job):
    burn_in = 37
    directory, _ = run_job(["method=codistill", f"method.burn_in_steps={burn_in}", *SHORT])
    record, records = last_eval(directory)
    first_epoch = [r for r in records if r.get("step") == 37]
    assert all(r["alpha"] == 0.0 and r["comm_bits_inter_node"] == 0 for r in first_epoch)
    assert record["comm_bits_inter_node"] == (111 - burn_in) * 32 * 10 * 32


def test_agreement_metrics_against_hand_computed_values():
    from codistill_experiments.training.evaluation import agreement

    probabilities = torch.tensor([[[0.9, 0.1], [0.4, 0.6]],
                                  [[0.5, 0.5], [0.2, 0.8]],
                                  [[0.3, 0.7], [0.3, 0.7]]])
    targets = torch.tensor([0, 1])
    correct, churn, _ = agreement(probabilities, targets)
    # ensemble: sample 0 -> [0.567, 0.433] right; sample 1 -> [0.3, 0.7] right
    assert correct == 2
    # pairwise total variation, sample 0: .4, .6, .2; sample 1: .2, .1, .1; mean over pairs, summed
    assert churn == pytest.approx((0.4 + 0.6 + 0.2) / 3 + (0.2 + 0.1 + 0.1) / 3)


@pytest.mark.slow
def test_logged_ensemble_top1_and_churn_match_the_final_models(run_job):
    from omegaconf import OmegaConf

    from codistill_experiments.workloads import build_workload

    directory, container = run_job(["method=codistill", "method.n=3", *SHORT])
    record, _ = last_eval(directory)
    workload = build_workload(OmegaConf.create(container["workload"]))
    val = workload.val_set
    probabilities = []
    for model_index in range(3):
        model = workload.make_model(0)
        model.load_state_dict(torch.load(directory / f"model{model_index}.pt", weights_only=True))
        probabilities.append(model(val.inputs).softmax(-1).detach())
    stacked = torch.stack(probabilities)
    ensemble_top1 = 100.0 * (stacked.mean(0).argmax(-1) == val.targets).float().mean().item()
    tv = [0.5 * (stacked[i] - stacked[j]).abs().sum(-1) for i, j in ((0, 1), (0, 2), (1, 2))]
    assert record["ensemble_top1"] == pytest.approx(ensemble_top1)
    per_model = [100.0 * (p.argmax(-1) == val.targets).float().mean().item() for p in probabilities]
    assert record["val_top1_mean_over_models"] == pytest.approx(sum(per_model) / 3)
    assert record["churn"] == pytest.approx(torch.stack(tv).mean().item(), rel=1e-5)


@pytest.mark.slow
def test_checkpoint_exchange_between_different_architectures(run_job):
    period = 37
    directory, container = run_job(["method=codistill", "method.exchange=checkpoints", f"method.period={period}",
                                    "workload.models=[{hidden:[64]},{hidden:[256,256]}]", "trace=true", *SHORT])
    traces = [[json.loads(line) for line in open(directory / f"trace-model{m}.jsonl")] for m in range(2)]
    own = [{entry["step"]: entry["own"] for entry in trace} for trace in traces]
    for model, trace in enumerate(traces):
        for entry in trace:
            assert entry["teachers"] == [own[1 - model][entry["step"] // period * period]]
    small, large = (final_params(directory, m).numel() for m in range(2))
    assert small == 64 * 64 + 64 + 64 * 10 + 10 and large == n_params(container)
    # Each exchange sends this rank's parameters zero-padded to the larger model's length.
    assert bits_per_update(directory) == 32 * large / period


@pytest.mark.slow
def test_logged_distance_from_initialisation_is_the_l2_norm_of_the_change(run_job):
    from omegaconf import OmegaConf

    from codistill_experiments.workloads import build_workload

    directory, container = run_job(["method=codistill", "seed=4", *SHORT])
    record, records = last_eval(directory)
    workload = build_workload(OmegaConf.create(container["workload"]))
    for model in range(2):
        initial = reference_params(workload.make_model(model_seed(4, model)))
        expected = torch.linalg.vector_norm(final_params(directory, model) - initial).item()
        logged = [r for r in records if r.get("model") == model and r["step"] == record["step"]][0]
        assert logged["param_distance_from_init"] == pytest.approx(expected, rel=1e-6)
