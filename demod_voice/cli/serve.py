"""``serve``: arguments to :class:`~demod_voice.serve.server.ServeOptions`, then run the server."""

from __future__ import annotations

import argparse
from typing import Any

from demod_voice.cli.common import load_settings, log_level
from demod_voice.serve.wyoming.server import DEFAULT_URI


def _add_serve(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("serve", parents=[common], help="serve speech over HTTP (OpenAI-compatible API, voice enrollment, batch jobs)",
                       description="Keep voices loaded and serve them: POST /v1/audio/speech (OpenAI's API), /v1/voices "
                                   "(enroll XTTS voices), /v1/batch, /healthz, /readyz, /metrics. SIGTERM drains and exits 0.")
    p.add_argument("--host", help="address to listen on (default: 127.0.0.1; anything else needs API keys or --insecure-no-auth)")
    p.add_argument("--port", type=int, help="TCP port (default: 5002)")
    p.add_argument("--workers", type=int, help="worker processes per loaded voice (default: one per core for a Piper voice, one for XTTS)")
    p.add_argument("--preload", nargs="+", metavar="NAME", help="voices to load at start (as requests name them); /readyz waits for them")
    p.add_argument("--insecure-no-auth", action="store_true",
                   help="listen on a non-loopback address without API keys (anyone who can reach it can use it)")
    p.add_argument("--ui", action="store_true", help="also serve the web page at /ui (clone, speak, compare, voices, batch, "
                   "health; needs the ui extra: pip install 'demod-voice[ui]')")
    p.add_argument("--wyoming", nargs="?", const=DEFAULT_URI, metavar="URI",
                   help=f"also speak Home Assistant's Wyoming protocol on URI (default: {DEFAULT_URI}, the conventional port; "
                   "Wyoming has no authentication: see docs/wyoming.md before binding wider)")
    p.add_argument("--zeroconf", nargs="?", const="demod-voice", metavar="NAME",
                   help="announce the Wyoming server over mDNS for Home Assistant's discovery (default name: demod-voice)")
    p.add_argument("--no-http", action="store_true", help="serve only Wyoming (with --wyoming)")
    p.set_defaults(func=_cmd_serve)


def _cmd_serve(args: argparse.Namespace) -> int:
    from demod_voice.config import config_path
    from demod_voice.serve.server import ServeOptions, run

    config = load_settings(args, {"serve.host": args.host, "serve.port": args.port, "serve.workers": args.workers})
    path, _ = config_path(getattr(args, "config", None))  # --config is absent unless given (SUPPRESS)
    options = ServeOptions(config=config, insecure_no_auth=args.insecure_no_auth,
                           preload=tuple(args.preload) if args.preload else None, log_level=log_level(args), ui=args.ui,
                           config_file=path if path.is_file() else None)
    if args.wyoming:
        from demod_voice.serve.wyoming.server import serve_alone, wyoming_door

        if args.no_http:
            return serve_alone(args.wyoming, args.zeroconf, config, options.preload, options.log_level)
        options.front_doors.append(wyoming_door(args.wyoming, args.zeroconf))
    elif args.no_http or args.zeroconf:
        from demod_voice.errors import UsageError

        raise UsageError("--no-http and --zeroconf go with --wyoming [URI] (the Wyoming server)")
    return run(options)
