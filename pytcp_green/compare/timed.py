"""``python -m pytcp_green.compare.timed OUT (script | -m module) [args]``: run a program, write its wall time.

OUT gets one line, ``<wall seconds> <start, seconds since the epoch>``: the start tells the capture
reader which connections are the program's (the ``--wait-port`` probes come before it).

Both runs of ``pytcp-green compare`` start the program through this wrapper (over the stack as the
module ``pytcp-green run`` runs, so after the patch), so the time compared is the program's own —
from its first line to its exit — and not the lab, relay or stack start-up around it.
"""

from __future__ import annotations

import sys
import time

from pytcp_green.patches.run import run_target


def main(argv: list[str]) -> int:
    if len(argv) < 2 or (argv[1] == "-m" and len(argv) < 3):
        print("usage: python -m pytcp_green.compare.timed OUT (script | -m module) [args]", file=sys.stderr)
        return 2
    out, program = argv[0], argv[1:]
    epoch = time.time()  # when the program starts, on the captures' clock
    started = time.monotonic()
    try:
        if program[0] == "-m":
            status = run_target(None, program[1], program[2:])
        else:
            status = run_target(program[0], None, program[1:])
    finally:
        with open(out, "w", encoding="ascii") as f:
            f.write(f"{time.monotonic() - started:.6f} {epoch:.6f}\n")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
