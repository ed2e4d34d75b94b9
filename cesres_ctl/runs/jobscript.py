"""Render the job role's template on this machine, with Ansible's own templating, for --dry-run and
tests. The playbook renders the same file on submission, here too; the run's id and cluster paths are not
in it but in the run directory's run.env, which the cluster writes (see run_env_preview)."""

from collections.abc import Mapping
from typing import Any

from cesres_ctl import paths
from cesres_ctl.errors import CesresError
from cesres_ctl.inventory import init_ansible

TEMPLATE = ("roles", "cesres_job", "templates", "job.sbatch.j2")
RUN_ID_PLACEHOLDER = "<run id: set on submission from the code version>"
# What roles/cesres_job's defaults say when the cluster's inventory does not.
PATH_DEFAULTS = {"root": "~/cesres", "venv": "~/cesres_env", "hf_home": "~/.cache/huggingface"}


def role_constants() -> dict[str, Any]:
    import yaml

    path = paths.collection_dir().joinpath("roles", "cesres_job", "vars", "main.yml")
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def render(variables: Mapping[str, Any]) -> str:
    """Render job.sbatch.j2 with `variables` (cesres_job_* inputs plus the internal __cesres_job_*)."""
    init_ansible()
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar, trust_as_template

    source = paths.collection_dir().joinpath(*TEMPLATE).read_text(encoding="utf-8")
    # A job array only for a sweep's points (the role derives it from cesres_job_points the same way).
    array = {"__cesres_job_array": bool(variables.get("cesres_job_points"))}
    all_vars = {"ansible_managed": "Ansible managed", **role_constants(), **array, **variables}
    templar = Templar(loader=DataLoader(), variables=all_vars)
    try:
        # The same call as the template action (trim_blocks on, no backslash escaping).
        rendered = templar.template(
            trust_as_template(source),
            escape_backslashes=False,
            overrides={"trim_blocks": True, "lstrip_blocks": False},
        )
        return str(rendered)
    except Exception as exc:  # templating errors are shown as one line
        raise CesresError(f"cannot render the job script: {exc}") from None


def preview_variables(
    extravars: Mapping[str, Any], job_vars: Mapping[str, Any], partition: str, signal_grace: int
) -> dict[str, Any]:
    """What the template sees on submission, once the role has chosen the partition and the grace time."""
    return {
        **job_vars,
        **extravars,
        "__cesres_job_partition": partition,
        "__cesres_job_signal_grace": signal_grace,
    }


def run_env_preview(job_vars: Mapping[str, Any]) -> dict[str, str]:
    """run.env's values as configured: the cluster writes them expanded (~ and $VARIABLES of its login shell)."""
    paths_ = {key: str(job_vars.get(f"cesres_job_{key}", default)) for key, default in PATH_DEFAULTS.items()}
    return {
        "run_id": RUN_ID_PLACEHOLDER,
        "code_dir": paths_["root"],
        "venv": paths_["venv"],
        "hf_home": paths_["hf_home"],
    }
