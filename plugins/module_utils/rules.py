"""The rules that the CLI and the roles both apply, in one place.

cesres-ctl checks a run before anything is sent; roles/cesres_job checks it again when a playbook is run
by hand (`ansible-playbook playbooks/train.yml`). Both read the rules here, the collection's module_utils
cesres.ctl.plugins.module_utils.rules: the CLI imports it as cesres_ctl.rules (a link to this file), the
roles through the collection's filters (plugins/filter/cesres.py) on this machine and, on the cluster,
through the modules that import it (Ansible sends it with them). Nothing here imports Ansible or does I/O
but file_sha256, which reads the file it is given; it runs on the cluster's Python (3.10 on dragon2; it must
import on 3.8, the oldest a cluster's modules may get: annotations are not evaluated at import, hence the
__future__ import). Each rule is here once: tests/unit/test_one_home.py finds a copied regex or constant.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    from cesres_ctl.errors import CesresError
except ImportError:  # on the cluster, sent as module_utils: the modules report the message themselves
    CesresError = ValueError  # type: ignore[assignment,misc]


class RuleError(CesresError):
    """A value that breaks one of these rules; the message is one line for the user."""


# The oldest Python that cesres-ctl's code on the cluster (its modules, module_utils, this file) runs on: the
# Python module of the CÉCI procedure's release (dragon2's Python/3.10.4). roles/cesres_python's probe refuses
# an older one, ruff lints those files for it, and tests/unit/test_cluster_python.py imports them with it.
CLUSTER_PYTHON = (3, 10)


# --- Slurm time strings (--time, partition limits) -----------------------------------------------------

# At most 9 digits a field (a billion minutes is 1900 years): Python refuses to convert a string of more
# than 4300 digits, and no limit needs one.
_TIME = re.compile(r"^(?:(\d{1,9})-)?(\d{1,9})(?::(\d{1,9}))?(?::(\d{1,9}))?$")
DEFAULT_MAX_TIME = "21-00:00:00"


def slurm_seconds(text: object) -> int:
    """Seconds of a Slurm time string, in the forms sbatch documents: "minutes", "minutes:seconds",
    "hours:minutes:seconds", "days-hours", "days-hours:minutes", "days-hours:minutes:seconds".
    Zero, UNLIMITED and anything else are refused."""
    match = _TIME.match(str(text).strip())
    if not match:
        shown = text if len(str(text)) <= 40 else f"{str(text)[:40]}..."
        raise RuleError(
            f"invalid time {shown!r}: use minutes, HH:MM:SS, D-HH or D-HH:MM:SS (e.g. 02:00:00 or 1-12:00:00)"
        )
    days, first, second, third = match.groups()
    if days is not None:
        seconds = int(days) * 86400 + int(first) * 3600 + int(second or 0) * 60 + int(third or 0)
    elif third is not None:
        seconds = int(first) * 3600 + int(second) * 60 + int(third)
    elif second is not None:
        seconds = int(first) * 60 + int(second)
    else:
        seconds = int(first) * 60
    if seconds <= 0:
        raise RuleError(f"invalid time {text!r}: must be more than zero")
    return seconds


def format_seconds(seconds: int) -> str:
    """Canonical `D-HH:MM:SS` (or `HH:MM:SS` under a day), as sinfo prints limits."""
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}-{clock}" if days else clock


# --- values on an #SBATCH line (--mem, --account, --qos, --mail-*) and the copy-back warning ----------------

# sbatch parses its #SBATCH lines itself, so a newline, a quote or a space would end the directive or start
# shell code: nothing else is allowed through.
_SLURM_WORD = re.compile(r"^[A-Za-z0-9_.@,:+=/-]+$")
_MEM = re.compile(r"^\d+[KMGT]?$")


def is_slurm_word(text: object) -> bool:
    """Whether `text` may stand as one value on an #SBATCH line (an account, a partition, a branch)."""
    return isinstance(text, str) and bool(_SLURM_WORD.match(text))


