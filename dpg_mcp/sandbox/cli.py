"""`dpg-mcp sandbox …`: serve the sandbox over HTTP. cli.py delegates here (add_arguments + run)."""

from __future__ import annotations

import argparse
import contextlib
import sys

from .config import Faults, SandboxConfig

MAX_IMAGES = 200_000  # the gallery lives in memory: about 2 KB an image


def _pair(text: str, what: str) -> tuple[str, float]:
    key, sep, value = text.rpartition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected {what}=SECONDS, got {text!r}")
    try:
        return key, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None


def _image_count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of images") from None
    if not 1 <= n <= MAX_IMAGES:
        raise argparse.ArgumentTypeError(f"--images must be between 1 and {MAX_IMAGES}, got {n}")
    return n


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8900, help="port (default 8900)")
    parser.add_argument(
        "--seed", type=int, default=7, help="seed of the sample gallery and of fault decisions"
    )
    parser.add_argument(
        "--images", type=_image_count, default=300, metavar="N", help="gallery size (default 300)"
    )
    parser.add_argument(
        "--latency",
        action="append",
        default=[],
        metavar="PREFIX=SECONDS",
        type=lambda t: _pair(t, "PREFIX"),
        help="add latency to paths starting with PREFIX (repeatable)",
    )
    parser.add_argument("--error-rate", type=float, default=0.0, help="share of requests answered 500")
    parser.add_argument(
        "--drop-rate", type=float, default=0.0, help="share of writes whose response is dropped after commit"
    )
    parser.add_argument(
        "--burst-429-every", type=int, default=0, metavar="N", help="after every N requests ..."
    )
    parser.add_argument("--burst-429-len", type=int, default=0, metavar="M", help="... answer M requests 429")
    parser.add_argument("--retry-after", type=int, default=1, help="Retry-After seconds on injected 429s")
    parser.add_argument(
        "--op-seconds",
        action="append",
        default=[],
        metavar="TYPE=SECONDS",
        type=lambda t: _pair(t, "TYPE"),
        help="duration of an Operation type, e.g. archive=2 (repeatable)",
    )
    parser.add_argument(
        "--large-move-threshold", type=int, default=100, help="set moves above this many images are slow"
    )
    parser.add_argument("--large-move-seconds", type=float, default=2.0, help="duration of a large set move")
    parser.add_argument(
        "--access-ttl",
        type=float,
        default=900.0,
        metavar="SECONDS",
        help="lifetime of a signed-in user's access token (default 900)",
    )


def config_from_args(args: argparse.Namespace) -> SandboxConfig:
    faults = Faults(
        seed=args.seed,
        latency=dict(args.latency),
        error_rate=args.error_rate,
        drop_rate=args.drop_rate,
        burst_429_every=args.burst_429_every,
        burst_429_len=args.burst_429_len,
        retry_after=args.retry_after,
    )
    return SandboxConfig(
        seed=args.seed,
        images=args.images,
        faults=faults,
        operation_seconds=dict(args.op_seconds),
        large_move_threshold=args.large_move_threshold,
        large_move_seconds=args.large_move_seconds,
        access_ttl=max(1.0, float(getattr(args, "access_ttl", 900.0))),
    )


def run(args: argparse.Namespace) -> int:
    from . import serve

    config = config_from_args(args)
    print(
        f"DPG sandbox (Riverside Sound Festival, {config.images} images, seed {config.seed}) on http://{args.host}:{args.port}"
        f"  — tokens: dpg_api_live_sandbox_admin|editor|readonly|uploader|captioner|disabled. Ctrl-C stops.",
        file=sys.stderr,  # stdout stays clean for whatever pipes it
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        serve(args.host, args.port, config)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dpg_mcp.sandbox", description="Serve the DPG sandbox over HTTP."
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))
