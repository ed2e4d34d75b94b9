"""The sandbox reached through bench/delay_proxy.py (0 ms: loopback), for the benchmarks: an ssh config of
the sandbox's without its ControlMaster lines (by hand, a fresh login each time; cesres-ctl and Ansible
bring their own master connections), and the environment that points cesres-ctl and Ansible at it.
network(0, direct=True): the same without the proxy, straight to the sandbox's gateway as its ssh config
goes (the proxy's own relay costs a fresh ssh about half a second, which would flatter every ratio to it).
"""

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from delay_proxy import DelayProxy

PROJECT = Path(__file__).resolve().parent.parent
DEMO = PROJECT / "sandbox" / "cesres-mini"
SANDBOX_ROOT = Path(os.environ.get("CESRES_SANDBOX_ROOT", "/var/lib/cesres-sandbox"))
HOST = "cesres-sandbox"
GATEWAY_PORT = 2221
BIN = Path(sys.executable).parent


@dataclass
class Net:
    """The sandbox reached through the delay proxy: its ssh config, and the environment that points at it."""

    proxy: DelayProxy | None  # None: direct
    root: Path  # a CESRES_SANDBOX_ROOT whose ssh/ssh_config goes through the proxy
    state: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def ssh_config(self) -> Path:
        return self.root / "ssh" / "ssh_config"

    def ssh(self, command: str, *options: str) -> subprocess.CompletedProcess[str]:
        argv = ["ssh", "-F", str(self.ssh_config), *options, HOST, command]
        return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=300)

    def cli(self, *args: str, cwd: Path = DEMO, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """cesres-ctl with the proxied sandbox's environment (or `env`); exits the bench when it fails."""
        done = subprocess.run(
            [sys.executable, "-m", "cesres_ctl", *args],
            capture_output=True,
            text=True,
            cwd=cwd,
            env=env or self.env,
            check=False,
            timeout=600,
        )
        if done.returncode != 0:
            sys.exit(f"cesres-ctl {' '.join(args[:2])} failed: {done.stderr.strip()}")
        return done

    def stop_masters(self) -> None:
        """Stop the master connections of cesres-ctl and Ansible (the next command starts cold)."""
        for directory in (self.state / "cesres-ctl" / "cm", self.state / "ansible-cp"):
            for socket in directory.glob("*") if directory.is_dir() else []:
                subprocess.run(
                    ["ssh", "-F", str(self.ssh_config), "-o", f"ControlPath={socket}", "-O", "exit", HOST],
                    capture_output=True,
                    check=False,
                    timeout=30,
                )


@contextmanager
def network(rtt_ms: float, *, direct: bool = False) -> Iterator[Net]:
    if direct and rtt_ms:
        raise ValueError("a direct network has no delay")
    relay = contextlib.nullcontext() if direct else DelayProxy(("127.0.0.1", GATEWAY_PORT), one_way_ms=rtt_ms / 2)
    with relay as proxy:
        # Short: cesres-ctl keeps its master sockets under the state directory only when the path is short.
        base = Path(tempfile.mkdtemp(prefix="cb-", dir="/tmp"))
        (base / "sandbox" / "ssh").mkdir(parents=True)
        # The rest of the sandbox's root as it is (its git repository, hub, ...): only ssh is rerouted.
        for entry in SANDBOX_ROOT.iterdir():
            if entry.name != "ssh":
                (base / "sandbox" / entry.name).symlink_to(entry)
        text = (SANDBOX_ROOT / "ssh" / "ssh_config").read_text()
        lines = []
        for line in text.splitlines():
            if line.strip().startswith(("ControlMaster", "ControlPath", "ControlPersist")):
                continue  # fresh logins by hand; cesres-ctl and Ansible bring their own masters
            lines.append(line.replace(f"Port {GATEWAY_PORT}", f"Port {proxy.port}") if proxy else line)
        (base / "sandbox" / "ssh" / "ssh_config").write_text("\n".join(lines) + "\n")
        state = base
        env = {
            **os.environ,
            "CESRES_SANDBOX_ROOT": str(base / "sandbox"),
            "XDG_STATE_HOME": str(state),
            "CESRES_CLUSTER": "sandbox",
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(state / "ansible-cp"),
            "PATH": f"{BIN}:{os.environ['PATH']}",
        }
        net = Net(proxy, base / "sandbox", state, env)
        try:
            yield net
        finally:
            net.stop_masters()
            shutil.rmtree(base, ignore_errors=True)
