"""`cesres-ctl sweep`: a grid over the config's own keys, submitted as one Slurm job array.

Each point is a run of its own (its run id, rewritten config, results and registry row, with the sweep id
and the point's values); the data sets are the same for every point, so the cluster's store holds them once.
The sweep id derives from every point's inputs: the same sweep again is the existing one, `--new` makes
another, `--retry-failed` submits again only the points whose job ended without completing.
"""

import hashlib
import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cesres_ctl import inputs
from cesres_ctl.errors import CesresError
from cesres_ctl.runs import cluster as clusters
from cesres_ctl.runs import config as configs
from cesres_ctl.runs import spec
from cesres_ctl.runs.registry import Registry
from cesres_ctl.runs.submit import Outcome, Prepared, dry_run_text, new_spec, resolve_resources, submit_runs

DEFAULT_MAX_POINTS = 64
# What a point may not change: where the data and the results are (the same for every point).
FIXED_KEYS = frozenset({f"CONFIG.{key}" for key in (*configs.DATA_KEYS, "serialization_dir")})


@dataclass(frozen=True)
class Axis:
    key: str  # SECTION.key[.key…] of the config
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Point:
    index: int
    values: dict[str, Any]
    spec: spec.RunSpec


@dataclass(frozen=True)
class PreparedSweep:
    cluster: clusters.Cluster
    name: str
    points: tuple[Point, ...]
    max_parallel: int
    retry_failed: bool

    def sweep_hash(self) -> str:
        return hashlib.sha256(":".join(point.spec.spec_hash() for point in self.points).encode()).hexdigest()


def scalar(text: str) -> Any:
    """A value as written on the command line: an integer, a number (1e-5 too), true/false, or text."""
    text = text.strip()
    for convert in (int, float):
        try:
            value = convert(text)
        except ValueError:
            continue
        if isinstance(value, float) and not math.isfinite(value):
            break
        return value
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def parse_vary(items: list[str]) -> list[Axis]:
    """`--vary SECTION.key=v1,v2,…`, in order."""
    axes = []
    for item in items:
        key, sep, raw = item.partition("=")
        values = tuple(scalar(value) for value in raw.split(",") if value.strip())
        if not sep or not key.strip() or not values:
            raise CesresError(f"--vary {item!r}: use SECTION.key=VALUE,VALUE,… (e.g. TRAINER.learning_rate=1e-5,3e-5)")
        axes.append(Axis(key.strip(), values))
    return axes


def parse_vary_file(path: Path) -> list[Axis]:
    """A YAML mapping {SECTION.key: [values]} (--vary-file)."""
    data = inputs.read_yaml(path, "--vary-file")
    if not isinstance(data, dict) or not data:
        raise CesresError(f"--vary-file {path} must be a mapping of SECTION.key to a list of values")
    axes = []
    for key, values in data.items():
        if not isinstance(values, list) or not values or any(isinstance(v, dict | list) for v in values):
            raise CesresError(f"--vary-file {path}: {key} must be a non-empty list of plain values")
        axes.append(Axis(str(key), tuple(values)))
    return axes


def grid(axes: list[Axis], *, max_points: int) -> list[dict[str, Any]]:
    """Every combination of the axes' values, the first axis slowest; refused when empty or too large. The
    values are ones the registry can keep: numbers, booleans, text (parse_vary's scalars, or what the input
    layer lets through a --vary-file)."""
    if not axes:
        raise CesresError("an empty grid: give --vary SECTION.key=VALUE,VALUE (or --vary-file)")
    keys = [axis.key for axis in axes]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise CesresError(f"{', '.join(repeated)} varied twice: give each key once")
    fixed = sorted(set(keys) & FIXED_KEYS)
    if fixed:
        raise CesresError(
            f"{', '.join(fixed)} cannot vary: every point of a sweep has the same data and results layout"
        )
    size = math.prod(len(axis.values) for axis in axes)
    if size > max_points:
        raise CesresError(f"the grid has {size} points, more than the limit of {max_points} (--max-points)")
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(axis.values for axis in axes))]


