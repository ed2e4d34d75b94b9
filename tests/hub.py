"""The sandbox's imitation of the Hugging Face hub, for tests: tiny models, a running server, child envs."""

from __future__ import annotations

import http.client
import os
import re
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

PROJECT = Path(__file__).resolve().parent.parent
HUB = PROJECT / "sandbox" / "hub"
MAKE_TINY_MODELS = HUB / "make_tiny_models.py"
HUB_SERVER = HUB / "hub_server.py"


@dataclass
class Hub:
    url: str
    proc: subprocess.Popen[str]
    pid_file: Path
    log_file: Path

    @property
    def address(self) -> tuple[str, int]:
        parts = urlsplit(self.url)
        assert parts.hostname is not None
        assert parts.port is not None
        return parts.hostname, parts.port

    def stop(self) -> int:
        """SIGTERM to the server's own pid; it exits 0 and removes its pid file."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None
    ) -> tuple[http.client.HTTPResponse, bytes]:
        connection = http.client.HTTPConnection(*self.address, timeout=10)
        try:
            connection.request(method, path, headers=headers or {})
            response = connection.getresponse()
            return response, response.read()
        finally:
            connection.close()


def make_models(root: Path) -> Path:
    subprocess.run([sys.executable, str(MAKE_TINY_MODELS), "--out", str(root), "--quiet"], check=True, timeout=60)
    return root


@contextmanager
def running_hub(models_root: Path, work: Path) -> Iterator[Hub]:
    """hub_server.py on a free loopback port, serving `models_root`; stopped on exit."""
    pid_file = work / "hub.pid"
    log_file = work / "hub.log"
    argv = [sys.executable, str(HUB_SERVER), "--root", str(models_root), "--host", "127.0.0.1", "--port", "0"]
    argv += ["--pid-file", str(pid_file), "--log-file", str(log_file)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    server = Hub("", proc, pid_file, log_file)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline() if ready else ""
        match = re.search(r"on (http://127\.0\.0\.1:\d+)$", line.strip())
        assert match, f"hub_server did not start: {line!r} (exit code {proc.poll()})"
        server.url = match.group(1)
        yield server
    finally:
        server.stop()


def child_env(hf_home: Path, endpoint: str, *, offline: bool) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("HF_", "HUGGINGFACE_", "TRANSFORMERS_"))
        and key.lower() not in ("http_proxy", "all_proxy")
    }
    env.update(
        HF_HOME=str(hf_home),
        HF_ENDPOINT=endpoint,
        XDG_CACHE_HOME=str(hf_home / "xdg"),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_IMPLICIT_TOKEN="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    if offline:
        env.update(TRANSFORMERS_OFFLINE="1", HF_HUB_OFFLINE="1")
    return env


def cache_models(hf_home: Path, endpoint: str, model_ids: list[str]) -> None:
    """Download `model_ids` into `hf_home` from the hub at `endpoint`, as setup does on the login node."""
    code = (
        "import sys\nfrom transformers import AutoConfig, AutoTokenizer\n"
        "for model in sys.argv[1:]:\n    AutoConfig.from_pretrained(model)\n    AutoTokenizer.from_pretrained(model)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *model_ids],
        env=child_env(hf_home, endpoint, offline=False),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
