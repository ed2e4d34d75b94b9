"""The local run registry: one SQLite file in the user's state directory.

Several cesres-ctl processes may use it at once (a `train --wait` in one terminal, `status` in
another): WAL journal, a busy timeout, and every write in a BEGIN IMMEDIATE transaction.
"""

import builtins
import contextlib
import json
import os
import sqlite3
import stat
import tempfile
import time
import typing
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import MISSING, asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cesres_ctl import inputs, paths, rules
from cesres_ctl.errors import CesresError

SCHEMA_VERSION = 2
# The registry's file, in the state directory.
REGISTRY_FILE = "runs.sqlite"
# The room reserved for one record in unrecorded/ (a run's record is about 1 KB).
RESERVED_BYTES = 16 * 1024
BUSY_TIMEOUT_MS = 15000
# The shortest run id prefix `find` accepts.
MIN_PREFIX = 4
_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    cluster TEXT NOT NULL,
    run_id TEXT NOT NULL,
    name TEXT NOT NULL,
    job_id TEXT NOT NULL,
    remote_dir TEXT NOT NULL,
    config TEXT NOT NULL DEFAULT '',
    resources TEXT NOT NULL DEFAULT '{}',
    code_version TEXT NOT NULL DEFAULT '',
    submitted_at TEXT NOT NULL,
    state TEXT NOT NULL,
    exit_code TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL DEFAULT '',
    elapsed TEXT NOT NULL DEFAULT '',
    updated_at TEXT NOT NULL,
    local_dir TEXT NOT NULL DEFAULT '',
    jobs TEXT NOT NULL DEFAULT '[]',
    sweep_id TEXT NOT NULL DEFAULT '',
    point TEXT NOT NULL DEFAULT '{}',
    point_index INTEGER NOT NULL DEFAULT -1,
    PRIMARY KEY (cluster, run_id)
);
CREATE INDEX IF NOT EXISTS runs_submitted ON runs (submitted_at);
"""
# What each schema version adds to the one before (a registry of an older cesres-ctl is upgraded in place).
_MIGRATIONS = {
    2: (
        "ALTER TABLE runs ADD COLUMN sweep_id TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE runs ADD COLUMN point TEXT NOT NULL DEFAULT '{}'",
        "ALTER TABLE runs ADD COLUMN point_index INTEGER NOT NULL DEFAULT -1",
    ),
}


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Run:
    cluster: str
    run_id: str
    name: str
    job_id: str
    remote_dir: str
    submitted_at: str
    state: str
    config: str = ""
    resources: dict[str, Any] = field(default_factory=dict)
    code_version: str = ""
    exit_code: str = ""
    reason: str = ""
    elapsed: str = ""
    updated_at: str = ""
    local_dir: str = ""
    jobs: list[str] = field(default_factory=list)
    sweep_id: str = ""  # the sweep this run is a point of ("" for a run of its own)
    point: dict[str, Any] = field(default_factory=dict)  # the point's values, {"SECTION.key": value}
    point_index: int = -1  # its place in the sweep's grid (its array task)

    @property
    def final(self) -> bool:
        return self.state in rules.TERMINAL_STATES

    @property
    def log_path(self) -> str:
        return f"{self.remote_dir}/{rules.log_name(self.job_id)}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["final"] = self.final
        data["log"] = self.log_path
        return data


def _process_alive(pid: str) -> bool:
    """Whether process `pid` (a decimal string) runs on this machine; False for anything else."""
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


# Each field's kind, as a record read back must have it (a hand-edited registry or kept record may not).
_KINDS: dict[str, Any] = {item.name: typing.get_origin(item.type) or item.type for item in fields(Run)}
_REQUIRED = {item.name for item in fields(Run) if item.default is MISSING and item.default_factory is MISSING}


def run_from_data(data: object, where: str) -> Run:
    """A Run from what the registry or a kept record holds, each field of its kind; CesresError else."""
    if not isinstance(data, dict) or not _REQUIRED <= data.keys() <= _KINDS.keys():
        raise CesresError(f"{where} is not a run record")
    for name, value in data.items():
        kind = _KINDS[name]
        text_list = not isinstance(value, list) or all(isinstance(item, str) for item in value)
        if not isinstance(value, kind) or isinstance(value, bool) or not text_list:
            expected = "list of strings" if kind is list else kind.__name__
            raise CesresError(f"{where}: {name} is not a {expected} ({value!r:.40})")
    return Run(**data)


def _row_to_run(row: sqlite3.Row, path: Path) -> Run:
    data = dict(row)
    where = f"the run registry {path}, run {data.get('cluster')}:{data.get('run_id')}"
    for name, empty in (("resources", "{}"), ("jobs", "[]"), ("point", "{}")):
        text = data.get(name) or empty
        data[name] = inputs.load_json(text, f"{where}, {name}") if isinstance(text, str) else text
    return run_from_data(data, where)


def _use_wal(conn: sqlite3.Connection) -> None:
    """Put the database in WAL mode, waiting for other processes as long as any other statement would.

    Switching a rollback-journal database to WAL fails at once, without SQLite's busy handler, while
    another connection holds a write lock: two first commands started together (a fresh state
    directory, or a database another process is still creating) would otherwise fail with
    "database is locked".
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.02)


