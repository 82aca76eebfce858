"""What a paper-scale job will cost before it is queued (job_cost.py, printed by a dry run): worked
by hand for Figure 2's jobs, and the model shapes it reads counted again by torch."""
import math
import re

import pytest
import torch
from conftest import compose_job
from test_config import run_cli

from codistill_experiments.job_cost import VISION_SHAPES, NotCosted, job_cost

RESNET50_PARAMS, IMAGENET = 25_557_032, 1_281_167
MIB = 2**20


def ring(bits, ranks, rate, latency):
    return 2 * (ranks - 1) / ranks * bits / rate + 2 * (ranks - 1) * latency


def test_figure_2s_all_reduce_job_costs_its_updates_times_compute_and_a_hierarchical_all_reduce(tmp_path):
    job = compose_job(["method=allreduce", "scale=paper"], tmp_path)
    cost = job_cost(job)
    assert (cost.gpus, cost.servers) == (16, 2)
    assert cost.updates == 90 * (IMAGENET // (16 * 32))          # 90 epochs of batches of 16 GPUs x 32
    compute = 32 / 367                                           # 32 images at ResNet-50's 367 img/s FP32
    bits, buckets = 32 * RESNET50_PARAMS, math.ceil(4 * RESNET50_PARAMS / (25 * MIB))   # DDP's 25 MiB buckets
    inside = buckets * ring(bits / buckets, 8, 1.2e12, 5e-6)     # NVLink ring over a server's 8 GPUs
    # across the 2 servers at 90 % of 100 Gbit/s: a ring or a tree of 2 is the same 2 |x| through the link
    across = buckets * min(ring(bits / buckets, 2, 90e9, 10e-6), 2 * bits / buckets / 90e9 + 2 * 10e-6)
    assert cost.seconds_per_update == pytest.approx(compute + inside + across, rel=1e-9)
    assert cost.gpu_hours == pytest.approx(16 * cost.updates * cost.seconds_per_update / 3600)


def test_codistillation_and_its_control_cost_their_models_own_all_reduce_inside_one_server(tmp_path):
    control = job_cost(compose_job(["method=independent", "scale=paper"], tmp_path))
    codistill = job_cost(compose_job(["method=codistill", "scale=paper"], tmp_path))
    bits, buckets = 32 * RESNET50_PARAMS, math.ceil(4 * RESNET50_PARAMS / (25 * MIB))
    assert control.seconds_per_update == pytest.approx(32 / 367 + buckets * ring(bits / buckets, 8, 1.2e12, 5e-6))
    # and every update 32 rows of 1000 float32 logits all-gathered with the peer across servers
    gather = 32 * 1000 * 32 * 8 / 90e9 + 10e-6                  # 8 GPUs of a server share its NIC
    assert codistill.seconds_per_update == pytest.approx(control.seconds_per_update + gather)
    assert codistill.updates == 90 * (IMAGENET // 256) == control.updates  # goyal_step: 90 epochs of b = 256 per model


def test_a_job_on_no_gpu_or_of_an_unknown_model_is_not_costed(tmp_path):
    with pytest.raises(NotCosted, match="no GPU"):
        job_cost(compose_job(["method=allreduce"], tmp_path))
    with pytest.raises(NotCosted, match="resnet34"):
        job_cost(compose_job(["method=allreduce", "scale=paper", "workload.arch=resnet34"], tmp_path))


@pytest.mark.parametrize("key", sorted(VISION_SHAPES))
def test_the_vision_shapes_are_torchs_flop_count_of_the_models(key):
    import torchvision
    from torch.utils.flop_counter import FlopCounterMode

    from codistill_experiments.vision.wide_resnet import WideResNet

    name, arch = key
    with torch.device("meta"):
        if name == "imagenet":
            model, example = getattr(torchvision.models, arch)(num_classes=1000), torch.empty(1, 3, 224, 224)
        else:
            depth, widen = map(int, arch.split("-")[1:])
            model, example = WideResNet(depth, widen, 10), torch.empty(1, 3, 32, 32)
        with FlopCounterMode(display=False) as counter:
            model(example)
    assert VISION_SHAPES[key] == (counter.get_total_flops(), sum(p.numel() for p in model.parameters()))


@pytest.mark.slow
def test_a_paper_dry_run_prints_each_jobs_gpu_hours_and_the_sweeps_total(tmp_path):
    done = run_cli("-m", "sweep=fig2", "scale=paper", "launcher=slurm_v100", "launcher.partition=p", "dry_run=true",
                   f"results_root={tmp_path}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    hours = [float(h.replace(",", "")) for h in re.findall(r"cost: .* ([\d,.]+) GPU-h", done.stdout)]
    assert len(hours) == 33
    total = re.search(r"total: ([\d,]+) GPU-h over 33 jobs", done.stdout)
    assert total and float(total.group(1).replace(",", "")) == pytest.approx(sum(hours), abs=33)
    assert "assumed: " in done.stdout and "100 Gbit/s" in done.stdout


@pytest.mark.slow
def test_sparseloco_muloco_and_compressed_checkpoints_are_costed_as_their_exchanges_not_as_training_apart(tmp_path):
    base = ["scale=paper", "method.n=2"]
    apart = job_cost(compose_job(["method=independent", *base], tmp_path)).seconds_per_update
    diloco = job_cost(compose_job(["method=diloco", "method.period=30", *base], tmp_path)).seconds_per_update
    sparseloco = job_cost(compose_job(["method=sparseloco", *base], tmp_path)).seconds_per_update
    muloco = job_cost(compose_job(["method=muloco", *base], tmp_path)).seconds_per_update
    assert sparseloco > apart   # its outer step every 15 updates travels between the servers
    # Muon's Newton-Schulz on every flattened weight but the classifier, every update: 5 iterations of
    # 2 rows x cols x (2 rows + cols) ... FLOPs on ResNet-50 take over 10 ms at the update's own FLOP rate
    assert muloco - diloco > 0.010
    whole = job_cost(compose_job(["method=codistill", "method.exchange=checkpoints", "method.period=2500", *base],
                                 tmp_path)).seconds_per_update
    eight = job_cost(compose_job(["method=codistill", "method.exchange=checkpoints", "method.period=2500",
                                  "method.checkpoint_bits=8", *base], tmp_path)).seconds_per_update
    # 8-bit blocks of 64 with a float32 scale: 8 + 32/64 bits a value instead of 32, gathered once per T
    gathered = RESNET50_PARAMS * (32 - 8.5) / 90e9 / 2500   # 8 GPUs' shares of the NIC aside: a lower bound
    assert whole - eight > 0.5 * gathered and eight > apart