def check_slurm_word(text: str, what: str) -> str:
    """`text` if it is empty or a Slurm word; else RuleError."""
    if text and not is_slurm_word(text):
        raise RuleError(f"{what} {text!r} contains characters Slurm does not accept here")
    return text


def is_mem(text: object) -> bool:
    """Whether `text` is a --mem value as the job script writes it: a number with an optional unit K, M, G, T."""
    return isinstance(text, str) and bool(_MEM.match(text))


def check_mem(value: object) -> str:
    """--mem as given (any case, "" for none) in the job script's form (16G); else RuleError."""
    mem = str(value or "").strip().upper()
    if mem and not is_mem(mem):
        raise RuleError(f"memory {mem!r} must be a number with an optional unit K, M, G or T (e.g. 16G)")
    return mem


def signal_grace(grace: int, seconds: int) -> int:
    """Seconds before the time limit at which the job script copies the results back (#SBATCH --signal): the
    asked grace, but never more than half the run, so that short jobs get their warning too; at least 1."""
    return max(1, min(int(grace), int(seconds) // 2))


# --- partitions and what a job may ask of them ------------------------------------------------------------


@dataclass(frozen=True)
class Partition:
    name: str
    max_seconds: int
    gpus: int
    default: bool
    max_jobs: int = 0  # jobs a user may run at once there (a sweep's --max-parallel); 0: not known


def parse_partitions(raw: Mapping[str, Any] | None) -> dict[str, Partition]:
    """`cesres_cluster_partitions` (name: {max_time, gpus, default, max_jobs}) as Partition objects."""
    partitions = {}
    for name, facts in (raw or {}).items():
        facts = facts or {}
        partitions[str(name)] = Partition(
            name=str(name),
            max_seconds=slurm_seconds(str(facts.get("max_time", DEFAULT_MAX_TIME))),
            gpus=int(facts.get("gpus") or 0),
            default=bool(facts.get("default", False)),
            max_jobs=int(facts.get("max_jobs") or 0),
        )
    return partitions


def choose_partition(partitions: Mapping[str, Partition], asked: str) -> str:
    """The partition asked for, else the cluster's default one ("" if it has none)."""
    return asked.strip() or next((p.name for p in partitions.values() if p.default), "")


def check_fit(partitions: Mapping[str, Partition], partition: str, gpus: int, seconds: int, *, cluster: str) -> None:
    """The partition exists and allows that many GPUs and that much time; else RuleError."""
    if partition not in partitions:
        known = ", ".join(sorted(partitions))
        raise RuleError(f"unknown partition {partition!r} on {cluster} (partitions: {known})")
    part = partitions[partition]
    if gpus < 0:
        raise RuleError(f"gpus must be at least 0, got {gpus}")
    if gpus > part.gpus:
        if part.gpus == 0:
            raise RuleError(f"partition {partition} of {cluster} has no GPUs: use --gpus 0 or a GPU partition")
        raise RuleError(f"partition {partition} of {cluster} has at most {part.gpus} GPUs per node, asked {gpus}")
    if seconds > part.max_seconds:
        raise RuleError(
            f"time {format_seconds(seconds)} is over the limit of partition {partition} on {cluster} "
            f"({format_seconds(part.max_seconds)})"
        )


# --- extra sbatch options (--sbatch, cesres_job_extra_sbatch) -------------------------------------------

# sbatch's long options (Slurm 22.05, src/common/slurm_opt.c: those sbatch reads), each marked by whether it
# takes a value: `name=` always, `name?` optionally, `name` never. getopt_long reads them on the command line
# and on `#SBATCH` lines alike, and takes any unambiguous prefix of one as that option: `--parti=debug` is
# --partition.
_SBATCH_TABLE = """
    account= acctg-freq= array= batch= bb= bbf= begin= chdir= cluster= cluster-constraint= clusters= comment=
    constraint= container= context= contiguous core-spec= cores-per-socket= cpu-freq= cpus-per-gpu=
    cpus-per-task= deadline= delay-boot= dependency= distribution= error= exclude= exclusive? export=
    export-file= extra-node-info= get-user-env? gid= gpu-bind= gpu-freq= gpus= gpus-per-node= gpus-per-socket=
    gpus-per-task= gres= gres-flags= help hint= hold ignore-pbs input= job-name= kill-on-invalid-dep= licenses=
    mail-type= mail-user= mcs-label= mem= mem-bind= mem-per-cpu= mem-per-gpu= mincpus= network= nice? no-kill?
    no-requeue nodefile= nodelist= nodes= ntasks= ntasks-per-core= ntasks-per-gpu= ntasks-per-node=
    ntasks-per-socket= ntasks-per-tres= open-mode= output= overcommit oversubscribe parsable partition= power=
    prefer= priority= profile= propagate? qos= quiet reboot requeue reservation= signal= sockets-per-node=
    spread-job switches= tasks-per-node= test-only thread-spec= threads-per-core= time= time-min= tmp= uid=
    usage use-min-nodes verbose version wait wait-all-nodes= wckey= wrap=
"""
SBATCH_OPTIONS = {word.rstrip("=?"): word[-1] if word[-1] in "=?" else "" for word in _SBATCH_TABLE.split()}
# What to use instead of the options that a run's job script sets, or that would break what cesres-ctl knows
# of the job: an extra line may not give them (the last #SBATCH line of an option wins).
_OWNED_BY_USE = {
    "--partition": "partition",
    "--time": "time",
    "--cpus": "cpus-per-task",
    "--mem": "mem mem-per-cpu",
    "--account": "account",
    "--qos": "qos",
    "--mail": "mail-user mail-type",
    "--name": "job-name",
    "--gpus": "gres gpus gpus-per-node gpus-per-socket gpus-per-task cpus-per-gpu mem-per-gpu",
    "nothing: CESReS runs as one task on one node (its threads use --cpus)": "nodes ntasks ntasks-per-core "
    "ntasks-per-gpu ntasks-per-node ntasks-per-socket ntasks-per-tres tasks-per-node",
    "nothing: the job's log and files are in its run directory": "output error input chdir",
    "nothing: the job script copies the results back on its own time-limit warning": "signal",
    "cesres-ctl sweep (a run is one job)": "array",
    "--cluster (cesres-ctl follows the job on the cluster it submits to)": "cluster clusters",
    "nothing: cesres-ctl runs sbatch itself": "wrap parsable test-only wait help usage version",
    "nothing: the job runs as you": "uid gid",
}
_OWNED = {name: use for use, names in _OWNED_BY_USE.items() for name in names.split()}
# The options that only mean something to a job with GPUs.
_GPU_OPTIONS = frozenset({"gpu-bind", "gpu-freq", "gres-flags"})
# A value on an #SBATCH line: sbatch splits the line itself, so no space, quote or newline may end it early.
_SBATCH_LINE = re.compile(r"^--(?P<name>[a-z][a-z0-9-]*)(?:=(?P<value>[A-Za-z0-9_.@,:+=/%-]+))?$")


def sbatch_option(prefix: str) -> str:
    """The sbatch option that `--<prefix>` names, as getopt_long resolves it: its exact name, else the one
    option it is a prefix of; RuleError when it names none or several."""
    if prefix in SBATCH_OPTIONS:
        return prefix
    found = sorted(name for name in SBATCH_OPTIONS if name.startswith(prefix))
    if not found:
        raise RuleError(f"--{prefix} is not an option of sbatch")
    if len(found) > 1:
        raise RuleError(f"--{prefix} is ambiguous for sbatch: {', '.join('--' + name for name in found)}")
    return found[0]


def check_extra_sbatch(line: object, *, partition: Partition, gpus: int, seconds: int, cluster: str) -> str:
    """An extra `#SBATCH` option as the job script writes it (`--option` or `--option=value`, its full name),
    if sbatch knows it, cesres-ctl does not set it itself, and it fits the run; else RuleError."""
    text = str(line).strip()
    text = text[len("#SBATCH") :].strip() if text.startswith("#SBATCH") else text
    match = _SBATCH_LINE.match(text)
    if not match:
        raise RuleError(
            f"extra sbatch option {str(line)!r} must look like --option or --option=value "
            "(no spaces, quotes or newlines)"
        )
    name, value = sbatch_option(match["name"]), match["value"]
    if name in _OWNED:
        raise RuleError(f"extra sbatch option --{match['name']} (--{name}) is set by cesres-ctl: use {_OWNED[name]}")
    takes = SBATCH_OPTIONS[name]
    if takes == "=" and value is None:
        raise RuleError(f"extra sbatch option --{name} needs a value (--{name}=VALUE)")
    if takes == "" and value is not None:
        raise RuleError(f"extra sbatch option --{name} takes no value")
    if name in _GPU_OPTIONS and gpus < 1:
        where = f"partition {partition.name} of {cluster} has no GPUs" if partition.gpus == 0 else "the run asks none"
        raise RuleError(f"extra sbatch option --{name} is for GPUs, and {where}")
    if name == "time-min" and slurm_seconds(value) > seconds:
        raise RuleError(f"extra sbatch option --time-min={value} is over the run's time {format_seconds(seconds)}")
    return f"--{name}" if value is None else f"--{name}={value}"


# --- runs: names, directories, files ---------------------------------------------------------------------

_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}"
_RUN_NAME = re.compile(rf"^{_NAME}$")
RUNS_DIR = "runs"  # under the CESReS checkout on the cluster
# The runs' data files, one per content (named by its sha256); each run's inputs/ holds hard links to them.
STORE_DIR = f"{RUNS_DIR}/.store"
JOBID_FILE = "jobid"  # the run's current job id
EXIT_CODE_FILE = "exit_code"  # the model's exit code, written by the job script


def check_run_name(name: str) -> str:
    if not _RUN_NAME.match(name):
        raise RuleError(
            f"run name {name!r} must be 1-40 letters, digits, '.', '_' or '-' and start with a letter or digit"
        )
    return name


_RUN_ID = re.compile(rf"^{_NAME}-[0-9a-f]{{10}}$")


def is_run_id(text: str) -> bool:
    """Whether `text` has the form of a run id (run_id()): a directory of runs/ that train made."""
    return bool(_RUN_ID.match(text))


def run_dir(root: str, run_id: str) -> str:
    """The run's directory on the cluster: its submit directory, which holds everything of the run."""
    return f"{root.rstrip('/')}/{RUNS_DIR}/{run_id}"


def run_id(name: str, spec_hash: str, code_version: str, cluster_sha256s: list[str]) -> str:
    """The run's id: its name and 10 hex digits of what it is made of. spec_hash covers everything
    cesres-ctl knows (config, local data checksums, resources, --new's nonce); the cluster adds the code
    version and the checksums of the data files that were already there."""
    digest = hashlib.sha256(":".join([spec_hash, code_version, *cluster_sha256s]).encode("utf-8")).hexdigest()
    return f"{name}-{digest[:10]}"


# A sweep's directory: its array job script and its list of points (each point is a run of runs/).
SWEEPS_DIR = f"{RUNS_DIR}/.sweeps"


def sweep_dir(root: str, sweep_id: str) -> str:
    """Where a sweep's job array is submitted from (its points are runs of their own, in runs/)."""
    return f"{root.rstrip('/')}/{SWEEPS_DIR}/{sweep_id}"


def sweep_id(name: str, sweep_hash: str, code_version: str, cluster_sha256s: list[str]) -> str:
    """A sweep's id: `sweep-` and what run_id() would make of the whole sweep (never a run's id or name)."""
    return "sweep-" + run_id(name, sweep_hash, code_version, cluster_sha256s)


def store_dir(root: str) -> str:
    """The content-addressed store of the runs' data files on the cluster."""
    return f"{root.rstrip('/')}/{STORE_DIR}"


# A run directory: the config the model reads, its data files (hard links into the store), and the results
# the job script copies back. The job runs in a scratch copy of the code, the run's files under RUN_SUBDIR.
RUN_CONFIG_FILE = "config.yaml"
RUN_SUBMITTED_FILE = "config.submitted.yaml"  # the config as the user wrote it, kept beside the one the model reads
JOB_SCRIPT_FILE = "job.sbatch"
RUN_INPUTS_DIR = "inputs"
RUN_RESULTS_DIR = "results"
RUN_SUBDIR = "cesres_run"
SCRATCH_RESULTS = f"{RUN_SUBDIR}/{RUN_RESULTS_DIR}"  # where the model writes (its serialization_dir)
# The data files a run may stage (a prediction stages its snippets as evaluation and the weights as weights),
# each named in inputs/ by its key and the suffix of its local file, if a plain one.
INPUT_NAMES = ("training", "validation", "evaluation", "weights")
_INPUT_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,10}$")


