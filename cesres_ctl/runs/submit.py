"""Submitting runs: validate everything locally, then stage and submit through playbooks/train.yml, and record
what the cluster reports. One flow (submit_runs) for a run (train, predict) and a sweep's points (runs/sweep.py)."""

import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cesres_ctl import paths, rules
from cesres_ctl.console import note
from cesres_ctl.errors import CesresError, ExitCode
from cesres_ctl.interrupts import Interrupts, held
from cesres_ctl.runner import PlaybookResult, format_summary, private_data_dir, run_playbook
from cesres_ctl.runs import cluster as clusters
from cesres_ctl.runs import config as configs
from cesres_ctl.runs import jobscript, spec
from cesres_ctl.runs.registry import Registry, Run, run_from_report
from cesres_ctl.runs.resources import RESOURCE_KEYS, Resources, defaults_from_vars, resolve

PLAYBOOK = "playbooks/train.yml"
# The modules whose task a stop signal never cuts short: cesres_run stages and submits (roles/cesres_job).
SUBMIT_ACTIONS = frozenset({"cesres_run"})


@dataclass(frozen=True)
class Prepared:
    cluster: clusters.Cluster
    spec: spec.RunSpec


@dataclass(frozen=True)
class Outcome:
    """What a submission recorded: its run (train, predict), or every point of a sweep in order."""

    runs: tuple[Run, ...]
    submitted: bool  # sbatch ran; else every run existed already
    job_id: str  # the job the cluster reported (a sweep's job array)
    previous_job_id: str = ""  # the run's earlier job, which did not complete (it was submitted again)
    sweep_id: str = ""
    new_runs: tuple[str, ...] = ()  # the ids of the runs this submission sent to sbatch

    @property
    def run(self) -> Run:
        return self.runs[0]


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
    resources = resolve_resources(target, overrides)
    run_config = configs.load(config_path, options=options, gpus=resources.gpus)
    nonce = spec.new_nonce() if new else ""
    run_spec = new_spec(run_config, cluster=cluster, name=name, resources=resources, nonce=nonce, settings=settings)
    return Prepared(cluster=target, spec=run_spec)


def resolve_resources(target: clusters.Cluster, overrides: Mapping[str, Any]) -> Resources:
    """A run's resources: the command line's overrides over the cluster's defaults, checked against its partitions."""
    defaults = defaults_from_vars(target.job_vars, RESOURCE_KEYS)
    return resolve(target.partitions, defaults, overrides, cluster=target.name)


def new_spec(
    run_config: configs.RunConfig,
    *,
    cluster: str,
    name: str | None,
    resources: Resources,
    nonce: str,
    settings: Sequence[str] | None,
) -> spec.RunSpec:
    """The run of `run_config` (named after it unless `name`), every string checked before anything is sent."""
    run_name = rules.check_run_name(name) if name is not None else spec.default_name(run_config)
    run_spec = spec.RunSpec(
        cluster=cluster,
        name=run_name,
        config=run_config,
        resources=resources,
        nonce=nonce,
        settings=spec.parse_settings(list(settings or [])),
    )
    run_spec.extravars()
    return run_spec


def dry_run_text(
    prepared: Prepared,
    *,
    extravars: Mapping[str, Any] | None = None,
    points: Sequence[tuple[str, configs.RunConfig]] = (),
    summary: str = "",
) -> str:
    """The job script as it would be written (cluster paths unexpanded) and what would be copied.

    A sweep's: `extravars` the job array's, `points` each point's label and config (all share the first's data),
    `summary` a line about the sweep.
    """
    run_spec = prepared.spec
    job_vars = {**prepared.cluster.job_vars, **{f"cesres_job_{k}": v for k, v in run_spec.settings}}
    variables = jobscript.preview_variables(
        extravars if extravars is not None else run_spec.extravars(),
        job_vars,
        run_spec.resources.partition,
        run_spec.resources.signal_grace,
    )
    script = jobscript.render(variables)
    run_env = jobscript.run_env_preview(job_vars)
    root = run_env["code_dir"]
    each = "each point's " if points else ""
    lines = [
        f"# dry run: nothing is sent to {prepared.cluster.name}",
        *([f"# {summary}"] if summary else []),
        f"# {each}run directory: {rules.run_dir(root, run_spec.name)}-<10 hex digits from the inputs and the code "
        "version>/",
        "# would copy:",
        f"#   {run_spec.config.path} -> config.submitted.yaml (and rewritten -> config.yaml)",
    ]
    for item in run_spec.config.inputs:
        source = str(item.local_path) if item.local_path else f"{item.cluster_path} (on the cluster)"
        lines.append(f"#   {source} -> inputs/{item.staged_name}")
    for label, config in points or [("", run_spec.config)]:
        lines += [
            f"# {label}{': ' if label else ''}config.yaml:",
            *("#   " + line for line in config.rewritten_text.splitlines()),
        ]
    lines += ["# run.env (written on the cluster, paths expanded there):"]
    lines += [f"#   {key}={value}" for key, value in run_env.items()]
    lines += [f"# job.sbatch{' (the job array, one task per point)' if points else ''}:", script.rstrip("\n")]
    return "\n".join(lines) + "\n"


