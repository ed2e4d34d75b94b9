#!/usr/bin/python
"""Ansible module cesres_run: check, stage and submit one CESReS run on the cluster, in one call.

Runs on the cluster with the Python that roles/cesres_python chose (3.10 on dragon2). The rules it
applies (path expansion, run id, run directory, store, job states) are the collection's module_utils
rules.py (the CLI's cesres_ctl.rules), sent along with it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import time
from base64 import b64decode
from pathlib import Path
from typing import IO, Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.cesres.ctl.plugins.module_utils.cache_models import LIST as MODELS_LIST
from ansible_collections.cesres.ctl.plugins.module_utils.cluster import (
    RunError,
    first_line,
    login_environment,
    module_environment,
    slurm_state,
)
from ansible_collections.cesres.ctl.plugins.module_utils.rules import (
    EXIT_CODE_FILE,
    JOB_SCRIPT_FILE,
    JOBID_FILE,
    RUN_CONFIG_FILE,
    RUN_ENV_FILE,
    RUN_INPUTS_DIR,
    RUN_RESULTS_DIR,
    RUN_SUBMITTED_FILE,
    RUNS_DIR,
    VENV_STAMP,
    RuleError,
    expand_path,
    file_sha256,
    may_resubmit,
    run_dir,
    run_env_text,
    run_id,
    store_dir,
    sweep_dir,
    sweep_id,
)

DOCUMENTATION = r"""
module: cesres_run
short_description: Check, stage and submit one CESReS training run on a Slurm cluster
description:
  - Expands the configured cluster paths with the login shell's environment, checks that the CESReS
    checkout, its ready virtualenv and the named models are there, reads the code version and derives
    the run id from it.
  - A run that already has a pending, running or completed job is reported as it is (changed=false).
  - Otherwise, holding a lock on the run directory, writes the run's files, links its data files from
    the content-addressed store (a data file is stored once however many runs use it) and submits the
    job script with sbatch from the run directory.
  - Local data files must be in the store first; when some are not, nothing is staged and their
    checksums are returned in C(missing), for the caller to send them to C(store)/C(<sha256>.incoming).
  - A run directory that got no job (a failed write, sbatch refused) is removed again.
options:
  root:
    description: The CESReS checkout as configured (C(~) and login shell variables allowed).
    type: str
    required: true
  venv:
    description: The virtualenv the job activates, as configured.
    type: str
    required: true
  hf_home:
    description: The Hugging Face cache the job reads offline, as configured.
    type: str
    required: true
  entry_point:
    description: The model's program, relative to the checkout.
    type: str
    required: true
  modules_release:
    description: Lmod release loaded before O(git_module).
    type: str
    default: ""
  git_module:
    description: Lmod module that provides git when it is not on PATH (to read the code version).
    type: str
    default: ""
  cluster:
    description: The cluster's inventory name, for messages.
    type: str
    required: true
  models:
    description: Hugging Face model ids that must be in the cluster's model cache list.
    type: list
    elements: str
    default: []
  name:
    description: The run name, prefix of the run id.
    type: str
    required: true
  spec_hash:
    description: Digest of the run's inputs computed on the controller.
    type: str
    required: true
  config:
    description: The configuration the model reads (written as config.yaml).
    type: str
    required: true
  submitted_config:
    description: The configuration as the user wrote it (config.submitted.yaml); empty for none.
    type: str
    default: ""
  job_script:
    description: The job script, rendered on the controller (job.sbatch).
    type: str
    required: true
  inputs:
    description:
      - The data files, each C({name, sha256}) (a local file, in the store by its checksum) or
        C({name, cluster_path}) (a file already on the cluster, copied into the store).
    type: list
    elements: dict
    default: []
  points:
    description:
      - A sweep (issue 10) - one C({spec_hash, config_b64}) per point of the grid. Each point is a run of its own
        (run id, directory, config, results); one sbatch submits them as a job array from the sweep's
        directory C(<root>/runs/.sweeps/<sweep id>/), whose C(points) file lists the points' run directories
        (array task i runs line i+1). O(spec_hash) and O(config) are then unused.
    type: list
    elements: dict
    default: []
  sweep_hash:
    description: Digest of the whole sweep (its points), for the sweep id.
    type: str
    default: ""
  max_parallel:
    description: At most this many points run at once (sbatch --array=...%K); 0 for no limit.
    type: int
    default: 0
  retry_failed:
    description:
      - For a sweep that exists, submit again only its points whose job ended without completing. Without
        it, the same sweep again is the existing one (nothing submitted).
    type: bool
    default: false
