# -*- coding: utf-8 -*-
"""What the setup roles' modules (cesres_probe, cesres_git, cesres_venv, cesres_hf_cache) do on the cluster:
read the state of the code, the virtualenv, the model cache and the components, and change them.

Runs ON THE CLUSTER, in Ansible's modules (Python >= 3.10, rules.CLUSTER_PYTHON; the standard library only).
No login shell: commands that need Lmod's modules (git, the venv's python) run with an environment that the
play's one login shell captured (roles/cesres_python, fact cesres_python_probe.module_envs), passed in as
`env`. What runs in the virtualenv, with its own Python, is a module_utils of its own too
(requirements_policy.py, cache_models.py), run as a file (program_file). Functions return plain data; a
refusal or an error is a `SetupError` carrying one line.
"""

import contextlib
import hashlib
import os
import re
import subprocess
import tempfile
import threading
from typing import Any

from ansible_collections.cesres.ctl.plugins.module_utils import cache_models as cache_program
from ansible_collections.cesres.ctl.plugins.module_utils import requirements_policy as policy_program
from ansible_collections.cesres.ctl.plugins.module_utils.rules import VENV_STAMP, RuleError, expand_path

# Present from the start of an installation into a venv to its success: a venv that holds it when no
# installer is running was left half done (pip failed, or was killed) and is built again from scratch.
VENV_INCOMPLETE = ".cesres-incomplete"
VENV_LOCK = ".cesres-install.lock"
PUSH_MANIFEST = ".cesres-push.sha256"
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def decode_env(text):
    """The environment that the filter cesres_module_env encoded ("" : None, this process's)."""
    if not text:
        return None
    return dict((str(k), str(v)) for k, v in _decode(text).items())


def decode_envs(text):
    """What the filter cesres_probe_envs encoded: {"login": env, "modules": {key: env}, "errors": {key: line}}."""
    return _decode(text)


def _decode(text):
    import base64
    import json

    return json.loads(base64.b64decode(text).decode("utf-8"))


class SetupError(Exception):
    """One line for the user; `kind` says which (e.g. "refused" for local changes, "failed" otherwise)."""

    def __init__(self, message, kind="failed"):
        super().__init__(message)
        self.kind = kind


def environ(env):
    """`env` as a new dict; this process's environment when it is empty or None."""
    return dict(env) if env else dict(os.environ)


def run(argv, env=None, cwd=None, input_text=None):
    """(rc, stdout, stderr) of argv, with `env` (None: this process's) and no terminal prompt."""
    full = dict(env if env is not None else os.environ)
    full["GIT_TERMINAL_PROMPT"] = "0"
    try:
        done = subprocess.run(
            argv,
            env=full,
            cwd=cwd,
            input=input_text,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            universal_newlines=True,
            check=False,
        )
    except OSError as exc:
        return 127, "", "%s: %s" % (argv[0], exc.strerror)
    return done.returncode, done.stdout, done.stderr


def last_line(text, default=""):
    lines = [line for line in (text or "").splitlines() if line.strip()]
    return lines[-1].strip() if lines else default


# --- the code: git ---------------------------------------------------------------------------------


# The transports git may use (cesres_ctl.rules.GIT_PROTOCOLS): remote helpers such as ext:: run commands.
GIT_ALLOW_PROTOCOL = "file:git:http:https:ssh"


def _git(args, env, cwd=None):
    # The configuration cannot widen the transports: GIT_ALLOW_PROTOCOL overrides git's protocol.* settings.
    return run(["git"] + list(args), env=dict(environ(env), GIT_ALLOW_PROTOCOL=GIT_ALLOW_PROTOCOL), cwd=cwd)


def _refuse_options(url, version):
    """Values of the configuration are git's operands, never its options (the CLI and the role refuse them
    first by cesres_ctl.rules.check_repo_source; this holds for a module run by other means too)."""
    for key, value in (("cesres_repo_url", url), ("cesres_repo_version", version)):
        if not value or value.startswith("-") or any(ch.isspace() for ch in value):
            raise SetupError("%s %r is not a repository URL or version git may be given" % (key, value), "refused")