def staged_name(key: str, suffix: str) -> str:
    """The name in the run's inputs/ of its data file `key` whose local file ends in `suffix`."""
    return key + (suffix if _INPUT_SUFFIX.match(suffix) else "")


def is_staged_name(name: object) -> bool:
    """Whether `name` is one that staged_name() makes."""
    key, dot, suffix = str(name).partition(".")
    return key in INPUT_NAMES and (not dot or bool(_INPUT_SUFFIX.match(dot + suffix)))


# A run's spec hash: what cesres-ctl sends to name the run (hex digits of a sha256).
_SPEC_HASH = re.compile(r"^[0-9a-f]{16,64}$")


def is_spec_hash(text: object) -> bool:
    return isinstance(text, str) and bool(_SPEC_HASH.match(text))


# A Hugging Face model id, as the cluster's cache stores it: NAME or ORG/NAME.
_MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")


def is_model_id(text: object) -> bool:
    return isinstance(text, str) and bool(_MODEL_ID.match(text))


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks (data sets and weights may be large): the name of a data
    file in the store, computed on this machine for a local file and on the cluster for one already there.
    One of the two functions here that read files (code_digest)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# The collection's code that a setup runs: a setup that other code recorded as done is not trusted
# (roles/cesres_unchanged; cesres-ctl setup's short cut).
CODE_DIRS = ("playbooks", "plugins", "roles")


