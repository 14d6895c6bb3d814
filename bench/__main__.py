"""`python -m bench [--quick] [--json]`: every benchmark, one table of ratios against same-run baselines.

Each time figure is the median of rounds that alternate our side and its baseline, so both see the same load
(the machine is shared and noisy: compare ratios, not milliseconds). Goals come from the issues; figures
are printed, never asserted. DPG is a standalone sandbox process reached over loopback HTTP, as DPG would be:
1000 images, PATCH and rating Operations that take 200 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from bench import figures  # noqa: E402
from bench._proc import sandbox_process  # noqa: E402
from bench.figures import Row  # noqa: E402
from bench.ledger import ledger_rows  # noqa: E402

SANDBOX_FLAGS = ("--images", "1000", "--op-seconds", "update=0.2", "--op-seconds", "rating=0.2")
SECTIONS = ("context", "sandbox", "calls", "bulk", "cold", "ledger")


def machine() -> str:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = f", load {os.getloadavg()[0]:.1f} at the end" if hasattr(os, "getloadavg") else ""
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs{f' ({cpu})' if cpu else ''}, "
        f"Python {platform.python_version()}{load}"
    )


def table(rows: list[Row]) -> str:
    head = ("figure", "ours", "baseline (same run)", "ratio", "goal", "")
    body = [
        (
            r.figure,
            r.ours,
            r.baseline,
            f"{r.ratio:.2f}" if r.ratio is not None else "—",
            f"≤ {r.goal:.2f}" if r.goal is not None else "—",
            r.verdict + (f"  ({r.note})" if r.note else ""),
        )
        for r in rows
    ]
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(5)]
    lines = []
    for cells in [head, *body]:
        left = [cells[0].ljust(widths[0]), cells[1].rjust(widths[1]), cells[2].ljust(widths[2])]
        right = [cells[3].rjust(widths[3]), cells[4].ljust(widths[4]), cells[5]]
        lines.append("  ".join(left + right).rstrip())
    lines.insert(1, "-" * max(len(line) for line in lines))
    return "\n".join(lines)


async def run(sections: tuple[str, ...], quick: bool) -> list[Row]:
    rounds = {
        "calls": 10 if quick else 60,
        "memory": 100 if quick else 1000,
        "bulk": 2 if quick else 5,
        "cold": 3 if quick else 9,
        "sandbox": 30 if quick else 150,
        "ledger": 40 if quick else 200,
    }
    rows: list[Row] = []

    async def section(name: str, make: Callable[[], Awaitable[list[Row]]]) -> None:
        if name not in sections:
            return
        t0 = time.perf_counter()
        try:
            rows.extend(await make())
        except Exception as exc:  # one broken bench must not hide the others' figures
            rows.append(Row(f"{name}: failed", type(exc).__name__, str(exc)[:60], None))
        print(f"  {name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)

    await section("context", figures.context_rows)
    await section("sandbox", lambda: figures.sandbox_rows(rounds["sandbox"]))
    await section("ledger", lambda: ledger_rows(rounds["ledger"]))
    if {"calls", "bulk", "cold"} & set(sections):
        with sandbox_process(*SANDBOX_FLAGS) as base:
            await section("calls", lambda: figures.call_rows(base, rounds["calls"], rounds["memory"]))
            await section("bulk", lambda: figures.bulk_rows(base, rounds["bulk"]))
            await section("cold", lambda: figures.cold_start_rows(base, rounds["cold"]))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, for CI (about a minute)")
    parser.add_argument("--json", action="store_true", help="also print the rows as one JSON line")
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help=f"comma-separated sections: {','.join(SECTIONS)}"
    )
    args = parser.parse_args()
    sections = tuple(s.strip() for s in args.only.split(",") if s.strip())
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {sorted(unknown)}; choose from {','.join(SECTIONS)}")
    t0 = time.perf_counter()
    rows = asyncio.run(run(sections, args.quick))
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"dpg-mcp bench{' --quick' if args.quick else ''}: {when}; {machine()}")
    print("ratio = ours / baseline, medians of alternating rounds; lower is better")
    print(table(rows))
    print(f"total {time.perf_counter() - t0:.0f} s")
    if args.json:
        print(json.dumps([asdict(r) for r in rows]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
