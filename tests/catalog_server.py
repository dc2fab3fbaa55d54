"""A small HTTP server on 127.0.0.1 that serves a voice catalog for download tests.

It honours ``Range`` requests (so resuming can be tested), records every request, and can be told
to cut a file off after a number of bytes, once, to simulate a dropped connection.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional


class CatalogServer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[tuple[str, str]] = []  # (path, Range header)
        self.cut_once: dict[str, int] = {}
        self.bytes_per_second: Optional[int] = None  # a slow mirror: bodies sent at this pace
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):  # noqa: N802 - the stdlib's name
                path = self.path.lstrip("/")
                server.requests.append((path, self.headers.get("Range", "")))
                file = server.root / path
                if not file.is_file():
                    self.send_error(404)
                    return
                data = file.read_bytes()
                start = 0
                match = re.match(r"bytes=(\d+)-", self.headers.get("Range", ""))
                if match:
                    start = int(match[1])
                    if start >= len(data):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                cut = server.cut_once.pop(path, None)
                body = body[:cut] if cut is not None else body
                step = server.bytes_per_second // 10 if server.bytes_per_second else len(body) or 1
                for start in range(0, len(body), step):
                    self.wfile.write(body[start:start + step])
                    if server.bytes_per_second:
                        time.sleep(0.1)
                if cut is not None:
                    self.wfile.flush()
                    self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def publish_voice(root: Path, name: str, onnx: Path, corrupt_md5: bool = False) -> dict:
    """Put a voice under root in the catalog's layout and add it to root/voices.json."""
    lang = name.split("-")[0]
    folder = root / lang.split("_")[0] / lang / name
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for source, target in ((onnx, f"{name}.onnx"), (Path(f"{onnx}.json"), f"{name}.onnx.json")):
        data = source.read_bytes()
        (folder / target).write_bytes(data)
        md5 = hashlib.md5(data).hexdigest()
        if corrupt_md5 and target.endswith(".onnx"):
            md5 = "0" * 32
        files[str((folder / target).relative_to(root))] = {"size_bytes": len(data), "md5_digest": md5}
    catalog_path = root / "voices.json"
    catalog = json.loads(catalog_path.read_text()) if catalog_path.exists() else {}
    catalog[name] = {"key": name, "language": {"code": lang}, "quality": "x_low", "num_speakers": 1, "files": files,
                     "aliases": [f"{name}-alias"]}
    catalog_path.write_text(json.dumps(catalog))
    return catalog[name]