def code_digest(root: Path) -> str:
    """The SHA-256 of the collection's code under `root` (CODE_DIRS): each file's path and content, in order.
    The one other function here that reads files (about 1 MB: a few ms)."""
    digest = hashlib.sha256()
    for top in CODE_DIRS:
        files = sorted(path for path in (root / top).rglob("*") if path.is_file() and "__pycache__" not in path.parts)
        for path in files:
            digest.update(b"%s\0%s\0" % (path.relative_to(root).as_posix().encode(), path.read_bytes()))
    return digest.hexdigest()


RUN_ENV_FILE = "run.env"  # the run's id and cluster paths, sourced by the job script
RUN_ENV_KEYS = ("run_id", "code_dir", "venv", "hf_home")


def run_env_text(values: Mapping[str, str]) -> str:
    """run.env: one shell-quoted assignment per key of RUN_ENV_KEYS, the job script's only cluster values."""
    return "".join(f"{key}={shlex.quote(str(values[key]))}\n" for key in RUN_ENV_KEYS)


LOG_GLOB = "slurm-*.out"  # every job's log in a run directory (log_name)
# The setup's mark that a virtualenv is complete: written last, after pip, pip check and the import check.
VENV_STAMP = ".cesres-ready"


def log_name(job_id: str) -> str:
    """The Slurm log of a job, in the run directory (#SBATCH --output=slurm-%j.out)."""
    return f"slurm-{job_id}.out"