def _remote_commit(remote, url, version, env, cwd=None):
    """The commit that `version` names at `remote` ("" when it is no branch or tag there)."""
    rc, out, _err = _git(["ls-remote", "--", remote, version], env, cwd)
    if rc != 0:
        raise SetupError("cannot reach the repository %s from the cluster" % url)
    refs = dict((ref, commit) for commit, _, ref in (line.partition("\t") for line in out.splitlines()))
    for ref in ("refs/tags/%s^{}" % version, "refs/tags/%s" % version, "refs/heads/%s" % version):
        if refs.get(ref):
            return refs[ref]
    return ""


def _head(dest, env):
    rc, out, _err = _git(["-C", dest, "rev-parse", "--verify", "-q", "HEAD"], env)
    return out.strip() if rc == 0 and out.strip() else None


def _has_commit(dest, version, env):
    if not _COMMIT.match(version):
        return False
    return _git(["-C", dest, "cat-file", "-e", version + "^{commit}"], env)[0] == 0


def _dirty(dest, env):
    _rc, out, _err = _git(
        ["-C", dest, "status", "--porcelain", "--untracked-files=no"], dict(env, GIT_OPTIONAL_LOCKS="0")
    )
    return [line[3:] for line in out.splitlines() if line.strip()][:20]


def _not_empty(path):
    try:
        return bool(os.listdir(path))
    except OSError:
        return False


def _refuse_dirty(dest, env, force):
    if not force:
        dirty = _dirty(dest, env)
        if dirty:
            raise SetupError(
                "local changes in %s on the cluster would be overwritten: %s; commit or stash them, or rerun with "
                "cesres_repo_force=true" % (dest, " ".join(dirty)),
                "refused",
            )


def _refuse_foreign(dest, force):
    if os.path.exists(dest) and _not_empty(dest) and not force:
        raise SetupError(
            "%s exists on the cluster and is not a git checkout: move it away or rerun with cesres_repo_force=true"
            % dest,
            "refused",
        )


def _require_git(env):
    if run(["git", "version"], env=env)[0] != 0:
        raise SetupError("no working git on the cluster (set cesres_repo_git_module)")


def git_plan(dest, url, version, force, env):
    """Whether a sync would change `dest`, changing nothing (not even .git: no fetch, no index refresh).

    {"changed": bool, "commit": the commit to deploy (else `version` when unknown), "path": dest}; local
    changes or a foreign directory that the sync would overwrite raise SetupError("refused"). Commits not on
    the remote are not looked for (that needs a fetch): the sync itself refuses them.
    """
    _refuse_options(url, version)
    env = environ(env)
    _require_git(env)
    env["GIT_OPTIONAL_LOCKS"] = "0"
    if not os.path.isdir(os.path.join(dest, ".git")):
        _refuse_foreign(dest, force)
        target = _remote_commit(url, url, version, env)
        return {"changed": True, "commit": target or version, "path": dest}
    old = _head(dest, env)
    target = version if _has_commit(dest, version, env) else _remote_commit(url, url, version, env)
    if target and target == old:
        return {"changed": False, "commit": target, "path": dest}
    if old is not None:
        _refuse_dirty(dest, env, force)
    return {"changed": True, "commit": target or version, "path": dest}