def prepare(
    config_path: Path,
    axes: list[Axis],
    *,
    cluster: str,
    name: str | None,
    overrides: dict[str, Any],
    model_args: list[str],
    new: bool,
    settings: list[str],
    max_parallel: int | None,
    max_points: int = DEFAULT_MAX_POINTS,
    retry_failed: bool = False,
) -> PreparedSweep:
    """Every check that needs no ssh, for every point, before anything is sent."""
    if max_points < 1:
        raise CesresError("--max-points must be 1 or more")
    target = clusters.load(cluster)
    resources = resolve_resources(target, overrides)
    options = configs.options_from_args(list(model_args))
    points_values = grid(axes, max_points=max_points)
    parallel = len(points_values) if max_parallel is None else max_parallel
    partition = target.partitions[resources.partition]
    if parallel < 1:
        raise CesresError("--max-parallel must be 1 or more")
    if partition.max_jobs and parallel > partition.max_jobs:
        raise CesresError(
            f"--max-parallel {parallel} is above partition {partition.name}'s limit of {partition.max_jobs} "
            f"running jobs per user on {cluster}"
        )
    nonce = spec.new_nonce() if new else ""
    points = []
    for index, values in enumerate(points_values):
        try:
            config = configs.load(config_path, options=options, gpus=resources.gpus, values=values)
        except CesresError as exc:
            raise CesresError(f"point {index} ({_label(values)}): {exc}") from None
        run_spec = new_spec(config, cluster=cluster, name=name, resources=resources, nonce=nonce, settings=settings)
        points.append(Point(index, values, run_spec))
    _refuse_duplicates(points)
    return PreparedSweep(target, points[0].spec.name, tuple(points), min(parallel, len(points)), retry_failed)


def _label(values: dict[str, Any]) -> str:
    return " ".join(f"{key}={value}" for key, value in values.items())


def _refuse_duplicates(points: list[Point]) -> None:
    """Two points of the same run (equal values once YAML typed them: 1e-3 and 0.001) would be one run
    directory written by two array tasks, and one registry row: refused, naming both."""
    seen: dict[str, Point] = {}
    for point in points:
        first = seen.setdefault(point.spec.spec_hash(), point)
        if first is not point:
            raise CesresError(
                f"points {first.index} ({_label(first.values)}) and {point.index} ({_label(point.values)}) "
                "are the same run: give each value once"
            )


def extravars(prepared: PreparedSweep, staged: Path | None = None) -> dict[str, Any]:
    """The role's inputs: the first point's as a run's, plus every point's spec hash and config (staged: as
    spec.RunSpec.extravars)."""
    first = prepared.points[0].spec
    return {
        **first.extravars(staged=staged),
        "cesres_job_points": [
            {"spec_hash": point.spec.spec_hash(), "config_b64": spec.b64(point.spec.config.rewritten_text)}
            for point in prepared.points
        ],
        "cesres_job_sweep_hash": prepared.sweep_hash(),
        "cesres_job_max_parallel": prepared.max_parallel,
        "cesres_job_retry_failed": prepared.retry_failed,
    }


def preview(prepared: PreparedSweep) -> str:
    """sweep --dry-run: the job array's script and every point's config, as they would be written."""
    summary = (
        f"sweep sweep-{prepared.name}-<10 hex digits from every point's inputs>: {len(prepared.points)} points, "
        f"one job array, at most {prepared.max_parallel} at once"
    )
    points = [(f"point {point.index} ({_label(point.values)})", point.spec.config) for point in prepared.points]
    first = Prepared(prepared.cluster, prepared.points[0].spec)
    return dry_run_text(first, extravars=extravars(prepared), points=points, summary=summary)


def submit(prepared: PreparedSweep, *, quiet: bool = False, registry: Registry | None = None) -> Outcome:
    """One playbook run, one sbatch (a job array); every point recorded as a run with its sweep and values."""
    return submit_runs(
        prepared.cluster,
        [point.spec for point in prepared.points],
        lambda staged: extravars(prepared, staged),
        title=f"sweep {prepared.name} ({len(prepared.points)} points) on {prepared.cluster.name}",
        command="sweep",
        point_values=[point.values for point in prepared.points],
        quiet=quiet,
        registry=registry,
    )


def to_json(outcome: Outcome) -> dict[str, Any]:
    """sweep --json: the sweep, its job array, the points it submitted and every point's run with its values."""
    return {
        "sweep_id": outcome.sweep_id,
        "cluster": outcome.run.cluster,
        "array_job_id": outcome.job_id,
        "submitted": list(outcome.new_runs),
        "points": [{**run.to_dict(), "values": run.point} for run in outcome.runs],
    }