# --- Slurm job states -------------------------------------------------------------------------------------

# States after which a job never changes again.
TERMINAL_STATES = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "OUT_OF_MEMORY",
        "NODE_FAIL",
        "PREEMPTED",
        "BOOT_FAIL",
        "DEADLINE",
        "REVOKED",
    }
)
# A run whose job ended in one of these is submitted again by `train` with the same inputs; a run whose
# job is in any other state (live, completed, or unknown: never risk a duplicate) keeps it.
RESUBMIT_STATES = TERMINAL_STATES - {"COMPLETED"}
UNKNOWN_STATE = "UNKNOWN"


def killed_by_signal(exit_code: str) -> bool:
    """An exit status of 128 + N: the shell's way of saying that signal N ended the job script."""
    return exit_code.isdigit() and int(exit_code) > 128


def _first_word(text: str | None) -> str | None:
    return None if text is None else next(iter(text.split()), "")


def job_state(queue: str | None, accounting: str | None, exit_code: str) -> tuple[str, str]:
    """A job's state and which source said it: the one rule of the CLI (status, runs, train --wait) and of the
    cluster's modules (cesres_run: whether a run is submitted again; cesres_prune: whether it may go).

    queue: the job's state in squeue; "" when the controller answered without the job (squeue forgets a job
    MinJobAge after it ended), None when the controller did not answer. accounting: its state in sacct; ""
    when sacct has no record of it yet (slurmdbd lags behind a job's end), None when there is no accounting
    to ask (sacct failed). exit_code: the first line of the run's exit_code file, which the job script writes
    as it ends ("" before).

    The source is "squeue", "sacct", "exit_code file" or "". A job that may still run is never in
    RESUBMIT_STATES: when only the exit_code file speaks, a failure is FAILED only where nothing else will
    ever say more (no accounting, and the controller no longer lists the job) and the job script was not
    killed by a signal (scancel, the time limit, a preemption that may requeue it); else UNKNOWN, which
    keeps the job.
    """
    queue, accounting = _first_word(queue), _first_word(accounting)
    if queue:
        return queue, "squeue"
    if accounting:
        return accounting, "sacct"
    if exit_code == "0":
        # The model succeeded: whatever accounting says later, the run is done.
        return "COMPLETED", "exit_code file"
    if exit_code and queue is not None and accounting is None and not killed_by_signal(exit_code):
        return "FAILED", "exit_code file"
    return UNKNOWN_STATE, "exit_code file" if exit_code else ""


