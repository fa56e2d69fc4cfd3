"""Congestion control modules behind one interface (:class:`~.base.CongestionControl`), chosen by name
as Linux chooses them: ``net.ipv4.tcp_congestion_control`` for new sockets, ``TCP_CONGESTION`` per
socket.  :mod:`.reno` is RFC 5681, :mod:`.cubic` RFC 9438; :mod:`.base` holds the shared slow start
and RFC 6928's initial window.
"""

from __future__ import annotations

from collections.abc import Callable

from pytcp_green.stack.tcp.cc.base import CongestionControl
from pytcp_green.stack.tcp.cc.cubic import Cubic
from pytcp_green.stack.tcp.cc.reno import Reno

MODULES: dict[str, Callable[[int], CongestionControl]] = {"reno": Reno, "cubic": Cubic}
FALLBACK = "reno"  # Linux falls back to reno when the default cannot be had (tcp_assign_congestion_control)

__all__ = ["FALLBACK", "MODULES", "CongestionControl", "create", "switch"]


def create(name: str, mss: int) -> CongestionControl:
    """A fresh module for a connection (IW10, ssthresh arbitrarily high)."""
    return MODULES[name](mss)


def switch(old: CongestionControl, name: str, mss: int) -> CongestionControl:
    """TCP_CONGESTION on a live connection: the new module starts from the current window, as Linux's
    tcp_reinit_congestion_control keeps snd_cwnd and snd_ssthresh."""
    new = MODULES[name](mss)
    new.cwnd = old.cwnd
    new.ssthresh = old.ssthresh
    new.hystart = old.hystart  # HyStart++ only in the initial slow start (RFC 9406 §4.3)
    return new