def git_sync(dest, url, version, force, env):
    """Clone or update `dest` at `version`: {"changed", "commit", "path"}; refusals as in git_plan."""
    _refuse_options(url, version)
    env = environ(env)
    _require_git(env)
    if not os.path.isdir(os.path.join(dest, ".git")):
        if os.path.exists(dest) and _not_empty(dest):
            _refuse_foreign(dest, force)
            if _git(["-C", dest, "init", "--quiet"], env)[0] != 0:
                raise SetupError("git init failed in %s" % dest)
            if _git(["-C", dest, "remote", "add", "--", "origin", url], env)[0] != 0:
                _git(["-C", dest, "remote", "set-url", "--", "origin", url], env)
        else:
            parent = os.path.dirname(dest.rstrip("/")) or "/"
            try:
                os.makedirs(parent, exist_ok=True)
            except OSError as exc:
                raise SetupError("cannot create %s: %s" % (parent, exc.strerror)) from None
            rc, _out, err = _git(["clone", "--quiet", "--no-checkout", "--", url, dest], env)
            if not os.path.isdir(os.path.join(dest, ".git")):
                raise SetupError("git clone %s failed%s" % (url, (": " + last_line(err)) if err.strip() else ""))
        old = None
    else:
        old = _head(dest, env)
    rc, out, _err = _git(["remote", "get-url", "origin"], env, dest)
    if out.strip() != url and _git(["remote", "set-url", "--", "origin", url], env, dest)[0] != 0:
        _git(["remote", "add", "--", "origin", url], env, dest)
    target = version if _has_commit(dest, version, env) else _remote_commit("origin", url, version, env, dest)
    if target and target == old:
        return {"changed": False, "commit": target, "path": dest}
    if old is not None:
        _refuse_dirty(dest, env, force)
    if _git(["fetch", "--quiet", "--tags", "origin"], env, dest)[0] != 0:
        raise SetupError("git fetch from %s failed" % url)
    if not target:
        rc, out, _err = _git(["rev-parse", "--verify", "-q", version + "^{commit}"], env, dest)
        if rc != 0 or not out.strip():
            raise SetupError("version %s not found in %s" % (version, url))
        target = out.strip()
    if old is not None and not force:
        _rc, out, _err = _git(["rev-list", "-n", "5", "HEAD", "--not", "--remotes", "--tags"], env, dest)
        unpushed = [line[:12] for line in out.split()]
        if unpushed:
            raise SetupError(
                "commits in %s on the cluster are not on the remote: %s; push them, or rerun with "
                "cesres_repo_force=true" % (dest, " ".join(unpushed)),
                "refused",
            )
    if _git(["show-ref", "--verify", "-q", "refs/remotes/origin/" + version], env, dest)[0] == 0:
        rc, _out, err = _git(["checkout", "--quiet", "--force", "-B", version, target], env, dest)
        _git(["branch", "--quiet", "--set-upstream-to", "origin/" + version], env, dest)
    else:
        rc, _out, err = _git(["checkout", "--quiet", "--force", "--detach", target], env, dest)
    if _head(dest, env) != target:
        raise SetupError(
            "checkout of %s (%s) failed in %s%s"
            % (version, target, dest, (": " + last_line(err)) if err.strip() else "")
        )
    return {"changed": True, "commit": target, "path": dest}


