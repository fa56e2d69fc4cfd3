"""The long fuzz of issue 11: 10^7 hostile frames through one stack, frames/s and peak memory.

    .venv/bin/python bench/fuzz.py [--frames N] [--seed S] [--traced N]

No root needed: the stack runs in virtual time (pytcp_green/sim/fuzz.py, the fuzzer the test
tests/stack/test_fuzz_hostile.py runs for 10^5 frames).  Prints a progress line every 10^6
frames (rate, RSS, the tables), the counters that show which layers were reached, the tables
an hour after every socket closed beside a fresh stack's, and the tracemalloc peak of a shorter
run (``--traced`` frames; tracing slows Python down several times, so it is not the long run).
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc

from pytcp_green.sim.fuzz import Fuzzer, build_target, run_timers, tables

PROGRESS = 1_000_000
HOUR = 3600.0


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def long_run(frames: int, seed: int) -> None:
    target = build_target(seed)
    fuzzer = Fuzzer(target, seed)
    start = time.perf_counter()
    peaks: dict[str, int] = {}
    done = 0
    while done < frames:
        chunk = min(PROGRESS, frames - done)
        fuzzer.run(chunk)
        done += chunk
        sizes = tables(target.stack)
        for name, value in sizes.items():
            peaks[name] = max(peaks.get(name, 0), value)
        elapsed = time.perf_counter() - start
        print(f"{done:>10,} frames  {done / elapsed:8,.0f} frames/s  max RSS {rss_mib():6.1f} MiB  "
              f"virtual {fuzzer.now:9,.0f} s  {sizes}", flush=True)
    elapsed = time.perf_counter() - start
    stats = target.stack.stats
    print(f"\n{frames:,} frames in {elapsed:.1f} s: {frames / elapsed:,.0f} frames/s, max RSS {rss_mib():.1f} MiB")
    print("errors: internal", stats["stack.drop.internal_error"], "timer", stats["stack.timer_error"])
    reached = ("tcp.rx", "tcp.passive_open", "tcp.established", "udp.rx", "arp.rx.request", "icmp4.rx.echo_request",
               "icmp6.rx.echo_request", "ip4.reasm.ok", "ip6.reasm.ok", "nd.rx.ns", "nd.rx.na", "nd.rx.ra",
               "nd.rx.redirect", "ip6.slaac.address")
    print("reached:", {name: stats[name] for name in reached})
    print("peak tables:", peaks)
    target.close(fuzzer.now)
    run_timers(target.stack, fuzzer.now + HOUR, fuzzer.now)
    fresh = build_target(seed)
    fresh.close(10.0)
    run_timers(fresh.stack, fuzzer.now + HOUR, 10.0)
    after, clean = tables(target.stack), tables(fresh.stack)
    print(f"{'table':14} {'fuzzed':>8} {'fresh':>8}   (an hour after every socket closed)")
    for name, value in after.items():
        print(f"{name:14} {value:8} {clean[name]:8}{'   <- left behind' if value > clean[name] else ''}")


def traced_run(frames: int, seed: int) -> None:
    tracemalloc.start()
    target = build_target(seed)
    Fuzzer(target, seed).run(frames)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"tracemalloc peak over {frames:,} frames: {peak / 2**20:.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--traced", type=int, default=200_000, help="frames of the tracemalloc run (0: none)")
    args = parser.parse_args()
    if args.traced:
        traced_run(args.traced, args.seed)
    long_run(args.frames, args.seed)


if __name__ == "__main__":
    main()
