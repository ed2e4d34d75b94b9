"""The inputs of a run: what the run id derives from, and the playbook's extra vars.

The run id is `<name>-<10 hex>`: the playbook hashes this module's `spec_hash` (config text as
written and as rewritten (model options included), local data checksums, cluster data paths, resources, and a
nonce for --new) with the code version read on the cluster and the checksums of cluster-side data.
"""

import base64
import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cesres_ctl.errors import CesresError
from cesres_ctl.runs.config import RunConfig, check_text
from cesres_ctl.runs.resources import Resources


@dataclass(frozen=True)
class RunSpec:
    cluster: str
    name: str
    config: RunConfig
    resources: Resources
    nonce: str = ""  # set by --new: another run id for the same inputs
    settings: tuple[tuple[str, str], ...] = ()  # --set KEY=VALUE: cesres_job_<KEY> for this run

    def spec_hash(self) -> str:
        payload = {
            "config": self.config.original_text,
            "rewritten": self.config.rewritten_text,
            "inputs": [{"key": i.key, "sha256": i.sha256, "cluster_path": i.cluster_path} for i in self.config.inputs],
            "resources": self.resources.to_dict(),
            "name": self.name,
            "nonce": self.nonce,
            "settings": [list(item) for item in self.settings],
        }
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def extravars(self, staged: Path | None = None) -> dict[str, Any]:
        """The role's inputs; every free string was checked (no template delimiters, no newlines).

        `staged`: a directory holding a link to each local data file under its staged name. Ansible
        expands `~` and `$VAR` in a copy's src, so a local path must reach it through such a link to
        stay the literal path whose checksum the run id was made from.
        """
        inputs: list[dict[str, str]] = []
        for item in self.config.inputs:
            if item.local_path is not None and item.sha256 is not None:
                source = staged / item.staged_name if staged is not None else item.local_path
                # With its checksum: the role finds it in the cluster's store without reading it again.
                inputs.append({"name": item.staged_name, "src": str(source), "sha256": item.sha256})
            else:
                inputs.append({"name": item.staged_name, "cluster_path": str(item.cluster_path)})
        variables: dict[str, Any] = {
            "cesres_job_name": self.name,
            "cesres_job_spec_hash": self.spec_hash(),
            "cesres_job_config_b64": b64(self.config.rewritten_text),
            "cesres_job_submitted_config_b64": b64(self.config.original_text),
            "cesres_job_inputs": inputs,
            "cesres_job_models": list(self.config.models),
            **self.resources.extravars(),
            **{f"cesres_job_{key}": value for key, value in self.settings},
        }
        _check_strings(variables)
        return variables


# Role inputs that `train --set KEY=VALUE` may change for one run (paths on the cluster).
SETTABLE = ("root", "venv", "hf_home", "entry_point")


def parse_settings(items: list[str]) -> tuple[tuple[str, str], ...]:
    parsed = []
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().removeprefix("cesres_job_")
        if not sep or key not in SETTABLE or not value.strip():
            raise CesresError(f"--set {item!r}: use KEY=VALUE with KEY one of {', '.join(SETTABLE)}")
        parsed.append((key, check_text(value.strip(), f"--set {key}")))
    return tuple(parsed)


def default_name(config: RunConfig) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", config.path.stem).strip("-._") or "run"
    return stem[:40]


def new_nonce() -> str:
    return secrets.token_hex(8)


def b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _check_strings(value: object, where: str = "value") -> None:
    if isinstance(value, str):
        check_text(value, where)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_strings(item, str(key))
    elif isinstance(value, list | tuple):
        for item in value:
            _check_strings(item, where)


def link_local_inputs(config: RunConfig, into: Path) -> Path:
    """Links named by their staged names to the run's local data files (see RunSpec.extravars)."""
    into.mkdir(mode=0o700, exist_ok=True)
    for item in config.inputs:
        if item.local_path is not None:
            (into / item.staged_name).symlink_to(item.local_path.absolute())
    return into
