"""A cluster on this machine for tests of the submission: the real CLI, the real train playbook and role, the
real cesres_run module (run by the local connection), with fake squeue, sacct, sbatch and rsync on PATH.

`hooks` run shell code at the points of a submission that a test wants to reach (a stop signal, a full
disk): "module" when cesres_run's Python starts, "sbatch" right after sbatch accepted a job, "rsync" while a
data file is sent. $CLI is the pid of the cesres-ctl under test, $STATE its state directory.
"""

import os
import shlex
import subprocess
import sys
import textwrap
import time
from collections.abc import Mapping
from pathlib import Path

from tests import fake_slurm
from tests.conftest import CESRES_CTL, MINI, PROJECT

MODEL = "Enoch/graphcodebert-py"  # the model the demo config names

_SBATCH = r"""#!/bin/bash
# sbatch --parsable [--array=LIST%K] job.sbatch: accepts every job, as the next number of $FAKE/jobs.
array=
for arg in "$@"; do case "$arg" in --array=*) array=${arg#--array=};; esac; done
n=$(( $(cat "$FAKE/next-job" 2>/dev/null || echo 100) + 1 ))
echo "$n" > "$FAKE/next-job"
echo "$n $PWD ${array%%\%*}" >> "$FAKE/jobs"
{hook}
echo "$n"
"""
_RSYNC = r"""#!/bin/bash
# rsync ... -- SRC HOST:DEST, as the role sends a data file: a copy on this machine.
src=${@: -2:1} dest=${@: -1}
{hook}
cp -- "$src" "${dest#*:}"
"""
_PYTHON = """#!/bin/bash
# The Python that setup chose on the cluster (cesres_python_wrapper), running cesres_run.
{hook}
exec {python} "$@"
"""


class FakeCluster:
    """A project whose inventory has the host `fake` (local connection, paths under `root`)."""

    def __init__(self, root: Path, hooks: Mapping[str, str] | None = None) -> None:
        self.root = root
        self.project = root / "project"
        self.cluster = root / "cluster"
        self.state = root / "state"
        self.bin = root / "bin"
        self.pid_file = root / "cli.pid"
        hooks = {name: textwrap.dedent(code) for name, code in (hooks or {}).items()}
        self._project()
        self._cluster(hooks)

    def _project(self) -> None:
        self.project.mkdir(parents=True)
        # The checkout's collection cesres.ctl (roles, modules, filters) through its own link.
        for name in ("ansible.cfg", "playbooks", "collections"):
            (self.project / name).symlink_to(PROJECT / name)
        group_vars = self.project / "inventory" / "group_vars"
        group_vars.mkdir(parents=True)
        (group_vars / "ceci.yml").symlink_to(PROJECT / "group_vars" / "ceci.yml")
        (self.project / "inventory" / "hosts.yml").write_text(
            "all: {children: {ceci: {children: {cluster_fake: {hosts: {fake: }}}}}}\n"
        )
        (group_vars / "cluster_fake.yml").write_text(
            textwrap.dedent(
                f"""\
                ansible_connection: local
                cesres_cluster_name: fake
                cesres_cluster_partitions:
                  batch: {{max_time: "5-00:00:00", default: true, gpus: 0}}
                  gpu: {{max_time: "5-00:00:00", default: false, gpus: 2}}
                cesres_root: {self.cluster}/cesres
                cesres_venv: {self.cluster}/venv
                cesres_hf_home: {self.cluster}/hf
                cesres_python_wrapper: {self.cluster}/python
                cesres_job_partition: batch
                cesres_job_gpus: 0
                cesres_job_time: "00:30:00"
                """
            )
        )

    def _cluster(self, hooks: Mapping[str, str]) -> None:
        code = self.cluster / "cesres"
        code.mkdir(parents=True)
        (code / "cesres_graphcodebert_model.py").write_text("# the model\n")
        (self.cluster / "venv" / "bin").mkdir(parents=True)
        (self.cluster / "venv" / "bin" / "activate").write_text("")
        (self.cluster / "venv" / ".cesres-ready").write_text("ready\n")
        (self.cluster / "hf").mkdir()
        (self.cluster / "hf" / "cesres-models.list").write_text(f"{MODEL} main ready\n")
        setup = "#!/bin/bash\n" + " ".join(
            [
                f"CLI=$(cat {shlex.quote(str(self.pid_file))} 2>/dev/null)",
                f"STATE={shlex.quote(str(self.state))}",
                f"FAKE={shlex.quote(str(self.cluster))}",
            ]
        )

        def script(template: str, hook: str) -> str:
            return template.replace("#!/bin/bash", setup, 1).replace("{hook}", hooks.get(hook, ""))

        python = self.cluster / "python"
        python.write_text(script(_PYTHON, "module").replace("{python}", sys.executable))
        python.chmod(0o755)
        fake_slurm.install(self.bin, sbatch=script(_SBATCH, "sbatch"), rsync=script(_RSYNC, "rsync"))

    def env(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith(("XDG_", "CESRES_"))}
        env.update(
            CESRES_CTL_PROJECT=str(self.project),
            XDG_STATE_HOME=str(self.state),
            XDG_CONFIG_HOME=str(self.root / "config"),
            PATH=f"{self.bin}{os.pathsep}{env['PATH']}",
            # This checkout's cesres_ctl, whatever the venv has installed (the CLI runs from the demo's directory).
            PYTHONPATH=str(PROJECT),
            FAKE_SQUEUE="",
            FAKE_SACCT="",
        )
        return env

    def start(self, *args: str) -> subprocess.Popen[str]:
        """cesres-ctl ARGS --cluster fake, from the demo's directory; its pid is in pid_file for the hooks."""
        process = subprocess.Popen(
            [*CESRES_CTL, *args],
            cwd=MINI,
            env=self.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.pid_file.write_text(f"{process.pid}\n")
        return process

    def run(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        process = self.start(*args)
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        finally:
            process.kill()
        return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)

    def jobs(self) -> list[str]:
        """The jobs sbatch accepted: `<job id> <submit dir> <array tasks>` lines."""
        path = self.cluster / "jobs"
        return path.read_text().splitlines() if path.exists() else []

    def runs_dir(self) -> Path:
        return self.cluster / "cesres" / "runs"

    def wait_for(self, path: Path, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not path.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(path)
            time.sleep(0.05)