def may_resubmit(job: str, state: str) -> bool:
    """Whether a run is submitted again: it has no job, or its job ended without completing. A live,
    completed or unknown job is kept: never risk a duplicate."""
    return not job or state in RESUBMIT_STATES


# --- the environment the CESReS program runs with (its job, and setup's checks of it) -------------------

# transformers imports TensorFlow whenever it finds it (its GLUE processors, which allennlp imports), and the
# CÉCI module set loads TensorFlow: CESReS is a PyTorch program, so transformers is told not to. No TensorFlow
# start-up and no second CUDA runtime initialised in every job; in the sandbox, whose TensorFlow is a stand-in
# that fails when imported, a job or a setup that imported it would fail.
PROGRAM_ENV = {"USE_TF": "0"}


# --- the repository that setup deploys (git runs on the cluster with these as operands) --------------------

# The transports git may use for the repository: its own allow-list (GIT_ALLOW_PROTOCOL) names the same ones.
# Remote helpers ("ext::CMD", "fd::N", "<helper>::<address>") run commands or read descriptors: never.
GIT_PROTOCOLS = ("file", "git", "http", "https", "ssh")
_URL_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)(?P<sep>::|://)")
# git check-ref-format's rules that matter for an operand: no option, no revision syntax, no whitespace.
_GIT_REF = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./+@-]*$")