def submit(
    prepared: Prepared,
    *,
    verbose: bool = False,
    quiet: bool = False,
    registry: Registry | None = None,
    command: str = "train",
) -> Outcome:
    """Submit the prepared run (command: the cesres-ctl command, train or predict, for the messages)."""
    run_spec = prepared.spec
    return submit_runs(
        prepared.cluster,
        [run_spec],
        lambda staged: run_spec.extravars(staged=staged),
        title=f"{command} {run_spec.name} on {prepared.cluster.name}",
        command=command,
        verbose=verbose,
        quiet=quiet,
        registry=registry,
    )


def submit_runs(
    cluster: clusters.Cluster,
    specs: Sequence[spec.RunSpec],
    extravars: Callable[[Path], dict[str, Any]],
    *,
    title: str,
    command: str,
    point_values: Sequence[dict[str, Any]] = (),
    verbose: bool = False,
    quiet: bool = False,
    registry: Registry | None = None,
) -> Outcome:
    """Run playbooks/train.yml once (one sbatch) for `specs` and record every run it reports, all or none
    (submission_window: held signals, records kept first).

    extravars: the role's inputs, given the directory of the staged local inputs (the first spec's data, which
    a sweep's points share). point_values: a sweep's, each point's values (the role reports one run per point).
    """
    registry = registry or Registry()
    with submission_window(registry, command, points=len(specs)) as window:
        # With the run's other private data (owner-only, removed by the next run if this one is killed).
        with private_data_dir(f"{command}-inputs") as tmp:
            result = run_playbook(
                PLAYBOOK,
                limit=cluster.name,
                extravars=extravars(spec.link_local_inputs(specs[0].config, tmp / "inputs")),
                verbose=verbose,
                title=title,
                quiet=quiet,
                inventory=list(cluster.inventory_sources) or None,
                held=window.interrupts,
                hold_actions=SUBMIT_ACTIONS,
            )
        report = outcome_of(result, cluster.name, command)
        reports = [report]
        if point_values:
            points = report.get("points")
            if not isinstance(points, list) or len(points) != len(specs):
                raise CesresError(
                    f"{command} ran but reported no jobs ({format_summary(result)})", log_path=str(result.log_path)
                )
            reports = [{**report, **point} for point in points]
        runs = []
        for index, (run_spec, run_report) in enumerate(zip(specs, reports, strict=True)):
            run = run_from_report(
                cluster.name,
                run_spec.name,
                run_report,
                config=str(run_spec.config.path),
                resources=run_spec.resources.to_dict(),
            )
            if point_values:
                run.sweep_id, run.point, run.point_index = str(report["sweep_id"]), point_values[index], index
            runs.append(run)
        recorded = window.record(runs, submitted=bool(report.get("submitted")))
    return Outcome(
        runs=tuple(recorded),
        submitted=bool(report.get("submitted")),
        job_id=str(report.get("job_id") or ""),
        previous_job_id=str(report.get("previous_job_id") or ""),
        sweep_id=str(report.get("sweep_id") or ""),
        new_runs=tuple(
            run.run_id for run, reported in zip(recorded, reports, strict=True) if reported.get("submitted")
        ),
    )


def outcome_of(result: PlaybookResult, cluster: str, command: str) -> dict[str, Any]:
    """The role's outcome, from the event of the task that set it (roles/cesres_job: cesres_job_outcome);
    CesresError when the play failed, was cancelled before anything was submitted, or reported nothing."""
    if result.log_error:
        note(f"note: the log {result.log_path} stops early ({result.log_error})")
    if not result.ok:
        if result.status == "canceled":
            # The runner never cancels while cesres_run runs, nor after it submitted: nothing was.
            raise CesresError(
                f"interrupted ({result.interrupted}) before anything was submitted", exit_code=ExitCode.INTERRUPTED
            )
        if result.lost_track and result.held_task_started:
            raise CesresError(_unknown_outcome(command, cluster, str(result.failure)), log_path=str(result.log_path))
        raise CesresError(
            f"{command} failed: {result.failure}", log_path=str(result.log_path), exit_code=result.exit_code
        )
    if not result.hosts:
        raise CesresError(f"{command} matched no host {cluster}", log_path=str(result.log_path))
    report = result.facts.get(cluster, {}).get("cesres_job_outcome")
    if not isinstance(report, dict) or not (report.get("job_id") or isinstance(report.get("points"), list)):
        summary = format_summary(result)
        if result.held_task_started:
            raise CesresError(_unknown_outcome(command, cluster, summary), log_path=str(result.log_path))
        raise CesresError(f"{command} ran but reported no job ({summary})", log_path=str(result.log_path))
    for warning in report.get("warnings") or []:
        note(f"warning: {warning}")
    return report


