"""The sandbox manifest: what roles/sandbox_cluster built, as cesres-ctl needs to know it.

The role writes ``<root>/sandbox.json``; reading it here keeps one source of truth for
paths, ports and daemon command lines instead of repeating the role's defaults in Python.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cesres_ctl.errors import CesresError


@dataclass(frozen=True)
class Daemon:
    name: str
    argv: list[str]
    pidfile: Path
    exe: str
    log: Path
    detach: bool  # the program stays in the foreground: cesres-ctl detaches it
    netns: bool  # runs inside the compute node's network namespace
    ready: dict[str, Any]
    exclusive: bool = True  # answering before ours started means another instance owns the service


@dataclass(frozen=True)
class Netns:
    name: str
    veth_host: str
    veth_node: str
    host_address: str
    node_address: str
    prefix_length: int


@dataclass(frozen=True)
class Manifest:
    root: Path
    marker: str
    user: str
    cluster_name: str
    node_name: str
    ssh_config: Path
    login_alias: str
    gateway_alias: str
    account: str
    netns: Netns
    daemons: list[Daemon]
    # Where the role's handlers mark, one file per daemon name, the daemons to restart (sandbox up).
    restart_dir: Path


def manifest_path(root: Path) -> Path:
    return root / "sandbox.json"


def load(root: Path) -> Manifest:
    path = manifest_path(root)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise CesresError(f"no sandbox at {root} (missing {path}): run 'cesres-ctl sandbox up'") from None
    except (OSError, ValueError) as exc:
        raise CesresError(f"cannot read the sandbox manifest {path}: {exc}") from None
    try:
        return Manifest(
            root=Path(data["root"]),
            marker=data["marker"],
            user=data["user"],
            cluster_name=data["cluster_name"],
            node_name=data["node_name"],
            ssh_config=Path(data["ssh_config"]),
            login_alias=data["login_alias"],
            gateway_alias=data["gateway_alias"],
            account=data["accounting"]["account"],
            netns=Netns(**data["netns"]),
            daemons=[
                Daemon(
                    name=d["name"],
                    argv=list(d["argv"]),
                    pidfile=Path(d["pidfile"]),
                    exe=d["exe"],
                    log=Path(d["log"]),
                    detach=bool(d["detach"]),
                    netns=bool(d["netns"]),
                    ready=dict(d["ready"]),
                    exclusive=bool(d.get("exclusive", True)),
                )
                for d in data["daemons"]
            ],
            # A manifest written before restart markers existed: the role's layout.
            restart_dir=Path(data.get("restart_dir") or Path(data["root"]) / "run" / "restart"),
        )
    except (KeyError, TypeError) as exc:
        raise CesresError(f"the sandbox manifest {path} is incomplete ({exc}): run 'cesres-ctl sandbox up'") from None