def repo_url_error(url: str) -> str | None:
    """Why git must not be given `url` as the repository to deploy, in a few words; None when it may."""
    if not url:
        return "is empty"
    if url.startswith("-"):
        return "starts with '-' (git would read it as an option)"
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        return "contains whitespace or a control character"
    scheme = _URL_SCHEME.match(url)
    if scheme and scheme["sep"] == "::":
        return f"names the remote helper {scheme['scheme']!r} (it runs commands): use a URL or a path"
    if scheme and scheme["scheme"].lower().replace("git+ssh", "ssh").replace("ssh+git", "ssh") not in GIT_PROTOCOLS:
        return f"uses the transport {scheme['scheme']!r}: one of {', '.join(GIT_PROTOCOLS)} (or a path)"
    return None


def git_ref_error(version: str) -> str | None:
    """Why `version` is no branch, tag or commit name that git may be given, in a few words; None when valid."""
    if not version:
        return "is empty"
    if version.startswith("-"):
        return "starts with '-' (git would read it as an option)"
    if not _GIT_REF.match(version) or ".." in version or "//" in version or version.endswith((".", "/", ".lock")):
        return "is not a branch, tag or commit name"
    return None


def check_repo_source(url: str, version: str) -> None:
    """RuleError naming the setting when the repository URL or its version may not reach git."""
    for key, value, error in (
        ("cesres_repo_url", url, repo_url_error(url)),
        ("cesres_repo_version", version, git_ref_error(version)),
    ):
        if error:
            raise RuleError(f"{key} {value!r} {error}")


# --- the sandbox cluster's root directory ---------------------------------------------------------------

# The sandbox writes its root, unquoted, into slurm.conf, Lmod's module path and sshd's and ssh's
# configurations, and ssh expands '%' in paths: only these characters survive all of them.
_SANDBOX_ROOT = re.compile(r"^/[A-Za-z0-9._/+@-]*$")


def sandbox_root_error(root: str) -> str | None:
    """Why `root` cannot be the sandbox's root directory, in a few words; None when it can."""
    if not _SANDBOX_ROOT.match(root):
        return "must be an absolute path of letters, digits and . _ / + @ - (the sandbox's configuration files hold it)"
    if root.rstrip("/") in ("", "/var", "/var/lib", "/home", "/tmp"):  # noqa: S108 - refused, not used
        return "must be a directory of its own, not a system directory"
    return None


# --- paths on the cluster: ~ and $VARIABLES of the login shell --------------------------------------------

_VARIABLE = re.compile(r"\$(?:\{(?P<braced>[^}]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")
_VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def path_variables(path: str) -> list[str]:
    """The names of the variables a configured path refers to (`$NAME`, `${NAME}`), in order."""
    names = []
    for match in _VARIABLE.finditer(path):
        name = match.group("braced") if match.group("braced") is not None else match.group("bare")
        if name not in names:
            names.append(name)
    return names


def expand_path(path: str, env: Mapping[str, str], *, what: str = "path", relative_to: str = "") -> str:
    """A configured cluster path with `~`, `$NAME` and `${NAME}` replaced from the login shell's `env`.

    As a login shell would read it, without running anything: one pass (a value that holds `$X` stays
    as it is: no loop on a variable that refers to itself), a lone `$` or a `}` are characters. A
    variable that is unset, or an invalid `${…}`, is an error naming it: an unset `$GLOBALSCRATCH`
    must not quietly make `/cesres`. A relative result is relative to `relative_to` (absolute), else
    to `$HOME`, as ssh sees it.
    """
    home = env.get("HOME", "")
    if path == "~" or path.startswith("~/"):
        if not home:
            raise RuleError(f"{what} {path!r}: HOME is not set on the cluster")
        path = home + path[1:]

    def replace(match: re.Match[str]) -> str:
        name = match.group("braced") if match.group("braced") is not None else match.group("bare")
        if not _VARIABLE_NAME.match(name):
            raise RuleError(f"{what} {path!r}: ${{{name}}} is not a variable name")
        if name not in env:
            raise RuleError(f"{what} {path!r}: the variable ${name} is not set in a login shell on the cluster")
        return env[name]

    expanded = _VARIABLE.sub(replace, path)
    if not expanded:
        raise RuleError(f"{what} is empty")
    if not expanded.startswith("/") and relative_to:
        expanded = f"{relative_to.rstrip('/')}/{expanded}"
    if not expanded.startswith("/"):
        if not home:
            raise RuleError(f"{what} {path!r} is relative and HOME is not set on the cluster")
        expanded = f"{home.rstrip('/')}/{expanded}"
    return expanded