version_added: 0.1.0
author: cesres-ctl team (@cesres)
attributes:
  check_mode:
    support: full
    description: Reports whether the run would be staged and submitted, and the local data files the store lacks;
      stages and submits nothing.
"""

EXAMPLES = r"""
- name: Stage and submit the run
  cesres.ctl.cesres_run:
    root: ~/cesres
    venv: ~/cesres_env
    hf_home: ~/.cache/huggingface
    entry_point: cesres_graphcodebert_model.py
    cluster: dragon2
    name: demo
    spec_hash: "{{ cesres_job_spec_hash }}"
    config: "{{ cesres_job_config_b64 | b64decode }}"
    job_script: "{{ lookup('ansible.builtin.template', 'job.sbatch.j2') }}"
    inputs: [{name: training.txt, sha256: 0123...}]
"""

RETURN = r"""
run_id:
  description: The run id.
  type: str
  returned: always
run_dir:
  description: The run directory on the cluster.
  type: str
  returned: always
code_version:
  description: The code version the run id was made from (git commit, +dirty.<digest>, or tree.<digest>).
  type: str
  returned: always
job_id:
  description: The run's job (empty when none was submitted, or missing data).
  type: str
  returned: always
state:
  description: The job's state (PENDING after a submission).
  type: str
  returned: always
submitted:
  description: Whether this call submitted a job.
  type: bool
  returned: always
previous_job_id:
  description: The job that ended without completing and that this submission replaces.
  type: str
  returned: always
missing:
  description: Checksums of local data files that are not in the store yet (nothing was staged then).
  type: list
  elements: str
  returned: always
store:
  description: The store directory on the cluster.
  type: str
  returned: always
sweep_id:
  description: The sweep's id (a sweep only).
  type: str
  returned: with points
points:
  description: Each point's run_id, run_dir, job_id (<array job>_<index>), state, submitted, previous_job_id.
  type: list
  elements: dict
  returned: with points
