"""The comparison: did the program behave the same over the kernel and over the stack?

It behaved the same when every run exited with the same status and printed the same stdout and
stderr.  Beside that verdict the report shows what differs (a unified diff of the outputs of the
first run of each), wall time as a median and spread over ``--runs``, and the captures' numbers
side by side (:mod:`.pcapstats`).  Exit status of ``pytcp-green compare``: 0 same, 1 different.
"""

from __future__ import annotations

import difflib
import json
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

from pytcp_green.compare.pcapstats import CaptureStats, read_capture
from pytcp_green.compare.runs import APP_IP4, Program, RunResult, run_over_kernel, run_over_stack


@dataclass
class Comparison:
    program: Program
    kernel: list[RunResult] = field(default_factory=list)
    stack: list[RunResult] = field(default_factory=list)
    kernel_capture: list[CaptureStats] = field(default_factory=list)
    stack_capture: list[CaptureStats] = field(default_factory=list)

    @property
    def same(self) -> bool:
        outcomes = {(r.status, r.stdout, r.stderr) for r in (*self.kernel, *self.stack)}
        return len(outcomes) == 1

    def differences(self) -> list[str]:
        """What differs between the first kernel run and the first stack run, as text lines."""
        k, s = self.kernel[0], self.stack[0]
        lines: list[str] = []
        if k.status != s.status:
            lines.append(f"exit status: kernel {k.status}, stack {s.status}")
        for name in ("stdout", "stderr"):
            a, b = getattr(k, name), getattr(s, name)
            if a != b:
                lines += difflib.unified_diff(a.splitlines(), b.splitlines(), f"{name} (kernel)", f"{name} (stack)",
                                              lineterm="")
        for over, runs in (("kernel", self.kernel), ("stack", self.stack)):
            if len({(r.status, r.stdout, r.stderr) for r in runs}) > 1:
                lines.append(f"the {over} runs did not agree among themselves")
        return lines

    def as_dict(self) -> dict[str, object]:
        return {
            "program": self.program.argv, "peer": self.program.peer,
            "impair": str(self.program.impair) if self.program.impair else None,
            "same": self.same, "differences": self.differences(),
            "kernel": {"runs": [r.as_dict() for r in self.kernel], "wall": _spread(self.kernel),
                       "captures": [c.summary() for c in self.kernel_capture]},
            "stack": {"runs": [r.as_dict() for r in self.stack], "wall": _spread(self.stack),
                      "captures": [c.summary() for c in self.stack_capture]},
        }

    def rows(self) -> list[tuple[str, object, object]]:
        """The numbers side by side, (label, kernel, stack): exit status, wall time, what the captures show."""
        rows: list[tuple[str, object, object]] = [("exit status", self.kernel[0].status, self.stack[0].status)]
        kw, sw = _spread(self.kernel), _spread(self.stack)
        rows.append(("wall time (median s)", _fmt(kw["median"]), _fmt(sw["median"])))
        if len(self.kernel) > 1:
            rows.append(("wall time (min-max s)", f"{_fmt(kw['min'])}-{_fmt(kw['max'])}",
                         f"{_fmt(sw['min'])}-{_fmt(sw['max'])}"))
        kc, sc = self.kernel_capture[0], self.stack_capture[0]
        for key in ("connections", "bytes_out", "bytes_in", "retransmissions", "resets", "malformed"):
            rows.append((key.replace("_", " "), kc.summary()[key], sc.summary()[key]))
        for i, (a_conn, b_conn) in enumerate(zip(kc.connections, sc.connections, strict=False), 1):
            rows.append((f"conn {i} mss c/s", _pair(a_conn.mss), _pair(b_conn.mss)))
            rows.append((f"conn {i} wscale c/s", _pair(a_conn.wscale), _pair(b_conn.wscale)))
            rows.append((f"conn {i} largest segment", a_conn.largest_segment, b_conn.largest_segment))
            rows.append((f"conn {i} median rtt ms", a_conn.summary()["median_rtt_ms"],
                         b_conn.summary()["median_rtt_ms"]))
        return rows

    def text(self) -> str:
        out = [f"{'':24}{'kernel':>16}{'stack':>16}"]
        out += [f"{label:24}{a!s:>16}{b!s:>16}" for label, a, b in self.rows()]
        out.append("")
        if self.same:
            out.append(f"same behaviour: exit status and output identical over {len(self.kernel)} run(s) each")
        else:
            out.append("DIFFERENT behaviour:")
            out += ["  " + line for line in self.differences()]
        return "\n".join(out)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _pair(values: dict[str, int]) -> str:
    return f"{values.get('client', '-')}/{values.get('server', '-')}"


def _spread(runs: list[RunResult]) -> dict[str, float | None]:
    walls = [r.wall for r in runs if r.wall is not None]
    if not walls:
        return {"median": None, "min": None, "max": None}
    return {"median": statistics.median(walls), "min": min(walls), "max": max(walls)}


def compare(program: Program, workdir: Path, runs: int = 1, progress: bool = True) -> Comparison:
    """Run ``program`` ``runs`` times over each, alternating kernel and stack; captures go to ``workdir``."""
    result = Comparison(program)
    for i in range(1, runs + 1):
        for over, runner, results, captures in (("kernel", run_over_kernel, result.kernel, result.kernel_capture),
                                                ("stack", run_over_stack, result.stack, result.stack_capture)):
            if progress:
                print(f"pytcp-green compare: run {i}/{runs} over the {over}", flush=True, file=sys.stderr)
            run = runner(program, workdir / f"{over}-{i}.pcap")
            results.append(run)
            captures.append(read_capture(run.pcap, APP_IP4, since=run.started))
    return result


def write_json(comparison: Comparison, path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(comparison.as_dict(), f, indent=2)
        f.write("\n")
