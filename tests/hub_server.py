"""A stand-in for the Hugging Face hub on 127.0.0.1, enough for ``huggingface_hub.snapshot_download``
(and so faster-whisper's ``download_model``): a repository's revision, its file tree, and its files.

Point a process at it with ``HF_ENDPOINT=<url>``. Every request is recorded.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

SHA = "0123456789abcdef0123456789abcdef01234567"


class HubServer:
    """Serves ``repos`` (repo id -> folder) at one fixed commit, :data:`SHA`."""

    def __init__(self, repos: dict[str, Path]) -> None:
        self.repos = repos
        self.requests: list[str] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_HEAD(self):  # noqa: N802 - the stdlib's name
                hub.answer(self, body=False)

            def do_GET(self):  # noqa: N802
                hub.answer(self, body=True)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> HubServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def files(self, repo: str) -> list[Path]:
        return sorted(p for p in self.repos[repo].iterdir() if p.is_file())

    def answer(self, handler: BaseHTTPRequestHandler, body: bool) -> None:
        path = unquote(urlparse(handler.path).path)
        self.requests.append(f"{handler.command} {path}")
        for repo in self.repos:
            if path.startswith(f"/api/models/{repo}/revision/"):
                return self._json(handler, body, {"id": repo, "sha": SHA, "siblings": [{"rfilename": p.name} for p in self.files(repo)]})
            if path.startswith(f"/api/models/{repo}/tree/"):
                entries = [{"type": "file", "path": p.name, "size": p.stat().st_size, "oid": _blob_id(p)} for p in self.files(repo)]
                return self._json(handler, body, entries)
            if path.startswith(f"/{repo}/resolve/"):
                name = path.rsplit("/", 1)[-1]
                file = self.repos[repo] / name
                if file.is_file() and "/" not in name:
                    return self._file(handler, body, file)
        handler.send_response(404)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("X-Error-Code", "RepoNotFound")
        payload = json.dumps({"error": "Repository not found"}).encode()
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        if body:
            handler.wfile.write(payload)

    def _json(self, handler: BaseHTTPRequestHandler, body: bool, value: object) -> None:
        payload = json.dumps(value).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        if body:
            handler.wfile.write(payload)

    def _file(self, handler: BaseHTTPRequestHandler, body: bool, file: Path) -> None:
        data = file.read_bytes()
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(data)))
        handler.send_header("ETag", f'"{_blob_id(file)}"')
        handler.send_header("X-Repo-Commit", SHA)
        handler.end_headers()
        if body:
            handler.wfile.write(data)


def _blob_id(path: Path) -> str:
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