def _unknown_outcome(command: str, cluster: str, why: str) -> str:
    return (
        f"{command} may have submitted a job on {cluster}, but its outcome did not reach cesres-ctl ({why}): "
        f"`cesres-ctl {command}` with the same inputs (without --new) finds it and records it"
    )


class Window:
    """The submission under way: its held stop signals and its records (submission_window)."""

    def __init__(self, registry: Registry, command: str, interrupts: Interrupts, reserved: list[Path]) -> None:
        self.registry = registry
        self.command = command
        self.interrupts = interrupts
        self.reserved = reserved
        self.recorded: list[Run] = []
        self.submitted = False

    def record(self, runs: list[Run], *, submitted: bool) -> list[Run]:
        """Record the runs that the cluster reported, all or none. Each is kept in unrecorded/ first (in the
        space reserved before sbatch), so that a kill while recording loses none: the next command records
        what is there. When the registry will not take them, the error names every job and where it is."""
        self.submitted = submitted
        kept: list[Path] = []
        kept_error = ""
        room = iter(self.reserved)
        for run in runs:
            try:
                kept.append(self.registry.keep_unrecorded(run, next(room, None)))
            except OSError as exc:
                kept_error = f"{exc.strerror or exc}: {exc.filename or self.registry.unrecorded_dir}"
        try:
            self.recorded = self.registry.record_submissions(runs)
        except CesresError as exc:
            raise CesresError(self._lost(runs, kept, kept_error, str(exc))) from None
        for path in kept:
            path.unlink(missing_ok=True)
        return self.recorded

    def _lost(self, runs: list[Run], kept: list[Path], kept_error: str, why: str) -> str:
        first = runs[0]
        jobs = f"job {first.job_id} of run {first.run_id}" if len(runs) == 1 else f"jobs {_jobs(runs)}"
        lost = f"{jobs} {'was' if len(runs) == 1 else 'were'} submitted on {first.cluster} but not recorded ({why})"
        if len(kept) == len(runs):
            where = str(kept[0]) if len(kept) == 1 else f"{len(kept)} files in {kept[0].parent}"
            return f"{lost}; kept in {where}, the next cesres-ctl command records {'it' if len(kept) == 1 else 'them'}"
        unkept = [run for run in runs if all(run.run_id not in path.name for path in kept)]
        return (
            f"{lost}; {_jobs(unkept)} could not be kept either ({kept_error}): "
            f"{self.command} with the same inputs records {'it' if len(unkept) == 1 else 'them'} again"
        )


def _jobs(runs: list[Run]) -> str:
    return ", ".join(f"{run.job_id} ({run.run_id})" for run in runs)


@contextmanager
def submission_window(registry: Registry, command: str, points: int = 1) -> Iterator[Window]:
    """From the check that a submission can be recorded to its record: the stop signals wait (the runner
    cancels the playbook only before cesres_run submits), and once out, a signal that came is said and
    ends cesres-ctl (exit status 130), naming the job that was recorded."""
    # A job must never run unrecorded: a registry that cannot take it, or a state directory without room for
    # the run's log and record, stops us before sbatch; the records' room is taken now (reserve_unrecorded).
    registry.check_writable()
    check_free_space(paths.state_dir())
    reserved = registry.reserve_unrecorded(points)
    try:
        with held() as interrupts:
            window = Window(registry, command, interrupts, reserved)
            yield window
    finally:
        for path in reserved:
            path.unlink(missing_ok=True)
    if interrupts.by and window.recorded:
        runs = window.recorded
        one = len(runs) == 1
        what = f"job {runs[0].job_id} of run {runs[0].run_id}" if one else f"the jobs of {len(runs)} runs"
        verb = (
            "submitted and recorded"
            if window.submitted
            else f"recorded ({'it was' if one else 'they were'} submitted before)"
        )
        stop = f"cesres-ctl cancel {runs[0].sweep_id or runs[0].run_id}"
        raise CesresError(
            f"interrupted ({interrupts.by}): {what} {verb}; {'it runs' if one else 'they run'} on (`{stop}` stops it)",
            exit_code=ExitCode.INTERRUPTED,
        )


# Free space the state directory needs for a submission: its log, the runner's private data, the record.
MIN_STATE_FREE = 16 * 1024 * 1024


def check_free_space(directory: Path) -> None:
    """CesresError when `directory` has too little room for what a submission writes there."""
    free = shutil.disk_usage(directory).free
    if free < MIN_STATE_FREE:
        raise CesresError(
            f"the state directory {directory} has {free / 1e6:.1f} MB free, under the {MIN_STATE_FREE // 2**20} MB "
            "that a submission's log and record need: free some space (nothing was submitted)"
        )
