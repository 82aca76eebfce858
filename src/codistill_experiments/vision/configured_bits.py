"""The bits a paper-scale vision job sends per update and device, from its resolved config alone:
what the engine's counters charge (codistill's counting.py: an all_reduce 2 x the gradients' bits, a
prediction exchange (n - 1) x the rows x prediction_row_bits every T updates), with the model built
on the meta device (its shape: no weights, no data, no GPU). Sec. 3 writes the same counts as
C_AR = 2 b_model and (n - 1) b_predictions B / T; this decides the bits part of a paper-scale claim
before any run."""
import torch
from omegaconf import OmegaConf

from codistill import prediction_row_bits
from codistill.internals import tensor_bits

from .workloads import imagenet_model


def model_bits(job):
    """Bits of the gradients DDP all-reduces: every trainable parameter in its own dtype."""
    with torch.device("meta"):
        model = imagenet_model(OmegaConf.create(job["workload"]))
    return sum(tensor_bits(p) for p in model.parameters() if p.requires_grad)


def bits_per_update(job):
    """Bits one device sends per update (on average over T) for an all_reduce or a prediction-
    exchanging codistillation job of an ImageNet workload."""
    method = job["method"]
    if job["workload"]["name"] != "imagenet":
        raise ValueError(f"workload {job['workload']['name']!r}: bits from the config alone are counted "
                         "for the ImageNet workload only")
    if method["name"] == "allreduce":
        return 2 * model_bits(job)
    if method["name"] == "codistill" and method["exchange"] == "predictions":
        row = prediction_row_bits(job["workload"]["num_classes"], method["prediction_topk"], method["prediction_bits"])
        return (method["n"] - 1) * job["scale"]["batch_per_rank"] * row / method["period"]
    raise ValueError(f"method {method['name']!r} (exchange {method.get('exchange')!r}): bits from the config "
                     "alone are counted for all_reduce and prediction exchange")