class Registry:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or paths.state_dir() / REGISTRY_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Submissions that could not be recorded (see keep_unrecorded), recorded at the next chance.
        self.unrecorded_dir = self.path.parent / "unrecorded"
        self._recovering = False

    def check_writable(self) -> None:
        """Fail now, before a job is submitted, if its submission could not be recorded afterwards."""
        with self._write() as conn:
            verdict = conn.execute("PRAGMA quick_check").fetchone()[0]
            if verdict != "ok":
                raise sqlite3.DatabaseError(f"damaged ({verdict})")

    def reserve_unrecorded(self, count: int) -> list[Path]:
        """Room for `count` records in unrecorded/, taken before a submission: on a disk that fills up
        meanwhile, keep_unrecorded writes into it instead of needing new space. What a killed cesres-ctl
        reserved is removed here, by the next submission."""
        self.unrecorded_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        for stale in self.unrecorded_dir.glob("*.reserved"):
            if not _process_alive(stale.name.partition("-")[0]):
                stale.unlink(missing_ok=True)
        reserved: list[Path] = []
        try:
            for _ in range(count):
                fd, name = tempfile.mkstemp(dir=self.unrecorded_dir, prefix=f"{os.getpid()}-", suffix=".reserved")
                reserved.append(Path(name))
                with os.fdopen(fd, "wb") as handle:
                    handle.write(b" " * RESERVED_BYTES)
        except OSError:
            for path in reserved:
                path.unlink(missing_ok=True)
            raise
        return reserved

    def keep_unrecorded(self, run: Run, reserved: Path | None = None) -> Path:
        """Keep a submitted run that the database would not take, for the next command to record; in the
        room `reserved` for it when it fits (JSON allows the spaces after it)."""
        self.unrecorded_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        target = self.unrecorded_dir / f"{run.cluster}--{run.run_id}.json"
        data = json.dumps(asdict(run)).encode("utf-8")
        if reserved is not None and len(data) <= RESERVED_BYTES:
            with reserved.open("r+b") as handle:
                handle.write(data)
            reserved.replace(target)
            return target
        partial = target.with_suffix(".partial")
        try:
            partial.write_bytes(data)
            partial.replace(target)
        except OSError:
            partial.unlink(missing_ok=True)  # a full disk: no half record left to read
            raise
        return target

    def _record_unrecorded(self) -> None:
        if self._recovering or not self.unrecorded_dir.is_dir():
            return
        self._recovering = True
        try:
            for kept in sorted(self.unrecorded_dir.glob("*.json")):
                try:
                    run = run_from_data(inputs.load_json(inputs.read_text(kept, "kept run"), str(kept)), str(kept))
                except CesresError:
                    continue  # not ours: left for the user to look at
                self.record_submission(run)
                kept.unlink()
        finally:
            self._recovering = False

    def _check_file(self) -> None:
        """The registry is a regular file that is not empty, created whole if absent (see _create)."""
        try:
            info = self.path.stat()
        except FileNotFoundError:
            self._create()
            return
        except OSError as exc:
            raise CesresError(f"cannot use the run registry {self.path}: {exc.strerror or exc}") from None
        if not stat.S_ISREG(info.st_mode):
            raise CesresError(f"the run registry {self.path} is not a regular file: move it aside and run again")
        if info.st_size == 0:
            # SQLite would take an empty file for a new database and write a new registry over it.
            raise CesresError(
                f"the run registry {self.path} is empty (0 bytes): it was truncated, and the runs it recorded are "
                "lost; it is left as it is: move it aside and run again for a new one (train with the same inputs "
                "finds their jobs on the cluster again)"
            )

    def _create(self) -> None:
        """A new registry, put in place whole (a WAL database of one page, linked under its name): never
        seen empty by another process, for which an empty registry file is a truncated one."""
        fd, partial = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        os.close(fd)
        try:
            conn = sqlite3.connect(partial, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode = WAL")  # writes the database's first page
            finally:
                conn.close()
            with contextlib.suppress(FileExistsError):  # another process created it first: that one is used
                os.link(partial, self.path)
        except (OSError, sqlite3.Error) as exc:
            raise CesresError(f"cannot create the run registry {self.path}: {exc}") from None
        finally:
            Path(partial).unlink(missing_ok=True)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self._record_unrecorded()
        self._check_file()
        try:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        except sqlite3.Error as exc:
            raise CesresError(f"cannot open the run registry {self.path}: {exc}") from None
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            _use_wal(conn)
            conn.execute("PRAGMA synchronous = NORMAL")
            if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                conn.execute("BEGIN IMMEDIATE")
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                exists = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'runs'").fetchone()
                if exists:
                    for step in range(max(version, 1) + 1, SCHEMA_VERSION + 1):
                        for statement in _MIGRATIONS[step]:
                            conn.execute(statement)
                for statement in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("COMMIT")
            yield conn
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise CesresError(f"run registry {self.path}: {exc}") from None
            raise CesresError(
                f"the run registry {self.path} is unusable ({exc}): move it aside and run again; "
                "train with the same inputs finds their jobs on the cluster again"
            ) from None
        except sqlite3.Error as exc:
            raise CesresError(f"run registry {self.path}: {exc}") from None
        finally:
            conn.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def record_submission(self, run: Run) -> Run:
        """Insert the run, or update it with a new job (a failed run submitted again)."""
        with self._write() as conn:
            return _record(conn, run, self.path)

    def record_submissions(self, runs: "builtins.list[Run]") -> "builtins.list[Run]":
        """record_submission for several runs (a sweep's points), all of them or none: one transaction."""
        # The records kept in unrecorded/ for these very runs (submit.record) wait for this transaction
        # instead of each taking its own first; others are recorded by the next connection.
        self._recovering = True
        try:
            with self._write() as conn:
                return [_record(conn, run, self.path) for run in runs]
        finally:
            self._recovering = False

    def update(self, cluster: str, run_id: str, **fields: Any) -> None:
        allowed = {"state", "exit_code", "reason", "elapsed", "local_dir"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"cannot update {sorted(unknown)}")
        fields["updated_at"] = now()
        assignments = ", ".join(f"{key} = :{key}" for key in fields)
        with self._write() as conn:
            conn.execute(
                f"UPDATE runs SET {assignments} WHERE cluster = :cluster AND run_id = :run_id",  # noqa: S608
                {**fields, "cluster": cluster, "run_id": run_id},
            )

    def list(self, cluster: str | None = None) -> list[Run]:
        with self._connect() as conn:
            if cluster:
                rows = conn.execute(
                    "SELECT * FROM runs WHERE cluster = ? ORDER BY submitted_at, run_id", (cluster,)
                ).fetchall()
            else:
                rows = conn.execute("SELECT * FROM runs ORDER BY submitted_at, run_id").fetchall()
        return [_row_to_run(row, self.path) for row in rows]

    def get(self, cluster: str, run_id: str) -> Run | None:
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM runs WHERE cluster = ? AND run_id = ?", (cluster, run_id)).fetchone()
        return _row_to_run(row, self.path) if row else None

    def sweep(self, ref: str, cluster: str | None = None) -> "builtins.list[Run]":
        """The points of a sweep, by its id or a unique prefix of it (MIN_PREFIX characters or more), in the
        order of the grid; [] when `ref` names no sweep."""
        if len(ref.strip()) < MIN_PREFIX:
            return []
        points = [run for run in self.list(cluster) if run.sweep_id]
        ids = {run.sweep_id for run in points if run.sweep_id == ref} or {
            run.sweep_id for run in points if run.sweep_id.startswith(ref)
        }
        if len(ids) > 1:
            raise CesresError(f"{ref!r} matches several sweeps ({', '.join(sorted(ids)[:5])}): give the full sweep id")
        return sorted((run for run in points if run.sweep_id in ids), key=lambda run: run.point_index)

    def find(self, ref: str, cluster: str | None = None) -> Run:
        """A run by id, job id, name (the latest run of that name) or unique id prefix (MIN_PREFIX characters
        or more). A name comes before a prefix: `demo` is the run named demo, even beside a run named demo2
        (whose id `demo` also begins)."""
        if not ref.strip():
            raise CesresError(
                "empty run id: give a run id, a prefix of it, its job id or its name (see `cesres-ctl runs`)"
            )
        runs = self.list(cluster)
        # A short prefix would pick a run by accident ('' is a prefix of every id): only exact matches then.
        prefix_ok = len(ref) >= MIN_PREFIX
        exact: tuple[Callable[[Run], bool], ...] = (
            lambda r: r.run_id == ref,
            lambda r: r.job_id == ref or ref in r.jobs,
        )
        for matcher in exact:
            found = [run for run in runs if matcher(run)]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                ids = ", ".join(f"{r.cluster}:{r.run_id}" for r in found[:5])
                raise CesresError(f"{ref!r} matches several runs ({ids}): give the full run id or --cluster")
        named = [run for run in runs if run.name == ref]
        if named:
            return named[-1]
        prefixed = [run for run in runs if prefix_ok and run.run_id.startswith(ref)]
        if len(prefixed) == 1:
            return prefixed[0]
        if len(prefixed) > 1:
            ids = ", ".join(f"{r.cluster}:{r.run_id}" for r in prefixed[:5])
            raise CesresError(f"{ref!r} matches several runs ({ids}): give the full run id or --cluster")
        if not prefix_ok and any(run.run_id.startswith(ref) for run in runs):
            raise CesresError(
                f"run id prefix {ref!r} is too short: give at least {MIN_PREFIX} characters of the run id"
            )
        where = f" on {cluster}" if cluster else ""
        raise CesresError(f"no run {ref!r}{where} in the registry ({self.path}); see `cesres-ctl runs`")


def _record(conn: sqlite3.Connection, run: Run, path: Path) -> Run:
    """Insert `run` or update its row, inside the caller's transaction (see Registry.record_submission)."""
    row = conn.execute("SELECT * FROM runs WHERE cluster = ? AND run_id = ?", (run.cluster, run.run_id)).fetchone()
    jobs = list(_row_to_run(row, path).jobs) if row else []
    if run.job_id not in jobs:
        jobs.append(run.job_id)
    run.jobs = jobs
    if row is not None:
        existing = _row_to_run(row, path)
        if existing.job_id == run.job_id:
            # Same job: keep what status already learnt about it.
            run.submitted_at = existing.submitted_at
            if existing.final or run.state in ("PENDING", rules.UNKNOWN_STATE):
                run.state, run.exit_code = existing.state, existing.exit_code
                run.reason, run.elapsed = existing.reason, existing.elapsed
            run.local_dir = existing.local_dir
    run.updated_at = now()
    data = run.to_dict()
    data.pop("final")
    data.pop("log")
    data["resources"] = json.dumps(run.resources, sort_keys=True)
    data["jobs"] = json.dumps(run.jobs)
    data["point"] = json.dumps(run.point)
    columns = ", ".join(data)
    placeholders = ", ".join(f":{key}" for key in data)
    conn.execute(f"INSERT OR REPLACE INTO runs ({columns}) VALUES ({placeholders})", data)  # noqa: S608
    return run


def run_from_report(
    cluster: str, name: str, report: Mapping[str, Any], *, config: str, resources: Mapping[str, Any]
) -> Run:
    return Run(
        cluster=cluster,
        run_id=str(report["run_id"]),
        name=name,
        job_id=str(report["job_id"]),
        remote_dir=str(report["run_dir"]),
        submitted_at=now(),
        state=str(report.get("state") or "PENDING"),
        config=config,
        resources={**resources, "partition": report.get("partition", resources.get("partition"))},
        code_version=str(report.get("code_version") or ""),
    )
