"""Two simulated nodes on this machine for parts 3 and 3b of `make bench`: two network namespaces
joined by a veth pair (eth0 in each, 10.77.0.1 and 10.77.0.2), the ranks of a benchmark run inside
them (run_pair), each limiting its own side's egress with `tc ... tbf` (shape: netem is not
available in this kernel, so only bandwidth is shaped, no latency) and reading what its eth0 sent
(tx_counters). Needs root (skip_reason says why not). Every namespace made is deleted on the way
out, on failure too, and checked gone."""
import faulthandler
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMITS = {"none": None, "1gbit": 1e9, "100mbit": 1e8}  # tc rate -> bits per second
ADDRESSES = ("10.77.0.1", "10.77.0.2")
PORT = 29533


def skip_reason():
    if os.geteuid() != 0:
        return "not root: network namespaces and tc need root; skipped"
    missing = [tool for tool in ("ip", "tc") if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not found (iproute2); skipped"
    return None


def _ip(*args, check=True):
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


class TwoNodes:
    """Two namespaces joined by a veth pair; deletes them on exit, whatever happened."""

    def __init__(self):
        self.names = (f"cdbench{os.getpid()}a", f"cdbench{os.getpid()}b")
        self.made = []

    def __enter__(self):
        try:
            for name in self.names:
                _ip("netns", "add", name)
                self.made.append(name)
            _ip("link", "add", "eth0", "netns", self.names[0], "type", "veth", "peer", "name", "eth0",
                "netns", self.names[1])
            for name, address in zip(self.names, ADDRESSES):
                _ip("-n", name, "addr", "add", f"{address}/24", "dev", "eth0")
                _ip("-n", name, "link", "set", "eth0", "up")
                _ip("-n", name, "link", "set", "lo", "up")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        for name in self.made:
            _ip("netns", "del", name, check=False)  # takes the veth pair and its qdiscs with it
        left = set(self.left())
        self.made = []
        if left:
            raise RuntimeError(f"network namespaces left behind: {sorted(left)}; remove with `ip netns del <name>`")

    def left(self):
        listed = _ip("netns", "list", check=False).stdout.split()
        return [name for name in self.names if name in listed]


# ---------------------------------------------------------------- inside a namespace: one rank
def shape(rate):
    """Limits this namespace's eth0 egress to `rate` bits/s (None: no limit)."""
    subprocess.run(["tc", "qdisc", "del", "dev", "eth0", "root"], capture_output=True)  # none yet is fine
    if rate is not None:
        burst = max(int(rate * 0.002 / 8), 16_000)  # ~2 ms of bytes (infra notes)
        subprocess.run(["tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", str(int(rate)), "burst",
                        str(burst), "latency", "50ms"], check=True, capture_output=True)


def tx_counters():
    """(bytes, packets) this namespace's eth0 has sent."""
    folder = Path("/sys/class/net/eth0/statistics")
    return int((folder / "tx_bytes").read_text()), int((folder / "tx_packets").read_text())


def worker_main(worker, spec_path):
    """One rank inside a namespace: `worker` ("module:function") on the spec, its result written
    beside the spec for run_pair."""
    from .benchlib import run_as_rank  # torch and the engine: in the ranks only

    faulthandler.register(signal.SIGUSR1)  # the driver asks for the stacks of a rank that hangs
    module, name = worker.split(":")
    function = getattr(importlib.import_module(module), name)
    spec = json.loads(Path(spec_path).read_text())
    run_as_rank(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), Path(spec_path).parent, function, (spec,))


# ---------------------------------------------------------------- outside: the driver
def run_pair(nodes, worker, spec, timeout, ranks_per_node=1):
    """Runs worker(rank, world size, spec) on 2 x `ranks_per_node` ranks, `ranks_per_node` in each
    namespace (consecutive ranks share one), each a process of its own that joins the others' gloo
    group over the veth; returns every rank's result. `worker`: a module-level function (the ranks
    import it by name)."""
    world = 2 * ranks_per_node
    module = worker.__module__
    if module == "__main__":   # a benchmark run as `python -m benchmarks.<name>`
        module = sys.modules["__main__"].__spec__.name
    entry = f"{module}:{worker.__qualname__}"
    with tempfile.TemporaryDirectory() as folder:
        spec_path = Path(folder) / "spec.json"
        spec_path.write_text(json.dumps(spec))
        processes = []
        try:
            for rank in range(world):
                name = nodes.names[rank // ranks_per_node]
                env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": str(world), "MASTER_ADDR": ADDRESSES[0],
                       "MASTER_PORT": str(PORT), "GLOO_SOCKET_IFNAME": "eth0", "OMP_NUM_THREADS": "1",
                       "TORCH_CPP_LOG_LEVEL": "ERROR"}  # not c10d's warning that veth peers have no hostname
                processes.append(subprocess.Popen(
                    ["ip", "netns", "exec", name, sys.executable, "-m", __spec__.name, entry, str(spec_path)],
                    env=env, cwd=ROOT, start_new_session=True))   # cwd: the package's root for -m
            deadline = time.time() + timeout
            while any(p.poll() is None for p in processes):
                failed = [p for p in processes if p.poll() not in (None, 0)]
                if failed or time.time() > deadline:
                    raise RuntimeError(f"network benchmark {spec['label']}: "
                                       + ("a rank failed" if failed else f"no result within {timeout} s"))
                time.sleep(0.2)
            return [json.loads((Path(folder) / f"rank{r}.json").read_text()) for r in range(world)]
        finally:
            running = [process for process in processes if process.poll() is None]
            for process in running:
                process.send_signal(signal.SIGUSR1)  # print where it is stuck
            time.sleep(1 if running else 0)
            for process in running:
                os.killpg(process.pid, signal.SIGKILL)  # its own session: the rank and nothing else
                process.wait()


if __name__ == "__main__":
    worker_main(*sys.argv[1:3])
