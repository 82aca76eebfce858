"""The README's "Codistillation in your own training loop": its code block, read from README.md,
runs as written with 2 gloo processes, and the two models it saves equal two models trained in
one process by the loss written out here (CE + alpha x MSE to the other model's logits on the
updates that exchange predictions)."""
import os
import re
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT

from benchmarks.benchlib import free_port

SECTION = "## Codistillation in your own training loop"


def readme_example():
    text = (ROOT / "README.md").read_text()
    assert SECTION in text, f"README.md has no section {SECTION!r}"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, "the section has no python code block"
    return blocks[0]


def reference_models(alpha=0.5, period=2, steps=20):
    """The example's two models trained in one process: model i's loss at update s is
    CE(f_i(x), y) + alpha * MSE(f_i(x), f_j(x).detach()) when s % period == 0, else CE alone
    (DDP over a group of one rank leaves the gradient as it is)."""
    models = []
    for rank in range(2):
        torch.manual_seed(rank)
        models.append(torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4)))
    optimizers = [torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9) for m in models]
    data = torch.Generator().manual_seed(0)
    for step in range(steps):
        x, y = torch.randn(16, 8, generator=data), torch.randint(0, 4, (16,), generator=data)
        logits = [model(x) for model in models]
        for i, optimizer in enumerate(optimizers):
            loss = F.cross_entropy(logits[i], y)
            if alpha and step % period == 0:
                loss = loss + alpha * ((logits[i] - logits[1 - i].detach()) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
        for optimizer in optimizers:
            optimizer.step()
    return [torch.cat([p.detach().flatten() for p in model.state_dict().values()]) for model in models]


def test_the_readme_example_is_at_most_40_lines_and_a_ddp_loop_on_two_gloo_processes():
    code = readme_example()
    assert len(code.strip().splitlines()) <= 40
    for part in ("data_parallel()", '"gloo"', "nprocs=2", "Codistiller("):
        assert part in code


@pytest.mark.slow
def test_the_readme_example_trains_the_models_of_the_single_process_reference(tmp_path):
    (tmp_path / "example.py").write_text(readme_example())
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "library" / "src"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    trained = [torch.cat([t.flatten() for t in torch.load(tmp_path / f"model{rank}.pt", weights_only=True).values()])
               for rank in range(2)]
    for got, expected in zip(trained, reference_models(), strict=True):
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    # The distillation term acted (without it the models differ), and only on exchange updates.
    for other in (reference_models(alpha=0.0), reference_models(period=1)):
        assert (trained[0] - other[0]).abs().max() > 1e-3