"""

LOCK_WAIT = 120  # seconds another submission of the same run may hold the lock
# The revision the program loads its models at: from_pretrained without a revision, the hub's default branch.
PROGRAM_REVISION = "main"


def model_errors(listed: list[str], models: list[str], hf_home: str, cluster: str, stamp: str) -> list[str]:
    """One line per model of `models` that the cache list (HF_HOME/cesres-models.list, "ID REVISION STAMP"
    lines) lacks at the revision the program loads, as proven by the venv whose ready stamp is `stamp`:
    offline, a copy cached at another revision, or by another transformers (another layout), is not found."""
    revisions: dict[str, list[str]] = {}
    elsewhere: set[str] = set()
    for words in (line.split() for line in listed):
        if len(words) == 3 and words[2] == stamp:
            revisions.setdefault(words[0], []).append(words[1])
        elif words:
            elsewhere.add(words[0])
    errors = []
    for model in models:
        if PROGRAM_REVISION in revisions.get(model, []):
            continue
        if model in revisions:
            cached = ", ".join(revisions[model])
            where = f"model {model} is cached at {cached} only; the program loads {PROGRAM_REVISION}"
        elif model in elsewhere:
            where = f"model {model} is cached in {hf_home} for another virtualenv only (another transformers)"
        else:
            where = f"model {model}, named by the config, is not in the cluster's model cache ({hf_home})"
        errors.append(
            f"{where}: cache it with cesres-ctl setup --cluster {cluster} "
            f'-e \'{{"cesres_hf_models": [{{"id": "{model}"}}]}}\''
        )
    return errors


def git_environment(release: str, git_module: str) -> dict[str, str] | None:
    """An environment with a working git: this one, else the git module's (dragon2's login nodes have no
    git outside of it); None without git."""
    if shutil.which("git"):
        return dict(os.environ)
    if not git_module:
        return None
    return module_environment([release, git_module], ["git", "--version"])


def run_git(root: Path, args: list[str], env: dict[str, str] | None) -> bytes | None:
    """The output of `git -C root args` in `env`; None when it fails or there is no git."""
    if env is None:
        return None
    argv = ["git", "-C", str(root), *args]
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=120, check=False, env=env)
    return done.stdout if done.returncode == 0 else None


def code_version(root: Path, release: str, git_module: str) -> str:
    """The commit of the checkout (+dirty.<digest of the diff> with modified tracked files); a tree digest
    for a checkout pushed without git (names, sizes, times; runs/ and .git/ left out)."""
    env = git_environment(release, git_module) if (root / ".git").exists() else None
    head = run_git(root, ["rev-parse", "HEAD"], env)
    if head is not None:
        version = head.decode().strip()
        status = run_git(root, ["status", "--porcelain", "--untracked-files=no"], env)
        if status and status.strip():
            diff = run_git(root, ["diff", "HEAD"], env) or b""
            version += "+dirty." + hashlib.sha256(diff).hexdigest()[:12]
        return version
    listing = []
    for directory, subdirs, names in os.walk(root):
        here = Path(directory)
        if here == root:
            subdirs[:] = [name for name in subdirs if name not in (RUNS_DIR, ".git")]
        for name in names:
            try:
                info = (here / name).lstat()
            except OSError:
                continue
            listing.append(f"{(here / name).relative_to(root)} {info.st_size} {info.st_mtime}")
    return "tree." + hashlib.sha256("\n".join(sorted(listing)).encode()).hexdigest()[:40]


def write_atomically(path: Path, text: str, mode: int) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    partial.chmod(mode)
    partial.replace(path)


def enter_store(candidate: Path, store: Path, sha256: str, mismatch: str) -> None:
    """Move `candidate` into the store as <sha256>, read-only, if its content has that checksum; else drop it."""
    if file_sha256(candidate) != sha256:
        candidate.unlink()
        raise RunError(mismatch)
    candidate.chmod(0o440)
    candidate.replace(store / sha256)


def store_cluster_file(path: Path, sha256: str, store: Path) -> None:
    """Copy a data file that is on the cluster into the store (a copy, not a link: the user may edit theirs)."""
    if (store / sha256).exists():
        return
    partial = store / f"{sha256}.{os.getpid()}.partial"
    shutil.copyfile(path, partial)
    enter_store(partial, store, sha256, f"data file {path} changed while it was copied into the store")


def admit_incoming(store: Path, sha256: str) -> None:
    """A local data file the controller sent as <sha256>.incoming: checked against its name, then stored."""
    incoming = store / f"{sha256}.incoming"
    if (store / sha256).exists() or not incoming.exists():
        return
    message = f"a data file sent as {sha256} has another checksum (was it changed while it was sent?)"
    enter_store(incoming, store, sha256, message)


def input_checksums(inputs: list[dict[str, Any]], cluster_inputs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(name in inputs/, checksum in the store) of every input: a local one comes with its checksum, a
    cluster-side one gets it on the cluster (cluster_inputs, by check())."""
    found = {item["name"]: item["sha256"] for item in cluster_inputs}
    return [(item["name"], item["sha256"] if not item.get("cluster_path") else found[item["name"]]) for item in inputs]


