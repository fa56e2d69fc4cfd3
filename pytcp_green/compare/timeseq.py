"""Time-sequence graphs of a capture's TCP connections, as tcptrace and Wireshark's Stevens graph draw them.

For each connection the program opened (SYN at or after its start) the direction that carried
the most payload is drawn: every data segment a vertical bar from its first to its last sequence
number at the time it was captured (retransmissions, as tshark judges them, in red), the
cumulative ACK coming back as a step line, the receive window's right edge (ACK + window) above
it, and each SACK block (RFC 2018) the receiver reported as a short bar at its arrival time.
Sequence numbers are tshark's relative ones, so the kernel run and the stack run share a scale.

The data come from tshark; the drawing from matplotlib (optional: ``pip install
pytcp-green[report]``), imported only when a plot is drawn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pytcp_green.compare.pcapstats import tshark_rows

_FIELDS = (
    "tcp.stream", "frame.time_epoch", "ip.src", "ipv6.src", "tcp.srcport", "tcp.flags.syn", "tcp.flags.ack",
    "tcp.seq", "tcp.len", "tcp.ack", "tcp.window_size", "tcp.options.sack_le", "tcp.options.sack_re",
    "tcp.analysis.retransmission", "tcp.analysis.fast_retransmission",
)


@dataclass
class Direction:
    """One direction of a connection: its data segments and the ACKs, windows and SACKs sent back."""

    sender: str
    segments: list[tuple[float, int, int]] = field(default_factory=list)  # (time, seq, end)
    retransmits: list[tuple[float, int, int]] = field(default_factory=list)
    acks: list[tuple[float, int]] = field(default_factory=list)  # (time, cumulative ack)
    window_edges: list[tuple[float, int]] = field(default_factory=list)  # (time, ack + window)
    sacks: list[tuple[float, int, int]] = field(default_factory=list)  # (time, left edge, right edge)

    @property
    def payload(self) -> int:
        return sum(end - seq for _, seq, end in self.segments)


@dataclass
class Trace:
    """The time-sequence data of one connection; times are seconds from its SYN."""

    client: str
    server: str
    directions: dict[str, Direction] = field(default_factory=dict)  # keyed by sender "addr:port"

    @property
    def bulk(self) -> Direction | None:
        """The direction that carried the most payload (None when neither carried any)."""
        loaded = [d for d in self.directions.values() if d.segments]
        return max(loaded, key=lambda d: d.payload) if loaded else None


def _ints(value: str) -> list[int]:
    return [int(v) for v in value.split(",") if v]


def read_traces(path: str, since: float | None = None) -> list[Trace]:
    """The connections of the capture at ``path`` that began at or after ``since``, in order of their SYN."""
    traces: dict[str, tuple[float, Trace]] = {}  # tcp.stream -> (SYN time, trace)
    for cols in tshark_rows(path, _FIELDS, "-Y", "tcp", "-E", "occurrence=a", "-E", "aggregator=,"):
        (stream, stamp, src4, src6, sport, syn, ack_flag, seq, length, ack, window, sack_le, sack_re,
         retrans, fast) = cols
        when, src = float(stamp), f"{src4 or src6}:{sport}"
        if stream not in traces:
            if syn != "1" or ack_flag == "1" or (since is not None and when < since):
                traces[stream] = (when, Trace("", ""))  # not the program's connection: keep it out
                continue
            traces[stream] = (when, Trace(client=src, server=""))
        start, trace = traces[stream]
        if not trace.client:
            continue
        if src != trace.client and not trace.server:
            trace.server = src
        t = when - start
        sender = trace.directions.setdefault(src, Direction(src))
        size = int(length or 0)
        if size:
            bar = (t, int(seq), int(seq) + size)
            (sender.retransmits if retrans or fast else sender.segments).append(bar)
        if ack_flag == "1" and ack:
            # This segment acknowledges the other direction's data.
            other = trace.server if src == trace.client else trace.client
            if other:
                receiver_view = trace.directions.setdefault(other, Direction(other))
                receiver_view.acks.append((t, int(ack)))
                if window:
                    receiver_view.window_edges.append((t, int(ack) + int(window)))
                for left, right in zip(_ints(sack_le), _ints(sack_re), strict=False):
                    receiver_view.sacks.append((t, left, right))
    return [trace for _, trace in traces.values() if trace.client]


def plot_pair(kernel: Trace | None, stack: Trace | None, title: str, out: Path) -> None:
    """Draw the kernel run's and the stack run's graph of one connection side by side into ``out`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8), sharey=True)
    for ax, trace, over in ((axes[0], kernel, "kernel"), (axes[1], stack, "stack")):
        direction = trace.bulk if trace is not None else None
        ax.set_title(f"over the {over}" + (f": {direction.sender} sending" if direction else ": no data"))
        ax.set_xlabel("time since SYN (s)")
        ax.grid(True, alpha=0.3)
        if direction is None:
            continue
        ax.vlines([t for t, _, _ in direction.segments], [s for _, s, _ in direction.segments],
                  [e for _, _, e in direction.segments], colors="tab:blue", linewidth=1, label="data segment")
        if direction.acks:
            ax.step([t for t, _ in direction.acks], [a for _, a in direction.acks], where="post",
                    color="tab:green", linewidth=1, label="cumulative ACK")
        if direction.window_edges:
            ax.step([t for t, _ in direction.window_edges], [w for _, w in direction.window_edges], where="post",
                    color="tab:olive", linewidth=0.8, alpha=0.7, label="ACK + window")
        if direction.sacks:
            ax.vlines([t for t, _, _ in direction.sacks], [left for _, left, _ in direction.sacks],
                      [right for _, _, right in direction.sacks], colors="tab:purple", linewidth=3, alpha=0.6,
                      label="SACK block")
        if direction.retransmits:
            # Last and on top: the marks a reader looks for first.
            ax.vlines([t for t, _, _ in direction.retransmits], [s for _, s, _ in direction.retransmits],
                      [e for _, _, e in direction.retransmits], colors="tab:red", linewidth=2, zorder=5,
                      label="retransmission")
            ax.plot([t for t, _, _ in direction.retransmits], [e for _, _, e in direction.retransmits], "rx",
                    markersize=5, zorder=5)
        ax.legend(loc="upper left", fontsize="small")
    axes[0].set_ylabel("relative sequence number")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
