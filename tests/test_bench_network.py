"""The slow-network benchmark's simulated nodes: made, usable, and removed even when the work
inside fails. Needs root (network namespaces); skipped elsewhere, as the benchmark itself is."""
import subprocess

import pytest

from benchmarks import netns

pytestmark = pytest.mark.skipif(netns.skip_reason() is not None, reason=f"netns: {netns.skip_reason()}")


def namespaces():
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout.split()


def test_two_nodes_are_joined_and_removed_even_when_the_body_fails():
    with pytest.raises(RuntimeError, match="inside"):
        with netns.TwoNodes() as nodes:
            assert set(nodes.names) <= set(namespaces())
            for name, address in zip(nodes.names, netns.ADDRESSES):
                shown = subprocess.run(["ip", "-n", name, "-4", "addr", "show", "dev", "eth0"], capture_output=True,
                                       text=True, check=True).stdout
                assert address in shown and "UP" in shown
            raise RuntimeError("failure inside")
    assert not set(nodes.names) & set(namespaces())