# --- paths on this machine -----------------------------------------------------------------------------


def expand_user(path: str, what: str) -> Path:
    """A path of this machine with a leading `~` or `~NAME` expanded; RuleError for a user it does not know."""
    try:
        return Path(path).expanduser()
    except RuntimeError:
        raise RuleError(f"{what} {path!r}: unknown user in ~NAME; give the path") from None


# --- plain ssh to a cluster, as Ansible reaches it -------------------------------------------------------

# The inventory's connection variables that plain ssh (and rsync -e) needs, in order of preference.
SSH_VARIABLES = (
    "ansible_host",
    "ansible_ssh_host",
    "ansible_user",
    "ansible_ssh_user",
    "ansible_port",
    "ansible_ssh_port",
    "ansible_ssh_common_args",
    "ansible_ssh_extra_args",
    "ansible_ssh_private_key_file",
    "ansible_private_key_file",
)


# How long a master connection outlives its last use: the next command of a session reuses it.
CONTROL_PERSIST = "120s"


def multiplex_options(control_dir: str) -> list[str]:
    """ssh options sharing one master connection per cluster under `control_dir`: Ansible's control_path_dir
    (ansible.cfg names its sockets %C too), so Ansible, rsync and cesres-ctl's own ssh share one."""
    return [
        "-o",
        "ControlMaster=auto",
        "-o",
        f"ControlPath={control_dir.rstrip('/')}/%C",
        "-o",
        f"ControlPersist={CONTROL_PERSIST}",
    ]


@dataclass(frozen=True)
class SshTarget:
    """How plain ssh reaches a cluster: what Ansible's connection variables say, nothing dropped."""

    host: str
    user: str | None = None
    port: int | None = None
    options: tuple[str, ...] = ()  # ssh options (ssh_common_args, ssh_extra_args, -i KEY)

    def argv(self, control_dir: str = "") -> list[str]:
        """`ssh` and its options, without the host: the start of an ssh command, or rsync's -e; with a
        control_dir, through the master connection there (multiplex_options)."""
        argv = ["ssh", *self.options, *(multiplex_options(control_dir) if control_dir else [])]
        if self.port:
            argv += ["-p", str(self.port)]
        if self.user:
            argv += ["-l", self.user]
        return argv


def ssh_target(values: Mapping[str, Any], default_host: str) -> SshTarget:
    """The SshTarget of an inventory host from its (templated) connection variables."""

    def get(*keys: str) -> str | None:
        for key in keys:
            if values.get(key) not in (None, ""):
                return str(values[key])
        return None

    options: list[str] = []
    for key in ("ansible_ssh_common_args", "ansible_ssh_extra_args"):
        value = get(key)
        if value:
            options += shlex.split(value)
    key_file = get("ansible_ssh_private_key_file", "ansible_private_key_file")
    if key_file:
        options += ["-i", str(expand_user(key_file, "the ssh key file (ansible_ssh_private_key_file)"))]
    port = get("ansible_port", "ansible_ssh_port")
    return SshTarget(
        host=get("ansible_host", "ansible_ssh_host") or default_host,
        user=get("ansible_user", "ansible_ssh_user"),
        port=int(port) if port else None,
        options=tuple(options),
    )
