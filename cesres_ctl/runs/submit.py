"""`cesres-ctl train`: validate everything locally, then stage and submit through playbooks/train.yml."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cesres_ctl import rules
from cesres_ctl.errors import CesresError
from cesres_ctl.runner import format_summary, private_data_dir, run_playbook
from cesres_ctl.runs import cluster as clusters
from cesres_ctl.runs import config as configs
from cesres_ctl.runs import jobscript, spec
from cesres_ctl.runs.registry import Registry, Run, run_from_report
from cesres_ctl.runs.resources import RESOURCE_KEYS, defaults_from_vars, resolve

PLAYBOOK = "playbooks/train.yml"


@dataclass(frozen=True)
class Prepared:
    cluster: clusters.Cluster
    spec: spec.RunSpec


@dataclass(frozen=True)
class Outcome:
    run: Run
    submitted: bool
    previous_job_id: str


def prepare(
    config_path: Path,
    *,
    cluster: str,
    name: str | None,
    overrides: dict[str, Any],
    model_args: list[str],
    new: bool,
    settings: list[str] | None = None,
) -> Prepared:
    """Every check that needs no ssh: model options, resources, config, data files, name."""
    options = configs.options_from_args(list(model_args))
    target = clusters.load(cluster)
    defaults = defaults_from_vars(target.job_vars, RESOURCE_KEYS)
    resources = resolve(target.partitions, defaults, overrides, cluster=cluster)
    run_config = configs.load(config_path, options=options, gpus=resources.gpus)
    run_name = rules.check_run_name(name) if name is not None else spec.default_name(run_config)
    run_spec = spec.RunSpec(
        cluster=cluster,
        name=run_name,
        config=run_config,
        resources=resources,
        nonce=spec.new_nonce() if new else "",
        settings=spec.parse_settings(list(settings or [])),
    )
    run_spec.extravars()  # checks every string before anything is sent
    return Prepared(cluster=target, spec=run_spec)


def dry_run_text(prepared: Prepared) -> str:
    """The job script as it would be written (cluster paths unexpanded) and what would be copied."""
    run_spec = prepared.spec
    job_vars = {**prepared.cluster.job_vars, **{f"cesres_job_{k}": v for k, v in run_spec.settings}}
    variables = jobscript.preview_variables(
        run_spec.extravars(),
        job_vars,
        run_spec.resources.partition,
        run_spec.resources.signal_grace,
    )
    script = jobscript.render(variables)
    run_env = jobscript.run_env_preview(job_vars)
    root = run_env["code_dir"]
    lines = [
        f"# dry run: nothing is sent to {prepared.cluster.name}",
        f"# run directory: {rules.run_dir(root, run_spec.name)}-<10 hex digits from the inputs and the code version>/",
        "# would copy:",
        f"#   {run_spec.config.path} -> config.submitted.yaml (and rewritten -> config.yaml)",
    ]
    for item in run_spec.config.inputs:
        source = str(item.local_path) if item.local_path else f"{item.cluster_path} (on the cluster)"
        lines.append(f"#   {source} -> inputs/{item.staged_name}")
    lines += ["# config.yaml:", *("#   " + line for line in run_spec.config.rewritten_text.splitlines())]
    lines += ["# run.env (written on the cluster, paths expanded there):"]
    lines += [f"#   {key}={value}" for key, value in run_env.items()]
    lines += ["# job.sbatch:", script.rstrip("\n")]
    return "\n".join(lines) + "\n"


def submit(
    prepared: Prepared,
    *,
    verbose: bool = False,
    quiet: bool = False,
    registry: Registry | None = None,
    command: str = "train",
) -> Outcome:
    """Run playbooks/train.yml for the prepared run and record the outcome in the registry (command:
    the cesres-ctl command, train or predict, for the messages)."""
    run_spec = prepared.spec
    registry = registry or Registry()
    # A job must never run unrecorded: a registry that cannot take it stops us before sbatch.
    registry.check_writable()
    # With the run's other private data (owner-only, removed by the next run if this one is killed).
    with private_data_dir("train-inputs") as tmp:
        result = run_playbook(
            PLAYBOOK,
            limit=prepared.cluster.name,
            extravars=run_spec.extravars(staged=spec.link_local_inputs(run_spec.config, tmp / "inputs")),
            verbose=verbose,
            title=f"{command} {run_spec.name} on {prepared.cluster.name}",
            quiet=quiet,
            inventory=list(prepared.cluster.inventory_sources) or None,
        )
    if not result.ok:
        raise CesresError(f"{command} failed: {result.failure}", log_path=str(result.log_path))
    if not result.hosts:
        raise CesresError(f"{command} matched no host {prepared.cluster.name}", log_path=str(result.log_path))
    # The role's outcome, from the event of the task that set it (roles/cesres_job: cesres_job_outcome).
    report = result.facts.get(prepared.cluster.name, {}).get("cesres_job_outcome")
    if not isinstance(report, dict) or not report.get("job_id"):
        summary = format_summary(result)
        raise CesresError(f"{command} ran but reported no job ({summary})", log_path=str(result.log_path))
    run = run_from_report(
        prepared.cluster.name,
        run_spec.name,
        report,
        config=str(run_spec.config.path),
        resources=run_spec.resources.to_dict(),
    )
    run = keep_or_fail(registry, run, command)
    return Outcome(
        run=run, submitted=bool(report.get("submitted")), previous_job_id=str(report.get("previous_job_id") or "")
    )


def keep_or_fail(registry: Registry, run: Run, command: str = "train") -> Run:
    """Record a submitted run; if the registry will not take it, keep it for the next command (unrecorded/)
    and fail naming its job, which must never be lost."""
    try:
        return registry.record_submission(run)
    except CesresError as exc:
        lost = f"job {run.job_id} of run {run.run_id} was submitted on {run.cluster} but not recorded ({exc})"
        try:
            kept = registry.keep_unrecorded(run)
        except OSError:
            raise CesresError(f"{lost}; {command} with the same inputs records it again") from None
        raise CesresError(f"{lost}; kept in {kept}, the next cesres-ctl command records it") from None
