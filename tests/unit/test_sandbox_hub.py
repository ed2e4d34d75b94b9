"""The sandbox's imitation of the Hugging Face hub: transformers downloads from it, then loads offline.

``sandbox/hub/make_tiny_models.py`` writes tiny RoBERTa repositories; ``sandbox/hub/hub_server.py``
serves them on a free loopback port. transformers and huggingface_hub run in child processes with
``HF_ENDPOINT`` pointing at the server and ``HF_HOME`` at a temporary directory, exactly as on the
sandbox's login node; the offline loads run with the server stopped, as on a compute node.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hub import MAKE_TINY_MODELS, Hub, child_env, make_models, running_hub

REPO = "Enoch/graphcodebert-py"
OTHER_REPO = "microsoft/graphcodebert-base"  # served, but never downloaded by the tests
MISSING_REPO = "nobody-here/no-such-model"
CODE = "def f(x):\n    return x"
CHILD_TIMEOUT = 180

# Runs in a child process (transformers reads HF_ENDPOINT, HF_HOME and the offline switches at import).
CHILD = r"""
import json, os, sys

phase, repo, other, missing, code = sys.argv[1:6]
out = {}


def attempt(name, call):
    try:
        result = call()
    except Exception as error:  # the test asserts on the type and the message
        out[name] = {"error": type(error).__name__, "module": type(error).__module__, "message": str(error)}
    else:
        out[name] = {"ok": result}


def tokenizer(use_fast):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(repo, use_fast=use_fast)
    ids = tok(code)["input_ids"]
    return {"class": type(tok).__name__, "ids": ids, "tokens": tok.convert_ids_to_tokens(ids), "size": len(tok)}


def config():
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(repo)
    return {"model_type": cfg.model_type, "vocab_size": cfg.vocab_size, "commit": getattr(cfg, "_commit_hash", None)}


def snapshot(repo_id):
    from huggingface_hub import snapshot_download

    # huggingface_hub < 0.17's snapshot_download ignores HF_HUB_OFFLINE: say it as a job script would.
    path = snapshot_download(repo_id, local_files_only=phase == "offline")
    return {"path": path, "files": sorted(os.listdir(path))}


def hf_download(repo_id, filename, revision=None):
    from huggingface_hub import hf_hub_download

    return hf_hub_download(repo_id, filename, revision=revision)


def auto_tokenizer(repo_id):
    from transformers import AutoTokenizer

    return type(AutoTokenizer.from_pretrained(repo_id)).__name__


def auto_config(repo_id):
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(repo_id).model_type


if phase in ("online", "offline"):
    attempt("fast", lambda: tokenizer(True))
    attempt("slow", lambda: tokenizer(False))
    attempt("config", config)
    attempt("snapshot", lambda: snapshot(repo))
if phase == "online":
    attempt("missing_repo_tokenizer", lambda: auto_tokenizer(missing))
    attempt("missing_repo_config", lambda: auto_config(missing))
    attempt("missing_repo_download", lambda: hf_download(missing, "config.json"))
    attempt("missing_repo_snapshot", lambda: snapshot(missing))
    attempt("missing_file", lambda: hf_download(repo, "pytorch_model.bin"))
    attempt("missing_revision", lambda: hf_download(repo, "config.json", revision="no-such-branch"))
    attempt("commit_revision", lambda: hf_download(repo, "config.json", revision=out["config"]["ok"]["commit"]))
if phase == "offline":
    attempt("uncached_tokenizer", lambda: auto_tokenizer(other))
    attempt("uncached_config", lambda: auto_config(other))
    attempt("uncached_snapshot", lambda: snapshot(other))
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def models_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_models(tmp_path_factory.mktemp("hub-root"))


@pytest.fixture
def hub(models_root: Path, tmp_path: Path) -> Iterator[Hub]:
    with running_hub(models_root, tmp_path) as server:
        yield server


