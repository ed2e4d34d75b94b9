#!/usr/bin/env python3
"""A small imitation of the Hugging Face hub's download API, for the sandbox cluster's login node.

It serves model repositories from a directory laid out as ``ROOT/ORG/NAME/<files>`` (as written by
``make_tiny_models.py``), so that ``transformers`` and ``huggingface_hub`` download them "like from
the hub" when ``HF_ENDPOINT=http://HOST:PORT`` is set:

``HEAD``/``GET /{repo_id}/resolve/{revision}/{filename}``
    The file, with the headers ``huggingface_hub.file_download`` reads: ``X-Repo-Commit`` (the
    repository's commit id), ``ETag`` (the file's git blob sha1, quoted, as the hub sends for files
    that are not in LFS) and ``Content-Length``; ``Range: bytes=A-B`` answers 206.
``GET /api/models/{repo_id}`` and ``/api/models/{repo_id}/revision/{revision}``
    The model info (``id``, ``sha``, ``siblings: [{rfilename, size, blobId}]``, ...), which is what
    ``snapshot_download`` lists.
``GET /api/models/{repo_id}/tree/{revision}[/{path}]``
    The repository tree (``list_repo_tree``; ``?recursive=1`` lists sub-directories too).

Errors carry the hub's ``X-Error-Code``/``X-Error-Message`` headers, which ``hf_raise_for_status``
turns into the library's own exceptions: ``RepoNotFound`` (401 without an ``Authorization`` header,
404 with one, as the hub answers), ``RevisionNotFound`` (404), ``EntryNotFound`` (404, with
``X-Repo-Commit``, so clients cache the file's absence). The revision is ``main`` or the commit id.

The commit id of a repository is a sha1 over its id and its files' names and blob shas: it is the
same on every machine for the same files, and changes when a file does. Paths that leave the root
(``..``, absolute paths, symbolic links pointing outside) are refused. Every request is logged in one
line. Standard library only.

    hub_server.py --root DIR [--host 127.0.0.1] [--port N] [--pid-file F] [--log-file F]

``--port 0`` (the default) binds a free port; the first line on standard output names the URL.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import mimetypes
import os
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import IO, ClassVar
from urllib.parse import parse_qs, quote, unquote, urlsplit

DEFAULT_BRANCH = "main"
SEGMENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")  # one part of a repository id
COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
REPO_TYPE_PREFIXES = ("datasets", "spaces")  # served by the hub, never by this imitation


class HubError(Exception):
    """An error answered the hub's way: status, ``X-Error-Code``, ``X-Error-Message`` and a JSON body."""

    def __init__(self, status: int, code: str | None, message: str, commit: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.commit = commit


@dataclass(frozen=True)
class RepoFile:
    name: str  # posix path relative to the repository
    path: Path
    size: int
    blob_sha: str  # git blob sha1, the hub's ETag of a file that is not in LFS


@dataclass(frozen=True)
class Repo:
    repo_id: str
    path: Path
    files: dict[str, RepoFile]
    commit: str


def git_blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def split_path(text: str) -> list[str]:
    """URL path -> decoded segments; refuses anything that could name a place outside the root.

    A segment may hold an encoded "/" (a revision such as ``refs%2Fpr%2F1``), but no part of it, before
    or after decoding, may be empty, "." or "..", nor hold a backslash or a NUL.
    """
    segments = [unquote(segment) for segment in text.split("/")]
    for segment in segments:
        for part in segment.split("/"):
            if part in ("", ".", "..") or "\\" in part or "\0" in part:
                raise HubError(HTTPStatus.BAD_REQUEST, None, f"Invalid path: {text!r}")
    return segments


def repo_not_found(auth: bool) -> HubError:
    # The hub answers 401 for a missing repository to a client that sent no token (it cannot tell a
    # missing repository from a private one), 404 to one that did.
    status = HTTPStatus.NOT_FOUND if auth else HTTPStatus.UNAUTHORIZED
    return HubError(status, "RepoNotFound", "Repository not found")


class RepoStore:
    """The repositories under ``root``, read from disk at each request (blob shas are cached)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._lock = threading.Lock()
        self._blob_cache: dict[tuple[str, int, int], str] = {}

    def _blob_sha(self, path: Path) -> tuple[int, str]:
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        with self._lock:
            cached = self._blob_cache.get(key)
        if cached is None:
            cached = git_blob_sha(path.read_bytes())
            with self._lock:
                self._blob_cache[key] = cached
        return stat.st_size, cached

    def _inside_root(self, path: Path) -> bool:
        try:
            return path.resolve().is_relative_to(self.root)
        except OSError:
            return False

    def find(self, parts: list[str], auth: bool) -> Repo:
        repo_id = "/".join(parts)
        not_found = repo_not_found(auth)
        if len(parts) != 2 or not all(SEGMENT_RE.match(part) for part in parts):
            raise not_found
        repo_path = self.root.joinpath(*parts)
        if not repo_path.is_dir() or not self._inside_root(repo_path):
            raise not_found
        files: dict[str, RepoFile] = {}
        for path in sorted(repo_path.rglob("*")):
            relative = path.relative_to(repo_path)
            if any(part.startswith(".") for part in relative.parts):
                continue  # .git, .cache, editor files: not part of the repository
            if not path.is_file() or not self._inside_root(path):
                continue
            size, blob_sha = self._blob_sha(path)
            files[relative.as_posix()] = RepoFile(relative.as_posix(), path, size, blob_sha)
        if not files:
            raise not_found
        digest = hashlib.sha1(f"cesres-sandbox-hub\0{repo_id}\0".encode(), usedforsecurity=False)
        for name in sorted(files):
            digest.update(f"{name}\0{files[name].blob_sha}\n".encode())
        return Repo(repo_id, repo_path, files, digest.hexdigest())


def check_revision(repo: Repo, revision: str) -> None:
    if revision not in (DEFAULT_BRANCH, repo.commit):
        raise HubError(HTTPStatus.NOT_FOUND, "RevisionNotFound", f"Invalid rev id: {revision}")


def model_info(repo: Repo) -> dict[str, object]:
    info: dict[str, object] = {
        "_id": repo.commit[:24],
        "id": repo.repo_id,
        "modelId": repo.repo_id,
        "author": repo.repo_id.split("/")[0],
        "sha": repo.commit,
        "private": False,
        "gated": False,
        "disabled": False,
        "downloads": 0,
        "likes": 0,
        "library_name": "transformers",
        "tags": ["transformers"],
        "siblings": [
            {"rfilename": item.name, "size": item.size, "blobId": item.blob_sha} for item in repo.files.values()
        ],
    }
    config_file = repo.files.get("config.json")
    if config_file is not None:
        try:
            config = json.loads(config_file.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            config = None
        if isinstance(config, dict):
            info["config"] = {key: config[key] for key in ("architectures", "model_type") if key in config}
            if isinstance(config.get("model_type"), str):
                info["tags"] = ["transformers", config["model_type"]]
    return info


def tree_entries(repo: Repo, prefix: str, recursive: bool) -> list[dict[str, object]]:
    """``list_repo_tree``'s entries under ``prefix`` ("" is the top of the repository)."""
    base = f"{prefix}/" if prefix else ""
    if prefix and prefix not in repo.files and not any(name.startswith(base) for name in repo.files):
        raise HubError(HTTPStatus.NOT_FOUND, "EntryNotFound", f"{prefix} does not exist on {DEFAULT_BRANCH}")
    if prefix in repo.files:
        item = repo.files[prefix]
        return [{"type": "file", "oid": item.blob_sha, "size": item.size, "path": item.name}]
    directories: dict[str, list[str]] = {}
    entries: list[dict[str, object]] = []
    for item in repo.files.values():
        if not item.name.startswith(base):
            continue
        rest = item.name[len(base) :].split("/")
        for depth in range(1, len(rest)):
            directory = base + "/".join(rest[:depth])
            directories.setdefault(directory, []).append(f"{item.name}\0{item.blob_sha}\n")
            if not recursive:
                break
        if len(rest) == 1 or recursive:
            entries.append({"type": "file", "oid": item.blob_sha, "size": item.size, "path": item.name})
    for directory, lines in directories.items():
        oid = hashlib.sha1("".join(lines).encode(), usedforsecurity=False).hexdigest()
        entries.append({"type": "directory", "oid": oid, "size": 0, "path": directory})
    return sorted(entries, key=lambda entry: str(entry["path"]))


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """``Range: bytes=A-B`` / ``bytes=A-`` / ``bytes=-N`` -> (first, last) inclusive; None if unsatisfiable."""
    match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", header)
    if match is None or match.group(1) == match.group(2) == "":
        return None
    if match.group(1) == "":
        length = int(match.group(2))
        if length == 0:
            return None
        return max(size - length, 0), size - 1
    first = int(match.group(1))
    last = int(match.group(2)) if match.group(2) else size - 1
    if first >= size or last < first:
        return None
    return first, min(last, size - 1)


class HubHandler(BaseHTTPRequestHandler):
    server_version = "cesres-sandbox-hub/1"
    protocol_version = "HTTP/1.1"
    store: ClassVar[RepoStore]
    log_stream: ClassVar[IO[str]]
    log_lock: ClassVar[threading.Lock] = threading.Lock()
    _sent_size: int | str = "-"

    # --- plumbing -------------------------------------------------------------------------------

    def log_message(self, format: str, *args: object) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        line = f"{stamp} {self.client_address[0]} {format % args}\n"
        with self.log_lock:
            self.log_stream.write(line)
            self.log_stream.flush()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # One line per request: the request line, the status and the bytes of body sent.
        self.log_message('"%s" %s %s', self.requestline, getattr(code, "value", code), self._sent_size)

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        """One response; a HEAD gets the headers of the GET (Content-Length included) and no body."""
        self._sent_size = 0 if self.command == "HEAD" else len(body)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _send_json(self, data: object, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(data, indent=None, separators=(",", ":")).encode()
        self._send(HTTPStatus.OK, {"Content-Type": "application/json; charset=utf-8", **(headers or {})}, body)

    def _send_error(self, error: HubError) -> None:
        headers = {"Content-Type": "application/json; charset=utf-8", "X-Error-Message": error.message}
        if error.code:
            headers["X-Error-Code"] = error.code
        if error.commit:
            headers["X-Repo-Commit"] = error.commit
        self._send(error.status, headers, json.dumps({"error": error.message}).encode())

    # --- routes ---------------------------------------------------------------------------------

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_GET(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        try:
            url = urlsplit(self.path)
            segments = split_path(url.path.strip("/")) if url.path.strip("/") else []
            if segments[:2] == ["api", "models"]:
                self._api_models(segments[2:], parse_qs(url.query))
            elif segments[:1] == ["api"]:
                if len(segments) > 2 and segments[1] in REPO_TYPE_PREFIXES:
                    raise repo_not_found(self._auth)  # a dataset or a space: none here
                raise HubError(HTTPStatus.NOT_FOUND, None, f"Not found: {url.path}")
            elif segments[:1] and segments[0] in REPO_TYPE_PREFIXES:
                raise repo_not_found(self._auth)
            elif "resolve" in segments[1:3]:
                at = segments.index("resolve", 1)
                self._resolve(segments[:at], segments[at + 1 : at + 2], segments[at + 2 :])
            else:
                raise HubError(HTTPStatus.NOT_FOUND, None, f"Not found: {url.path}")
        except HubError as error:
            self._send_error(error)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away: nothing to answer
        except Exception as error:  # a bug or a file that vanished: answer and log it, keep serving
            print(f"hub_server: {self.requestline!r}: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
            self._send_error(HubError(HTTPStatus.INTERNAL_SERVER_ERROR, None, "Internal error"))

    @property
    def _auth(self) -> bool:
        return bool(self.headers.get("Authorization"))

    def _api_models(self, rest: list[str], query: dict[str, list[str]]) -> None:
        for keyword in ("revision", "tree"):
            if keyword in rest[1:3]:
                at = rest.index(keyword, 1)
                repo = self.store.find(rest[:at], self._auth)
                if len(rest) <= at + 1:
                    raise HubError(HTTPStatus.NOT_FOUND, None, f"Missing revision after /{keyword}")
                check_revision(repo, rest[at + 1])
                if keyword == "revision":
                    if len(rest) != at + 2:
                        raise HubError(HTTPStatus.NOT_FOUND, None, "Not found")
                    self._send_json(model_info(repo))
                else:
                    recursive = query.get("recursive", ["false"])[-1].lower() in ("1", "true")
                    self._send_json(tree_entries(repo, "/".join(rest[at + 2 :]), recursive))
                return
        repo = self.store.find(rest, self._auth)
        self._send_json(model_info(repo))

    def _resolve(self, repo_parts: list[str], revision: list[str], file_parts: list[str]) -> None:
        repo = self.store.find(repo_parts, self._auth)
        if not revision or not file_parts:
            raise HubError(HTTPStatus.NOT_FOUND, "EntryNotFound", "Entry not found", repo.commit)
        check_revision(repo, revision[0])
        item = repo.files.get("/".join(file_parts))
        if item is None:
            raise HubError(HTTPStatus.NOT_FOUND, "EntryNotFound", "Entry not found", repo.commit)
        data = item.path.read_bytes()
        filename = file_parts[-1]
        content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        if content_type.startswith("text/") or content_type == "application/json":
            content_type += "; charset=utf-8"
        headers = {
            "Content-Type": content_type,
            "ETag": f'"{git_blob_sha(data)}"',
            "X-Repo-Commit": repo.commit,
            "Accept-Ranges": "bytes",
            "Content-Disposition": f"inline; filename*=UTF-8''{quote(filename)}; filename=\"{quote(filename)}\";",
            "Cache-Control": "no-cache",
        }
        range_header = self.headers.get("Range")
        if range_header is None:
            self._send(HTTPStatus.OK, headers, data)
            return
        span = parse_range(range_header, len(data))
        if span is None:
            headers["Content-Range"] = f"bytes */{len(data)}"
            self._send(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, headers, b"")
            return
        first, last = span
        headers["Content-Range"] = f"bytes {first}-{last}/{len(data)}"
        self._send(HTTPStatus.PARTIAL_CONTENT, headers, data[first : last + 1])


def remove_pid_file(pid_file: Path | None) -> None:
    if pid_file is None:
        return
    try:
        if pid_file.read_text().strip() == str(os.getpid()):
            pid_file.unlink()
    except OSError:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve model repositories like the Hugging Face hub's download API.")
    parser.add_argument("--root", required=True, type=Path, help="directory holding ORG/NAME/<files>")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 (default) picks a free one")
    parser.add_argument("--pid-file", type=Path, help="write the server's pid here; removed on exit")
    parser.add_argument("--log-file", type=Path, help="append one line per request here (default: stderr)")
    args = parser.parse_args(argv)

    if not args.root.is_dir():
        parser.error(f"--root {args.root}: not a directory")
    log_stream: IO[str] = sys.stderr
    if args.log_file is not None:
        args.log_file.parent.mkdir(parents=True, exist_ok=True)
        log_stream = args.log_file.open("a", encoding="utf-8")

    HubHandler.store = RepoStore(args.root)
    HubHandler.log_stream = log_stream
    server = ThreadingHTTPServer((args.host, args.port), HubHandler)
    server.daemon_threads = True
    host, port = server.server_address[:2]

    if args.pid_file is not None:
        args.pid_file.parent.mkdir(parents=True, exist_ok=True)
        args.pid_file.write_text(f"{os.getpid()}\n")

    def stop(signum: int, _frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever() to return, so it cannot run in this (the serving) thread.
        threading.Thread(target=server.shutdown, name=f"stop-on-{signum}", daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"hub_server: serving {HubHandler.store.root} on http://{host}:{port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()
        remove_pid_file(args.pid_file)
        if log_stream is not sys.stderr:
            log_stream.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