class Run:
    """One run: its paths as the cluster means them, its checks, its id, and its submission."""

    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        self.params: dict[str, Any] = module.params
        self.cluster_inputs = [dict(item) for item in self.params["inputs"] if item.get("cluster_path")]
        self.local_inputs = [item["sha256"] for item in self.params["inputs"] if not item.get("cluster_path")]
        # A sweep: several points (configs), one job array; else one run of one config, one job.
        self.sweep = bool(self.params["points"])
        self.version = ""

    def resolve_paths(self) -> None:
        p = self.params
        given = [p["root"], p["venv"], p["hf_home"]] + [item["cluster_path"] for item in self.cluster_inputs]
        env = login_environment(given)
        self.root = Path(expand_path(p["root"], env, what="cesres_job_root"))
        self.venv = Path(expand_path(p["venv"], env, what="cesres_job_venv"))
        self.hf_home = Path(expand_path(p["hf_home"], env, what="cesres_job_hf_home"))
        for item in self.cluster_inputs:
            given_path = item["cluster_path"]
            item["path"] = Path(expand_path(given_path, env, what="a cluster data file", relative_to=str(self.root)))
        self.store = Path(store_dir(str(self.root)))

    def check(self) -> list[str]:
        """The reasons the run cannot start on this cluster (all of them, not the first)."""
        p = self.params
        errors = []
        if not self.root.is_dir():
            errors.append(f"the CESReS code is not on the cluster at {self.root} (run cesres-ctl setup first)")
        elif not (self.root / p["entry_point"]).is_file():
            errors.append(f"{self.root} has no {p['entry_point']}: is it a CESReS checkout?")
        else:
            self.version = code_version(self.root, p["modules_release"], p["git_module"])
        if not (self.venv / "bin" / "activate").is_file():
            errors.append(f"no virtualenv at {self.venv} (run cesres-ctl setup first)")
        elif not first_line(self.venv / VENV_STAMP):
            # setup writes the stamp only after pip, pip check and the import check passed.
            errors.append(
                f"the virtualenv {self.venv} is not ready (its installation failed or is still running): "
                "run cesres-ctl setup"
            )
        try:
            listed = (self.hf_home / MODELS_LIST).read_text(encoding="utf-8").splitlines()
        except OSError:
            listed = []
        stamp = first_line(self.venv / VENV_STAMP) or ""
        errors += model_errors(listed, p["models"], str(self.hf_home), p["cluster"], stamp)
        for item in self.cluster_inputs:
            if item["path"].is_file() and os.access(item["path"], os.R_OK):
                item["sha256"] = file_sha256(item["path"])
            else:
                errors.append(f"data file cluster:{item['cluster_path']} not found on the cluster ({item['path']})")
        return errors

    def stage(self, point: dict[str, Any], job: str) -> str:
        """Write one run directory (its files, its data links); returns the job it replaces ("" if none)."""
        p = self.params
        directory = point["dir"]
        previous = ""
        if job:
            # It ended without completing: keep what it left, submit again.
            previous = job
            if (directory / RUN_RESULTS_DIR).exists():
                (directory / RUN_RESULTS_DIR).replace(directory / f"{RUN_RESULTS_DIR}.{job}")
            (directory / EXIT_CODE_FILE).unlink(missing_ok=True)
        inputs = directory / RUN_INPUTS_DIR
        inputs.mkdir(mode=0o750, exist_ok=True)
        for name, sha256 in input_checksums(p["inputs"], self.cluster_inputs):
            # A hard link: no second copy on the disk, and a plain file for the job's copy and for fetch.
            link = inputs / name
            link.unlink(missing_ok=True)
            os.link(self.store / sha256, link)
        values = {
            "run_id": point["run_id"],
            "code_dir": str(self.root),
            "venv": str(self.venv),
            "hf_home": str(self.hf_home),
        }
        write_atomically(directory / RUN_ENV_FILE, run_env_text(values), 0o640)
        write_atomically(directory / RUN_CONFIG_FILE, point["config"], 0o640)
        if p["submitted_config"]:
            write_atomically(directory / RUN_SUBMITTED_FILE, p["submitted_config"], 0o640)
        if not self.sweep:
            write_atomically(directory / JOB_SCRIPT_FILE, p["job_script"], 0o750)
        return previous

    @staticmethod
    def sbatch(cwd: Path, *options: str) -> str:
        done = subprocess.run(
            ["sbatch", "--parsable", *options, JOB_SCRIPT_FILE], cwd=cwd, capture_output=True, text=True, timeout=300
        )
        if done.returncode != 0:
            raise RunError(f"sbatch refused the job: {' '.join((done.stderr or done.stdout).split())}")
        return done.stdout.strip().split("\n")[-1].split(";")[0].strip()

    def keep_job(self, directory: Path, job: str) -> None:
        """Write a job that sbatch accepted into its run directory (jobid, jobs). Nothing after sbatch may
        fail the module: the job runs, so its directory stays and the caller must learn its id to record it;
        a write that fails is a warning."""
        try:
            write_atomically(directory / JOBID_FILE, job + "\n", 0o640)
            with (directory / "jobs").open("a", encoding="utf-8") as handle:
                handle.write(job + "\n")
        except OSError as exc:
            self.module.warn(
                f"job {job} was submitted, but {directory} could not keep its id ({exc.strerror or exc}): "
                "a train with the same inputs will not find it there"
            )

    def to_submit(self, points: list[dict[str, Any]]) -> list[int]:
        """The points to (re)submit, by index. A run is submitted again when its job ended without
        completing; a sweep only with retry_failed (else the same sweep again is the existing one)."""
        if self.sweep and not self.params["retry_failed"] and any(point["job_id"] for point in points):
            return [index for index, point in enumerate(points) if not point["job_id"]]
        return [index for index, point in enumerate(points) if may_resubmit(point["job_id"], point["state"])]

    def read_jobs(self, points: list[dict[str, Any]]) -> None:
        for point in points:
            point["job_id"] = first_line(point["dir"] / JOBID_FILE)
            point["state"] = slurm_state(point["job_id"], point["dir"]) if point["job_id"] else ""

    def main(self) -> dict[str, Any]:
        p = self.params
        self.resolve_paths()
        errors = self.check()
        if errors:
            raise RunError("; ".join(errors))
        cluster_sums = [i["sha256"] for i in self.cluster_inputs]
        given = [(point["spec_hash"], b64decode(point["config_b64"]).decode("utf-8")) for point in p["points"]]
        points: list[dict[str, Any]] = []
        for spec_hash, config in given or [(p["spec_hash"], p["config"])]:
            identifier = run_id(p["name"], spec_hash, self.version, cluster_sums)
            points.append({"run_id": identifier, "dir": Path(run_dir(str(self.root), identifier)), "config": config})
        result: dict[str, Any] = {"code_version": self.version, "store": str(self.store), "missing": []}
        if self.sweep:
            identifier = sweep_id(p["name"], p["sweep_hash"], self.version, cluster_sums)
            lock_dir = Path(sweep_dir(str(self.root), identifier))
            result.update(sweep_id=identifier, sweep_dir=str(lock_dir))
        else:
            lock_dir = points[0]["dir"]
        self.read_jobs(points)
        todo = self.to_submit(points)
        if todo:
            for sha256 in self.local_inputs:
                admit_incoming(self.store, sha256)
            result["missing"] = sorted({sha for sha in self.local_inputs if not (self.store / sha).exists()})
        if not todo or self.module.check_mode:
            return self.outcome(result, points, submitted=[], previous={}, changed=bool(todo))
        self.store.mkdir(mode=0o750, parents=True, exist_ok=True)
        if result["missing"]:
            return self.outcome(result, points, submitted=[], previous={}, changed=False)
        for item in self.cluster_inputs:
            store_cluster_file(item["path"], item["sha256"], self.store)
        created = [point["dir"] for point in points if not point["dir"].is_dir()]
        if not lock_dir.is_dir():
            created.append(lock_dir)
        lock_dir.mkdir(mode=0o750, parents=True, exist_ok=True)
        previous: dict[int, str] = {}
        try:
            with (lock_dir / ".submit.lock").open("a", encoding="utf-8") as lock:
                self._lock(lock, lock_dir)
                # Another cesres-ctl may have submitted it while we waited for the lock.
                self.read_jobs(points)
                todo = self.to_submit(points)
                if not todo:
                    return self.outcome(result, points, submitted=[], previous={}, changed=False)
                for index in todo:
                    points[index]["dir"].mkdir(mode=0o750, parents=True, exist_ok=True)
                    previous[index] = self.stage(points[index], points[index]["job_id"])
                if self.sweep:
                    # One array task per point: the task's index is the point's line in `points`.
                    listing = "".join(f"{point['dir']}\n" for point in points)
                    write_atomically(lock_dir / "points", listing, 0o640)
                    write_atomically(lock_dir / JOB_SCRIPT_FILE, p["job_script"], 0o750)
                    limit = f"%{p['max_parallel']}" if p["max_parallel"] > 0 else ""
                    array = self.sbatch(lock_dir, f"--array={','.join(map(str, todo))}{limit}")
                    jobs = {index: f"{array}_{index}" for index in todo}
                    result["array_job_id"] = array
                else:
                    jobs = {0: self.sbatch(points[0]["dir"])}
                for index, job in jobs.items():
                    points[index].update(job_id=job, state="PENDING")
                    self.keep_job(points[index]["dir"], job)
        except BaseException:
            # A directory that never got a job is removed: the next train stages it afresh. One that holds a
            # job keeps its results and logs.
            for directory in created:
                if not first_line(directory / JOBID_FILE) and directory != lock_dir:
                    shutil.rmtree(directory, ignore_errors=True)
            if lock_dir in created and not any(first_line(pt["dir"] / JOBID_FILE) for pt in points):
                shutil.rmtree(lock_dir, ignore_errors=True)
            raise
        return self.outcome(result, points, submitted=list(jobs), previous=previous, changed=True)

    def outcome(
        self,
        result: dict[str, Any],
        points: list[dict[str, Any]],
        *,
        submitted: list[int],
        previous: dict[int, str],
        changed: bool,
    ) -> dict[str, Any]:
        """The module's result: a run's (run_id, run_dir, job_id, state, submitted, previous_job_id), and for a
        sweep, the same for each point under `points`."""
        described = [
            {
                "run_id": point["run_id"],
                "run_dir": str(point["dir"]),
                "job_id": point["job_id"],
                "state": point["state"],
                "submitted": index in submitted,
                "previous_job_id": previous.get(index, ""),
            }
            for index, point in enumerate(points)
        ]
        if self.sweep:
            job = result.get("array_job_id", "")
            return dict(result, points=described, job_id=job, submitted=bool(submitted), changed=changed)
        return dict(result, **described[0], changed=changed)

    @staticmethod
    def _lock(lock: IO[str], directory: Path) -> None:
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RunError(f"{directory} is locked by another submission") from None
                time.sleep(0.2)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "root": {"type": "str", "required": True},
            "venv": {"type": "str", "required": True},
            "hf_home": {"type": "str", "required": True},
            "entry_point": {"type": "str", "required": True},
            "modules_release": {"type": "str", "default": ""},
            "git_module": {"type": "str", "default": ""},
            "cluster": {"type": "str", "required": True},
            "models": {"type": "list", "elements": "str", "default": []},
            "name": {"type": "str", "required": True},
            "spec_hash": {"type": "str", "required": True},
            "config": {"type": "str", "required": True},
            "submitted_config": {"type": "str", "default": ""},
            "job_script": {"type": "str", "required": True},
            "inputs": {"type": "list", "elements": "dict", "default": []},
            "points": {"type": "list", "elements": "dict", "default": []},
            "sweep_hash": {"type": "str", "default": ""},
            "max_parallel": {"type": "int", "default": 0},
            "retry_failed": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    try:
        module.exit_json(**Run(module).main())
    except (RunError, RuleError, OSError, subprocess.SubprocessError) as exc:
        module.fail_json(msg=str(exc))


if __name__ == "__main__":
    main()