def run_child(tmp_path: Path, phase: str, env: dict[str, str]) -> dict:
    script = tmp_path / "hub_child.py"
    script.write_text(CHILD)
    done = subprocess.run(
        [sys.executable, str(script), phase, REPO, OTHER_REPO, MISSING_REPO, CODE],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=CHILD_TIMEOUT,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, f"child {phase} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return json.loads(lines[-1].removeprefix("RESULT "))


def ok(result: dict, name: str):
    assert "ok" in result[name], f"{name}: {result[name]}"
    return result[name]["ok"]


@pytest.fixture
def transformers_available() -> None:
    pytest.importorskip("transformers", reason="transformers is not installed (pip install -e '.[dev]')")


def assert_loads(result: dict) -> None:
    fast, slow, config = ok(result, "fast"), ok(result, "slow"), ok(result, "config")
    assert fast["class"] == "RobertaTokenizerFast"
    assert slow["class"] == "RobertaTokenizer"
    assert fast["ids"], "tokenizing a function gave no ids"
    assert fast["ids"] == slow["ids"]
    assert fast["ids"][0] == 0 and fast["ids"][-1] == 2  # <s> ... </s>
    assert "def" in fast["tokens"] and "Ġreturn" in fast["tokens"]
    assert config["model_type"] == "roberta"
    assert config["vocab_size"] == fast["size"] == slow["size"]
    files = ok(result, "snapshot")["files"]
    assert {"config.json", "vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"} <= set(files)
    assert not any(name.endswith((".bin", ".safetensors")) for name in files)


@pytest.mark.usefixtures("transformers_available")
def test_login_node_downloads_then_compute_node_loads_offline(hub: Hub, tmp_path: Path):
    hf_home = tmp_path / "hf-home"
    online = run_child(tmp_path, "online", child_env(hf_home, hub.url, offline=False))
    assert_loads(online)
    commit = ok(online, "config")["commit"]
    assert re.fullmatch(r"[0-9a-f]{40}", commit)
    assert Path(ok(online, "snapshot")["path"]).name == commit
    assert (hf_home / "hub" / "models--Enoch--graphcodebert-py" / "refs" / "main").read_text() == commit
    assert Path(ok(online, "commit_revision")).read_bytes() == (hub_file(hub, "config.json"))

    # A missing repository: each library's own "not found" error.
    for name in ("missing_repo_tokenizer", "missing_repo_config"):
        assert online[name].get("error") == "OSError", online[name]
        assert "is not a valid model identifier" in online[name]["message"]
    for name in ("missing_repo_download", "missing_repo_snapshot"):
        assert online[name].get("error") == "RepositoryNotFoundError", online[name]
    assert online["missing_file"].get("error") == "EntryNotFoundError", online["missing_file"]
    assert online["missing_revision"].get("error") == "RevisionNotFoundError", online["missing_revision"]

    log = hub.log_file.read_text()
    assert f'"HEAD /{REPO}/resolve/main/config.json HTTP/1.1" 200' in log
    assert f'"GET /{REPO}/resolve/main/vocab.json HTTP/1.1" 200' in log
    assert f'"GET /api/models/{REPO}/revision/main' in log
    assert f'/{REPO}/resolve/main/tokenizer.json HTTP/1.1" 404' in log  # no tokenizer.json: built from vocab+merges

    # The compute node: no server, offline switches on, the same HF_HOME.
    assert hub.stop() == 0
    assert not hub.pid_file.exists()
    offline = run_child(tmp_path, "offline", child_env(hf_home, hub.url, offline=True))
    assert_loads(offline)
    assert ok(offline, "fast")["ids"] == ok(online, "fast")["ids"]
    assert ok(offline, "config")["commit"] == commit
    for name in ("uncached_tokenizer", "uncached_config", "uncached_snapshot"):
        assert "error" in offline[name], f"{name} loaded an uncached model offline: {offline[name]}"
    assert offline["uncached_tokenizer"]["error"] == offline["uncached_config"]["error"] == "OSError"
    # huggingface_hub >= 0.17 raises LocalEntryNotFoundError, older versions FileNotFoundError.
    assert offline["uncached_snapshot"]["error"] in ("LocalEntryNotFoundError", "FileNotFoundError")


def hub_file(hub: Hub, name: str, repo: str = REPO) -> bytes:
    response, body = hub.request("GET", f"/{repo}/resolve/main/{name}")
    assert response.status == 200
    return body


def test_resolve_headers_are_the_hubs(hub: Hub, models_root: Path):
    assert hub.pid_file.read_text().strip() == str(hub.proc.pid)
    data = (models_root / REPO / "config.json").read_bytes()
    head, body = hub.request("HEAD", f"/{REPO}/resolve/main/config.json")
    assert head.status == 200 and body == b""
    commit = head.getheader("X-Repo-Commit")
    assert commit and re.fullmatch(r"[0-9a-f]{40}", commit)
    etag = head.getheader("ETag")
    assert etag and re.fullmatch(r'"[0-9a-f]{40}"', etag)
    assert head.getheader("Content-Length") == str(len(data))

    get, body = hub.request("GET", f"/{REPO}/resolve/{commit}/config.json")
    assert get.status == 200 and body == data
    assert get.getheader("ETag") == etag and get.getheader("X-Repo-Commit") == commit

    part, body = hub.request("GET", f"/{REPO}/resolve/main/config.json", {"Range": "bytes=2-5"})
    assert part.status == 206 and body == data[2:6]
    assert part.getheader("Content-Range") == f"bytes 2-5/{len(data)}"

    other, _ = hub.request("HEAD", f"/{OTHER_REPO}/resolve/main/config.json")
    assert other.getheader("X-Repo-Commit") not in (None, commit)  # one commit id per repository

    missing_file, _ = hub.request("HEAD", f"/{REPO}/resolve/main/pytorch_model.bin")
    assert missing_file.status == 404
    assert missing_file.getheader("X-Error-Code") == "EntryNotFound"
    assert missing_file.getheader("X-Repo-Commit") == commit

    for revision in ("v9", "refs%2Fpr%2F1", "0" * 40):
        missing_rev, _ = hub.request("HEAD", f"/{REPO}/resolve/{revision}/config.json")
        assert (missing_rev.status, missing_rev.getheader("X-Error-Code")) == (404, "RevisionNotFound"), revision

    anonymous, _ = hub.request("HEAD", f"/{MISSING_REPO}/resolve/main/config.json")
    assert (anonymous.status, anonymous.getheader("X-Error-Code")) == (401, "RepoNotFound")
    with_token, _ = hub.request("HEAD", f"/{MISSING_REPO}/resolve/main/config.json", {"Authorization": "Bearer x"})
    assert (with_token.status, with_token.getheader("X-Error-Code")) == (404, "RepoNotFound")


def test_model_info_lists_the_files(hub: Hub, models_root: Path):
    head, _ = hub.request("HEAD", f"/{REPO}/resolve/main/config.json")
    for path in (f"/api/models/{REPO}", f"/api/models/{REPO}/revision/main?blobs=true"):
        response, body = hub.request("GET", path)
        assert response.status == 200
        info = json.loads(body)
        assert info["id"] == REPO and info["sha"] == head.getheader("X-Repo-Commit")
        on_disk = sorted(path.name for path in (models_root / REPO).iterdir())
        assert sorted(sibling["rfilename"] for sibling in info["siblings"]) == on_disk
    response, _ = hub.request("GET", f"/api/models/{MISSING_REPO}")
    assert (response.status, response.getheader("X-Error-Code")) == (401, "RepoNotFound")
    response, _ = hub.request("GET", f"/api/models/{REPO}/revision/nope")
    assert (response.status, response.getheader("X-Error-Code")) == (404, "RevisionNotFound")


@pytest.mark.parametrize(
    "path",
    [
        f"/{REPO}/resolve/main/../../../../etc/passwd",
        f"/{REPO}/resolve/main/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        f"/{REPO}/resolve/main/..%2F..%2F..%2Fetc%2Fpasswd",
        "/Enoch/..%2F..%2F..%2Fetc/resolve/main/passwd",
        "/../../etc/resolve/main/passwd",
        f"/api/models/{REPO}/tree/main/..%2F..",
    ],
)
def test_paths_outside_the_root_are_refused(hub: Hub, path: str):
    response, body = hub.request("GET", path)
    assert response.status in (400, 401, 404)
    assert b"root:" not in body


def test_every_request_is_logged_in_one_line(hub: Hub):
    for _ in range(3):
        hub.request("HEAD", f"/{REPO}/resolve/main/vocab.json")
    deadline = time.monotonic() + 5
    while hub.log_file.read_text().count("\n") < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = hub.log_file.read_text().splitlines()
    assert len(lines) == 3
    assert all(f'"HEAD /{REPO}/resolve/main/vocab.json HTTP/1.1" 200' in line for line in lines)


def test_tiny_models_are_deterministic_and_small(models_root: Path, tmp_path: Path):
    again = tmp_path / "again"
    argv = [sys.executable, str(MAKE_TINY_MODELS), "--out", str(again), "--id", "someone/extra-model", "--quiet"]
    subprocess.run(argv, check=True, timeout=60)
    for repo in (REPO, OTHER_REPO):
        first = {p.name: p.read_bytes() for p in (models_root / repo).iterdir()}
        second = {p.name: p.read_bytes() for p in (again / repo).iterdir()}
        assert first == second
        assert sum(map(len, first.values())) < 20_000
        readme = first["README.md"].decode().replace("**", "")
        assert "not the real" in readme and "tiny sandbox stand-in" in readme
        # The sizes the real template_config.yaml needs (head [1, 768, 18], 512 tokens), one layer; the weights
        # (--weights, with torch) are loaded by the real program in tests/integration/test_real_cesres.py.
        config = json.loads(first["config.json"])
        assert (config["hidden_size"], config["max_position_embeddings"], config["num_hidden_layers"]) == (768, 514, 1)
        assert "pytorch_model.bin" not in first and "pytorch_model.bin" in readme
    assert (again / "someone" / "extra-model" / "vocab.json").is_file()
    bad = subprocess.run([*argv[:-2], "../escape", "--quiet"], capture_output=True, text=True, check=False)
    assert bad.returncode != 0 and "ORG/NAME" in bad.stderr
