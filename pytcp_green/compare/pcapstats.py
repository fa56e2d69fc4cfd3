"""What a run's capture shows, read with tshark (Wireshark's dissectors, an oracle nobody here wrote).

For each run: TCP connections opened, payload bytes each way, retransmissions (tshark's own
``tcp.analysis.retransmission`` / ``fast_retransmission`` judgement), resets, frames tshark found
malformed, and per connection the handshake options (MSS, window scale, each way), the number
and largest size of data segments, the smallest window advertised and the median RTT tshark
measured from ACKs (``tcp.analysis.ack_rtt``).  "Out" is from the program's address.
"""

from __future__ import annotations

import statistics
import subprocess
from dataclasses import asdict, dataclass, field

_FIELDS = (
    "frame.time_epoch", "ip.src", "ipv6.src", "tcp.srcport", "ip.dst", "ipv6.dst", "tcp.dstport", "tcp.len",
    "tcp.flags.syn", "tcp.flags.ack", "tcp.flags.reset", "tcp.analysis.retransmission",
    "tcp.analysis.fast_retransmission", "tcp.options.mss_val", "tcp.options.wscale.shift",
    "tcp.window_size", "tcp.analysis.ack_rtt", "_ws.malformed",
)
TSHARK_TIMEOUT = 120.0


@dataclass
class Connection:
    """One TCP connection as the capture shows it; ``client`` is the side that sent the SYN."""

    client: str
    server: str
    mss: dict[str, int] = field(default_factory=dict)  # "client"/"server" -> MSS option
    wscale: dict[str, int] = field(default_factory=dict)  # "client"/"server" -> shift count
    data_segments: int = 0
    largest_segment: int = 0
    smallest_window: int | None = None
    retransmissions: int = 0
    resets: int = 0
    rtts: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        out = asdict(self)
        del out["rtts"]
        out["median_rtt_ms"] = round(statistics.median(self.rtts) * 1000, 3) if self.rtts else None
        return out


@dataclass
class CaptureStats:
    frames: int = 0
    malformed: int = 0
    connections: list[Connection] = field(default_factory=list)
    bytes_out: int = 0
    bytes_in: int = 0
    retransmissions: int = 0
    resets: int = 0

    def summary(self) -> dict[str, object]:
        return {"frames": self.frames, "malformed": self.malformed, "connections": len(self.connections),
                "bytes_out": self.bytes_out, "bytes_in": self.bytes_in,
                "retransmissions": self.retransmissions, "resets": self.resets,
                "per_connection": [c.summary() for c in self.connections]}


def _first(value: str) -> str:
    return value.split(",", 1)[0]


def tshark_rows(path: str, fields: tuple[str, ...], *options: str) -> list[list[str]]:
    """One row of ``fields`` per frame of the capture at ``path`` (``options``: a display filter,
    occurrence rules), each row padded to ``len(fields)``; OSError when tshark cannot read it."""
    argv = ["tshark", "-n", "-r", path, *options, "-T", "fields", "-E", "separator=\t"]
    for name in fields:
        argv += ["-e", name]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=TSHARK_TIMEOUT, check=False)
    if done.returncode != 0:
        raise OSError(f"tshark could not read {path}: {done.stderr.strip()}")
    width = len(fields)
    return [(line.split("\t") + [""] * width)[:width] for line in done.stdout.splitlines()]


def read_capture(path: str, local: str, since: float | None = None) -> CaptureStats:
    """Summarise the TCP traffic of the capture at ``path``; ``local`` is the program's address.
    Connections whose SYN came before ``since`` (the program's start) are not the program's: the
    ``--wait-port`` probes."""
    stats = CaptureStats()
    by_key: dict[tuple[str, str], Connection] = {}
    for cols in tshark_rows(path, _FIELDS, "-E", "occurrence=f"):
        (stamp, src4, src6, sport, dst4, dst6, dport, length, syn, ack, rst, retrans, fast, mss, wscale,
         window, rtt, malformed) = cols
        stats.frames += 1
        if malformed:
            stats.malformed += 1
        if not sport:
            continue
        src = f"{src4 or src6}:{sport}"
        dst = f"{dst4 or dst6}:{dport}"
        key = (min(src, dst), max(src, dst))
        conn = by_key.get(key)
        if syn == "1" and ack == "0" and (conn is None or conn.client != src):
            if since is not None and float(stamp) < since:
                by_key.pop(key, None)
                continue
            conn = by_key[key] = Connection(client=src, server=dst)  # a new connection on this 4-tuple
            stats.connections.append(conn)
        if conn is None:
            continue  # traffic of a connection that began before the capture
        side = "client" if src == conn.client else "server"
        if syn == "1":
            if mss:
                conn.mss[side] = int(_first(mss))
            if wscale:
                conn.wscale[side] = int(_first(wscale))
        size = int(length or 0)
        if size:
            conn.data_segments += 1
            conn.largest_segment = max(conn.largest_segment, size)
        if (src4 or src6) == local:
            stats.bytes_out += size
        else:
            stats.bytes_in += size
        if window and syn != "1":
            win = int(window)
            conn.smallest_window = win if conn.smallest_window is None else min(conn.smallest_window, win)
        if retrans or fast:
            conn.retransmissions += 1
            stats.retransmissions += 1
        if rst == "1":
            conn.resets += 1
            stats.resets += 1
        if rtt:
            conn.rtts.append(float(rtt))
    return stats
