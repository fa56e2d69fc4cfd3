"""`make bench`: every benchmark in one run, one table, each row beside the kernel's figure measured
in the same run on the same machine.

    .venv/bin/python bench/all.py [--mbytes N] [--seconds S] [--out DIR] [--only WORD]

Needs root.  A progress line per group goes to stderr; a group that fails leaves its rows as
"failed: reason" and the others still run.  The table is printed as markdown and written to
DIR/bench.md and DIR/bench.json (default ``build/bench``), from which README's Performance
section is updated.  Ratios read "times the kernel's figure"; for an RTT it is the kernel's RTT
over ours, so in every row above 1 would beat the kernel.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

# bench/http.py is named like the stdlib's package: keep this directory behind the stdlib and
# load that one file under another name.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != str(_HERE)] + [str(_HERE)]

from common import Row  # noqa: E402


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", _HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tcp_bulk, http_bench, udp_rtt, latency, idle = (_load(n) for n in ("tcp_bulk", "http", "udp_rtt", "latency", "idle"))


@dataclasses.dataclass
class Group:
    """Rows measured together (they share a kernel baseline); ``names`` label them if it fails."""

    title: str
    names: list[str]
    run: Callable[[], list[Row]]


def groups(mbytes: int, seconds: float) -> list[Group]:
    kernel: dict[str, float] = {}

    def bulk(offload: bool) -> list[Row]:
        if "bulk" not in kernel:
            kernel["bulk"] = tcp_bulk.kernel_to_kernel(mbytes * 1_000_000)
        rows: list[Row] = tcp_bulk.rows(mbytes, offload, kernel["bulk"])
        return rows

    def http(body: int) -> Callable[[], list[Row]]:
        return lambda: list(http_bench.rows(seconds, body))

    modes = ("requests keep-alive", "requests new connection", "http.client keep-alive",
             "http.client new connection")
    return [
        Group("TCP bulk, offloads on", ["TCP bulk, offloads on"], lambda: bulk(True)),
        Group("TCP bulk, no offloads", ["TCP bulk, no offloads"], lambda: bulk(False)),
        Group("HTTP 1 KB", [f"HTTP {m}, stack as client, 1 KB" for m in modes], http(1024)),
        Group("HTTP 1 MB", [f"HTTP {m}, stack as client, 1 MB" for m in modes], http(1 << 20)),
        Group("HTTP stack as server", [f"HTTP {m}, stack as server, 1 KB" for m in modes],
              lambda: list(http_bench.server_rows(seconds, 1024))),
        Group("UDP round trips", ["UDP round trips"], lambda: list(udp_rtt.rows(20000, 64))),
        Group("ping and connections", ["ping RTT", "TCP connections/s"], lambda: list(latency.rows(2000))),
        Group("idle connections RSS", ["memory of 10,000 idle connections"], lambda: list(idle.rows(10_000))),
    ]


def run(selected: list[Group]) -> list[Row]:
    rows: list[Row] = []
    for group in selected:
        t0 = time.perf_counter()
        print(f"bench: {group.title} ...", file=sys.stderr, flush=True)
        try:
            got = group.run()
        except (Exception, SystemExit) as exc:  # one group's failure must not end the run (http.py exits)
            reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:160]
            got = [Row(name, "", error=reason) for name in group.names]
        for row in got:
            ours, kernel = row.figures()
            state = f"failed: {row.error}" if row.error else f"{ours} vs {kernel} ({row.ratio})"
            print(f"bench:   {row.name}: {state}", file=sys.stderr, flush=True)
        print(f"bench: {group.title} done in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        rows += got
    return rows


def markdown(rows: list[Row]) -> str:
    lines = ["| benchmark | pytcp_green | Linux kernel | kernel baseline | ratio |", "|---|---|---|---|---|"]
    for r in rows:
        if r.error:
            lines.append(f"| {r.name} | failed: {r.error} | | | |")
        else:
            ours, kernel = r.figures()
            lines.append(f"| {r.name} | {ours} | {kernel} | {r.baseline} | {r.ratio} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mbytes", type=int, default=100, help="megabytes per bulk transfer (default 100)")
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per HTTP mode (default 2)")
    parser.add_argument("--out", default="build/bench", help="where bench.md and bench.json go")
    parser.add_argument("--only", help="run only the groups whose title contains this word")
    args = parser.parse_args()
    selected = [g for g in groups(args.mbytes, args.seconds) if not args.only or args.only in g.title]
    rows = run(selected)
    table = markdown(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    (out / "bench.md").write_text(f"Measured {stamp}, {os.cpu_count()} cores.\n\n{table}")
    (out / "bench.json").write_text(json.dumps({"date": stamp, "cores": os.cpu_count(),
                                                "rows": [dataclasses.asdict(r) for r in rows]}, indent=1))
    print(table, end="")


if __name__ == "__main__":
    main()