# --- the code: a pushed checkout -------------------------------------------------------------------


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def push_state(dest, env=None):
    """What a push into `dest` would overwrite.

    {"path", "exists", "manifest": a record of the last push is there, "manifest_sha256": its digest,
    "modified": files changed or deleted since (that record), "foreign": not empty and not deployed by
    cesres-ctl, "gitdirty": modified tracked files of a git checkout}.
    """
    state = {
        "path": dest,
        "exists": os.path.isdir(dest),
        "manifest": False,
        "modified": [],
        "foreign": False,
        "gitdirty": [],
    }
    if not state["exists"]:
        return state
    record = os.path.join(dest, PUSH_MANIFEST)
    if os.path.isfile(record):
        state["manifest"] = True
        # The role compares it with the manifest of the local checkout: equal, nothing to push.
        state["manifest_sha256"] = sha256_of(record)
        with open(record, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                digest, sep, name = line.rstrip("\n").partition("  ")
                if not sep:
                    continue
                try:
                    same = sha256_of(os.path.join(dest, name)) == digest
                except OSError:
                    same = False
                if not same:
                    state["modified"].append(name)
    elif os.path.isdir(os.path.join(dest, ".git")):
        state["gitdirty"] = _dirty(dest, environ(env))
    elif _not_empty(dest):
        state["foreign"] = True
    return state


# --- the virtualenv --------------------------------------------------------------------------------


def python_version(env):
    """python3's version with the modules of `env` loaded."""
    rc, out, _err = run(["python3", "-c", "import sys; print(sys.version.split()[0])"], env=env)
    if rc != 0 or not out.strip():
        raise SetupError("python3 does not run with the modules loaded")
    return out.strip()


def venv_hash(config, version, requirements):
    """The ready stamp's content: the configuration, the Python version, the module policy that installed
    the venv (requirements_policy.py, as sent with this module) and the requirements file."""
    with open(requirements, "rb") as handle:
        text = handle.read()
    policy = hashlib.sha256(_source(policy_program)).hexdigest()
    head = ("cesres_venv v2\n%s\npython %s\npolicy %s\n" % (config, version, policy)).encode("utf-8")
    return hashlib.sha256(head + text).hexdigest()


def venv_state(venv, requirements, config, env, check=False):
    """{"path", "python", "hash", "state": ready|stale|missing|recreate|incomplete}; recreate: another Python,
    incomplete: an earlier installation did not finish (both: built again from scratch).

    In check mode (`check`), a requirements file that is not there is no error (cesres_repo has not deployed
    it yet): the hash is "none" and a venv cannot be ready.
    """
    env = environ(env)
    version = python_version(env)
    if os.access(requirements, os.R_OK):
        digest = venv_hash(config, version, requirements)
    elif check:
        digest = "none"
    else:
        raise SetupError("requirements file %s not found on the cluster (is the repository deployed?)" % requirements)
    cfg = os.path.join(venv, "pyvenv.cfg")
    if not os.path.exists(cfg):
        state = "missing"
    elif not _venv_matches(cfg, version) or run([os.path.join(venv, "bin", "python"), "-c", ""], env=env)[0] != 0:
        state = "recreate"
    elif os.path.exists(os.path.join(venv, VENV_INCOMPLETE)) and not _installing(venv):
        state = "incomplete"
    else:
        try:
            with open(os.path.join(venv, VENV_STAMP), encoding="utf-8") as handle:
                stamp = handle.read().strip()
        except OSError:
            stamp = ""
        state = "ready" if stamp == digest else "stale"
    return {"path": venv, "python": version, "hash": digest, "state": state}


def _installing(venv):
    """Whether an installer holds the venv's lock now."""
    import fcntl

    try:
        fd = os.open(os.path.join(venv, VENV_LOCK), os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def _venv_matches(cfg, version):
    pattern = re.compile(r"^version(_info)? *= *%s(\.|$| )" % re.escape(version))
    try:
        with open(cfg, encoding="utf-8", errors="replace") as handle:
            return any(pattern.match(line.rstrip("\n")) for line in handle)
    except OSError:
        return False


# --- the model cache and the components ------------------------------------------------------------


def venv_stamp(python):
    """The ready stamp of the venv whose interpreter is `python` ("" when it is not ready): what it holds
    names the venv's requirements and Python, and so the transformers that reads the model cache."""
    try:
        with open(os.path.join(os.path.dirname(os.path.dirname(python)), VENV_STAMP), encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def models_missing(home, models, stamp):
    """The ids of `models` ([id, revision] pairs) that HF_HOME/cesres-models.list does not record as proven by
    the venv whose ready stamp is `stamp`. Each transformers reads its own cache layout (4.20 its own files,
    4.22+ the hub's snapshots): a model that another venv cached is not cached for this one."""
    try:
        with open(os.path.join(home, cache_program.LIST), encoding="utf-8") as handle:
            recorded = set(line.rstrip("\n") for line in handle)
    except OSError:
        recorded = set()
    return [m for m, revision in models if not stamp or "%s %s %s" % (m, revision, stamp) not in recorded]


def dirs_missing(dest, subdirs):
    """Those of "" (dest itself) and `subdirs` (relative to dest) that are not directories, in that order."""
    missing = []
    for sub in [""] + [s for s in subdirs if s]:
        if sub not in missing and not os.path.isdir(os.path.join(dest, sub) if sub else dest):
            missing.append(sub)
    return missing


# --- the virtualenv: creating it and installing into it ------------------------------------------------


def _source(program):
    """The bytes of a module_utils file of this collection, wherever Ansible's import found it (a file, or
    the zip that Ansible sends a module in)."""
    return program.__loader__.get_data(program.__file__)


def write_program(program, directory):
    """The module_utils `program`, for another Python (the venv's) to run, as a file in `directory`: that
    Python cannot import it from where Ansible sent it (inside this module's zip). Returns its path."""
    path = os.path.join(directory, os.path.basename(program.__file__))
    with open(path, "wb") as handle:
        handle.write(_source(program))
    return path


@contextlib.contextmanager
def program_file(program):
    """write_program in a directory of its own, removed after the block."""
    with tempfile.TemporaryDirectory(prefix="cesres-") as directory:
        yield write_program(program, directory)


def venv_create(venv, create_command, env):
    """A fresh venv with the system site packages (an outdated one, and only a venv, is removed first)."""
    env = environ(env)
    import shlex
    import shutil

    if os.path.exists(os.path.join(venv, "pyvenv.cfg")):
        shutil.rmtree(venv)
    rc, _out, err = run(shlex.split(create_command) + ["--system-site-packages", venv], env=env)
    if rc != 0:
        raise SetupError("cannot create the virtualenv %s%s" % (venv, (": " + last_line(err)) if err.strip() else ""))


def _lock(path, wait_s, reports, venv):
    """The install lock of the venv, held by the returned descriptor (inherited by pip); None when another
    installer held it and we waited."""
    import fcntl
    import time

    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError:
        raise SetupError("cannot open the lock file in %s" % venv) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd, False
    except OSError:
        pass
    reports.append("waited for another installation into %s (a setup started elsewhere or interrupted)" % venv)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd, True
        except OSError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise SetupError(
                    "another installation into %s is still running after %d s; try again when it ends" % (venv, wait_s),
                    "locked",
                ) from None
            time.sleep(1)


def _requirement_count(lines):
    """How many of the plan's lines ask pip for a distribution (options do not)."""
    return sum(1 for line in lines if not line.startswith("-"))


def _install_plan(py, policy, requirements, plan_dir, protect, env, every):
    """The module policy's plan of `requirements` (requirements_policy.py plan), written into plan_dir."""
    import json

    args = [py, policy, "plan", requirements, plan_dir] + (["--all"] if every else [])
    for name in protect:
        args += ["--protect", name]
    rc, out, err = run(args, env=env)
    if rc != 0:
        raise SetupError("cannot apply the module policy to %s: %s" % (requirements, last_line(err)))
    try:
        return json.loads(out)
    except ValueError:
        raise SetupError("cannot read the module policy's plan") from None


def _pip_install(pip, py, policy, planned, requirements, venv, env, log, fd):
    """ONE pip run of the plan, its output appended to `log`; SetupError (pip, quota) when it fails."""
    filtered, constraints, pins = planned["requirements"], planned["constraints_file"], planned["pins_file"]
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(
            "== PIP_CONSTRAINT=%s pip install -r %s -c %s (from %s)\n" % (pins, filtered, constraints, requirements)
        )
        handle.flush()
        # Every pip of this installation, also one that a package's setup script starts, installs the
        # file's own versions (requirements_policy.py, "pins"); what such a script writes for Jupyter
        # (checklist's notebook extension) goes into the venv, not into the user's home.
        full = dict(
            env,
            GIT_TERMINAL_PROMPT="0",
            PIP_CONSTRAINT=pins,
            JUPYTER_DATA_DIR=os.path.join(venv, "share", "jupyter"),
            JUPYTER_CONFIG_DIR=os.path.join(venv, "etc", "jupyter"),
        )
        # The lock's descriptor goes to pip: if this process dies, pip keeps the lock until it ends.
        done = subprocess.run(
            pip + ["-r", filtered, "-c", constraints],
            env=full,
            stdout=handle,
            stderr=subprocess.STDOUT,
            pass_fds=(fd,),
            check=False,
        )
    if done.returncode == 0:
        return
    with open(log, encoding="utf-8", errors="replace") as handle:
        output = handle.read()
    if "Disk quota exceeded" in output:
        raise SetupError("disk quota exceeded while installing into %s (see %s on the cluster)" % (venv, log), "quota")
    _rc, why, _err = run([py, policy, "explain-conflict", log, "--requirements", requirements], env=env)
    why = (why.strip().splitlines() or [""])[0]
    raise SetupError(
        "cannot install %s: %s (pip output: %s on the cluster)" % (requirements, why or "pip failed", log), "pip"
    )


def _pip_check(py, policy, venv, env, log):
    """requirements_policy.py pip-check's answer ({"fatal", "reported"}), also appended to `log`."""
    import json

    _rc, out, err = run([py, policy, "pip-check"], env=env)
    try:
        check = json.loads(out)
    except ValueError:
        raise SetupError("cannot run pip check in %s: %s" % (venv, last_line(err, "no output"))) from None
    with open(log, "a", encoding="utf-8") as handle:
        handle.write("== pip check\n%s\n" % "\n".join(check["fatal"] + check["reported"]))
    return check


def _checks(py, policy, venv, env, log, entry, program_env):
    """pip check ({"fatal", "reported"}) and the import check of `entry` ((returncode, first failing import or
    ""), None when there is no entry or it is not there), side by side: both only read the venv, and the import
    check (the program's imports: torch, transformers...) takes as long as pip check. Both go to `log`."""
    importing = None
    if entry and os.path.isfile(entry):
        importing = subprocess.Popen(
            [py, policy, "imports", entry],
            env=dict(env, GIT_PYTHON_REFRESH="quiet", **(program_env or {})),
            cwd=os.path.dirname(entry),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            universal_newlines=True,
        )
    try:
        check = _pip_check(py, policy, venv, env, log)
    finally:
        out, err = importing.communicate() if importing else ("", "")
    if importing is None:
        return check, None
    with open(log, "a", encoding="utf-8") as handle:
        handle.write("== import check of %s\n%s" % (entry, err))
    return check, (importing.returncode, (out.strip().splitlines() or [""])[0])


def venv_install(
    venv, requirements, digest, env, protect=(), extra=(), cache="", entry="", wait_s=1800, program_env=None
):
    """Install `requirements` into the existing `venv` under the module policy (requirements_policy.py) with
    ONE pip run (of the lines not already met; again of every line when pip check then fails), then pip check
    and the import check of `entry` (every module it imports at its top, imported as the job will); mark the
    venv ready (its stamp holds `digest`) only after all of that, holding the venv's lock.

    {"installed": True} when this run installed; {"installed": False} when another installer, waited for,
    made it ready; "reports": lines to show (module versions kept, pip check outside the venv). Failures:
    SetupError with kinds pip, quota, check, locked, imports.
    """
    env = environ(env)
    reports: list[str] = []
    stamp = os.path.join(venv, VENV_STAMP)
    log = os.path.join(venv, "cesres-pip.log")
    plan_dir = os.path.join(venv, ".cesres-plan")
    py = os.path.join(venv, "bin", "python")
    fd, waited = _lock(os.path.join(venv, VENV_LOCK), wait_s, reports, venv)
    try:
        if waited:
            try:
                with open(stamp, encoding="utf-8") as handle:
                    if handle.read().strip() == digest:
                        return {"installed": False, "reports": reports}
            except OSError:
                pass
        if os.path.exists(stamp):
            os.remove(stamp)
        with open(os.path.join(venv, VENV_INCOMPLETE), "w", encoding="utf-8") as handle:
            handle.write("installing %s\n" % requirements)
        try:
            os.makedirs(plan_dir, exist_ok=True)
            # Beside the plan it writes, as a record of what planned this installation.
            policy = write_program(policy_program, plan_dir)
        except OSError:
            raise SetupError("cannot write in %s" % plan_dir) from None
        # Lines that what Python finds already meets are left to the last installation (a changed pin
        # installs that line only); when pip fails on the others, or pip check then finds the venv broken
        # (a dependency removed by hand since), pip gets every line, as a first installation does, and its
        # answer is the one reported.
        planned = _install_plan(py, policy, requirements, plan_dir, protect, env, every=False)
        reports += [item["message"] for item in planned.get("kept_module", [])] + list(planned.get("warnings", []))
        met = "already installed, not given to pip: %d of %d requirement lines of %s" % (
            len(planned.get("met", [])),
            len(planned.get("met", [])) + _requirement_count(planned["install"]),
            requirements,
        )
        if planned.get("met"):
            reports.append(met)
        pip = [py, "-m", "pip", "--disable-pip-version-check", "--no-input", "install"]
        if cache:
            pip += ["--cache-dir", cache]
        pip += list(extra)
        with open(log, "w", encoding="utf-8") as handle:
            handle.write("== %s\n" % met)
        checks = dict(py=py, policy=policy, venv=venv, env=env, log=log, entry=entry, program_env=program_env)
        check = imports = None
        try:
            if _requirement_count(planned["install"]):
                _pip_install(pip, py, policy, planned, requirements, venv, env, log, fd)
            check, imports = _checks(**checks)
        except SetupError as exc:
            if exc.kind != "pip" or not planned.get("met"):
                raise
        if check is None or (check["fatal"] and planned.get("met")):
            planned = _install_plan(py, policy, requirements, plan_dir, protect, env, every=True)
            _pip_install(pip, py, policy, planned, requirements, venv, env, log, fd)
            check, imports = _checks(**checks)
        reports += check["reported"]
        if check["fatal"]:
            raise SetupError(
                "pip check fails in %s: %s (see %s on the cluster)" % (venv, check["fatal"][0], log), "check"
            )
        extensions = os.path.join(venv, "share", "jupyter", "nbextensions")
        if os.path.isdir(extensions) and os.listdir(extensions):
            reports.append(
                "notebook extensions in the venv (%s), not in your home: %s"
                % (extensions, ", ".join(sorted(os.listdir(extensions))))
            )
        if entry and imports is None:
            raise SetupError("import check: the entry point %s is not on the cluster" % entry, "imports")
        if imports is not None:
            rc, first = imports
            if rc != 0:
                raise SetupError("import check of %s failed to run (see %s on the cluster)" % (entry, log), "imports")
            if first:
                raise SetupError(
                    "import check: %s cannot import %s with the modules loaded (see %s on the cluster)"
                    % (entry, first, log),
                    "imports",
                )
        with open(stamp, "w", encoding="utf-8") as handle:
            handle.write(digest + "\n")
        os.remove(os.path.join(venv, VENV_INCOMPLETE))
        return {"installed": True, "reports": reports}
    finally:
        os.close(fd)


# --- the model cache -------------------------------------------------------------------------------


def cache_models(home, python, endpoint, models, env, program_env=None):
    """Cache `models` ([id, revision] pairs) in HF_HOME `home` with the venv's own loaders (cache_models.py,
    run by the venv's `python`), prove that they load offline, then record them."""
    env = environ(env)
    if not os.access(python, os.X_OK):
        raise SetupError("no Python at %s: run the virtualenv's role (cesres_venv) first" % python)
    try:
        os.makedirs(home, exist_ok=True)
    except OSError:
        raise SetupError("cannot create HF_HOME %s" % home) from None
    pairs = [word for pair in models for word in pair]
    # The cache a job reads: its script pins TRANSFORMERS_CACHE to transformers' default under HF_HOME, over
    # any that the login profile (and so this environment) sets.
    online = dict(env, HF_HOME=home, TRANSFORMERS_CACHE=os.path.join(home, "transformers"), **(program_env or {}))
    online.pop("HF_ENDPOINT", None)
    if endpoint:
        online["HF_ENDPOINT"] = endpoint
    # Offline as a job loads them: the same endpoint (transformers 4.20 names its cache files after the URL; the
    # job exports it too), no network.
    offline = dict(online, TRANSFORMERS_OFFLINE="1", HF_HUB_OFFLINE="1")
    with program_file(cache_program) as loader:
        rc, _out, err = run([python, loader, "load"] + pairs, env=online)
        if rc != 0:
            raise SetupError("cannot cache model %s" % last_line(err))
        rc, _out, err = run([python, loader, "load"] + pairs, env=offline)
        if rc != 0:
            raise SetupError("model cached but not loadable offline: %s" % last_line(err))
        stamp = venv_stamp(python)
        if not stamp:
            raise SetupError("the virtualenv of %s is not ready: run its role (cesres_venv) first" % python)
        if run([python, loader, "record", home, stamp] + pairs, env=online)[0] != 0:
            raise SetupError("cannot record the models in %s" % home)
    return [model_id for model_id, _revision in models]


# --- the play's one probe --------------------------------------------------------------------------


def probe_with(request, envs):
    """probe() as the play runs it once for all its roles (roles/cesres_python): each configured path expanded
    with the login environment by the rule that every role applies (rules.expand_path), each part run with the
    environment of its group of modules ("set"). `envs`: decode_envs of what the play's login shell read."""
    login, modules, errors = envs["login"], envs["modules"], envs["errors"]

    def expand(path, what):
        try:
            return expand_path(path, login, what=what)
        except RuleError as exc:
            raise SetupError(str(exc), "expand") from None

    def env_of(part):
        key = " ".join(part.get("set") or [])
        if not key:
            return login
        if key not in modules:
            raise SetupError(errors.get(key) or "the modules %s were not loaded" % key)
        return modules[key]

    return probe(request, expand, env_of)


def probe(request, expand, env_of):
    """The state of each part of `request` (repo, venv, hf_cache, data), changing nothing.

    expand(path, what): a configured path as the login shell means it (SetupError of kind "expand" when it
    cannot be); env_of(part): the environment of the part's modules. A part that cannot be read gets
    {"error": one line} (and "expand_error" when it is one of its paths), for its role to report.
    """
    parts = [(name, part) for name, part in sorted((request or {}).items()) if part]
    answers: dict[str, tuple[Any, Exception | None]] = {}

    def read(name, part):
        try:
            answers[name] = (_probe_part(name, part, expand, env_of), None)
        except SetupError as exc:
            answers[name] = ({"error": str(exc), "expand_error": exc.kind == "expand"}, None)
        except Exception as exc:  # raised below, in the caller's thread, as it was
            answers[name] = (None, exc)

    # Side by side: each part mostly waits on its own commands (git, python) and reads only its own paths.
    threads = [threading.Thread(target=read, args=part) for part in parts[1:]]
    for thread in threads:
        thread.start()
    if parts:
        read(*parts[0])
    for thread in threads:
        thread.join()
    state = {}
    for name, _part in parts:
        answer, error = answers[name]
        if error is not None:
            raise error
        state[name] = answer
    return state


def _probe_part(name, part, expand, env_of):
    """One part's state, with "watch": the paths whose status (inode, size, times) changes with that state, for
    roles/cesres_unchanged to recognise a later setup that nothing changed since; a part that has no such
    paths (a push, the components: only rsync can tell) has none, and setups with it always run whole."""
    if name == "repo":
        path = expand(part["path"], part.get("what", "cesres_repo_dest"))
        env = env_of(part)
        if part.get("mode") == "push":
            return push_state(path, env)
        version = part.get("version", "master")
        try:
            state = git_plan(path, part.get("url", ""), version, bool(part.get("force")), env)
        except SetupError as exc:
            return {"path": path, "refused": True, "kind": exc.kind, "msg": str(exc)}
        # git writes HEAD, the index and packed-refs by renaming a lock file into .git, a branch's ref into
        # refs/heads: each changes its directory. A version that is no commit may move on the remote: asked again.
        state["watch"] = [os.path.join(path, ".git"), os.path.join(path, ".git", "refs", "heads")]
        if not _COMMIT.match(version):
            state["remote"] = {"url": part.get("url", ""), "version": version}
        return state
    if name == "venv":
        path = expand(part["path"], part.get("what", "cesres_venv_path"))
        requirements = expand(part["requirements"], part.get("requirements_what", "cesres_venv_requirements_file"))
        state = venv_state(path, requirements, part["config"], env_of(part), check=True)
        lib = "python%s" % ".".join(str(state["python"]).split(".")[:2])
        state["watch"] = [
            path,  # its stamps (VENV_STAMP, VENV_INCOMPLETE), pyvenv.cfg
            os.path.join(path, "bin"),
            os.path.join(path, "lib", lib, "site-packages"),  # pip adds and removes distributions here
            os.path.join(path, VENV_STAMP),
            requirements,
        ]
        return state
    if name == "hf_cache":
        home = expand(part["home"], part.get("what", "cesres_hf_cache_home"))
        python = expand(part["python"], part.get("python_what", "cesres_hf_cache_python"))
        models = [[str(m[0]), str(m[1])] for m in part.get("models") or []]
        watch = [home, os.path.join(home, cache_program.LIST), os.path.join(home, "transformers")]
        return {"home": home, "missing": models_missing(home, models, venv_stamp(python)), "watch": watch}
    if name == "data":
        dest = expand(part["dest"], part.get("what", "cesres_data_dest"))
        return {"dest": dest, "missing": dirs_missing(dest, part.get("dirs") or [])}
    raise SetupError("unknown part %s of the probe" % name)
