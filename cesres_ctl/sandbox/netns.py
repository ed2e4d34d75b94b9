"""The compute node's network namespace: jobs reach the controller, not the internet.

CÉCI compute nodes have no internet access. slurmd (and so every job) runs in a
namespace whose only link is a veth pair to the host, with no default route.
"""

import subprocess

from cesres_ctl.errors import CesresError
from cesres_ctl.sandbox.manifest import Netns


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        reason = done.stderr.strip() or f"exit code {done.returncode}"
        raise CesresError(f"ip {' '.join(args)} failed: {reason}")
    return done


def exists(netns: Netns) -> bool:
    listing = _ip("netns", "list").stdout.split("\n")
    return any(line.split(" ")[0] == netns.name for line in listing)


def ensure(netns: Netns) -> bool:
    """Create the namespace and its link if missing. True if anything was created."""
    created = False
    if not exists(netns):
        _ip("netns", "add", netns.name)
        created = True
    if _ip("link", "show", netns.veth_host, check=False).returncode != 0:
        _ip("link", "add", netns.veth_host, "type", "veth", "peer", "name", netns.veth_node)
        _ip("link", "set", netns.veth_node, "netns", netns.name)
        _ip("addr", "add", f"{netns.host_address}/{netns.prefix_length}", "dev", netns.veth_host)
        _ip("link", "set", netns.veth_host, "up")
        inside = ("netns", "exec", netns.name, "ip")
        _ip(*inside, "addr", "add", f"{netns.node_address}/{netns.prefix_length}", "dev", netns.veth_node)
        _ip(*inside, "link", "set", netns.veth_node, "up")
        _ip(*inside, "link", "set", "lo", "up")
        created = True
    return created


def remove(netns: Netns) -> bool:
    """Delete the namespace (its veth end goes with it). True if anything was removed."""
    removed = False
    if exists(netns):
        _ip("netns", "delete", netns.name)
        removed = True
    if _ip("link", "show", netns.veth_host, check=False).returncode == 0:
        _ip("link", "delete", netns.veth_host)
        removed = True
    return removed
