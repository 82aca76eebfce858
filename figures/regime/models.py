"""The model invariant of the regime check: the workload's stand-ins for the paper's three
architectures have batch norm and residual connections (identity shortcuts found in the graph
torch.fx traces) and grow in that order."""
import operator

import torch

from .runs import Check

PAPER_ARCHS = ("resnet18", "resnet50", "resnext101_32x8d")   # the three sizes, by the paper's names

ADDS = {operator.add, operator.iadd, torch.add}


def _ancestors(node, seen):
    if node not in seen:
        seen[node] = set(node.all_input_nodes).union(*(_ancestors(n, seen) for n in node.all_input_nodes))
    return seen[node]


def residual_adds(model):
    """Additions a + b in the model's traced graph (torch.fx) where one operand is computed from
    the other (x + f(x)): its identity shortcuts (a projection shortcut, f(x) + g(x), is not
    counted: torchvision's ResNet-18 has 5 of 8). None when the model cannot be traced."""
    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception:   # noqa: BLE001  (fx raises many kinds on data-dependent control flow)
        return None
    seen, count = {}, 0
    for node in graph.nodes:
        is_add = (node.op == "call_function" and node.target in ADDS) or (
            node.op == "call_method" and node.target in ("add", "add_"))
        operands = [a for a in node.args[:2] if isinstance(a, torch.fx.Node)] if is_add else []
        if len(operands) == 2 and (operands[0] in _ancestors(operands[1], seen)
                                   or operands[1] in _ancestors(operands[0], seen)):
            count += 1
    return count


def model_structure(model):
    """(parameters, batch-norm modules, residual connections) of one model."""
    norms = sum(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    return sum(p.numel() for p in model.parameters()), norms, residual_adds(model)


def check_models(make_model, archs=PAPER_ARCHS):
    """The workload's stand-ins for the three paper architectures: each has batch norm and residual
    connections, and they grow in that order. Value: how many of the three qualify."""
    structures = [model_structure(make_model(0, {"arch": arch})) for arch in archs]
    growing = all(a[0] < b[0] for a, b in zip(structures, structures[1:]))
    good = sum(norms > 0 and bool(adds) for _, norms, adds in structures)
    detail = "; ".join(f"{p / 1e3:.0f}k params, {n} BN, {'untraceable' if a is None else a} residual"
                       for p, n, a in structures)
    return Check("residual_bn", f"{len(archs)} of {len(archs)}, growing", good,
                 f"{good} ({detail}{'' if growing else '; sizes do not grow'})", good == len(archs) and growing)

