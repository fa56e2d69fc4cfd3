"""The token bucket that paces the ICMP errors a host sends (RFC 1812 §4.3.2.8, RFC 4443 §2.4 f).

Linux's global ICMP limits: ``net.ipv4.icmp_msgs_per_sec`` tokens come back each second, at most
``net.ipv4.icmp_msgs_burst`` are held, and every error spends one, so a flood of offending
packets cannot turn the host into an amplifier.  Linux applies the same knobs to ICMPv6; here
each ICMP layer has a bucket of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytcp_green.stack.sysctl import Sysctl


class IcmpRateLimit:
    """One bucket, full at creation; :meth:`take` says whether an error may go out ``now``."""

    def __init__(self, sysctl: Sysctl) -> None:
        self.sysctl = sysctl
        self._tokens = float(sysctl.int("net.ipv4.icmp_msgs_burst"))
        self._refilled = 0.0

    def take(self, now: float) -> bool:
        """Spend a token if one is there, after adding those earned since the last call."""
        sysctl = self.sysctl
        rate = sysctl.int("net.ipv4.icmp_msgs_per_sec")
        burst = sysctl.int("net.ipv4.icmp_msgs_burst")
        self._tokens = min(float(burst), self._tokens + (now - self._refilled) * rate)
        self._refilled = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
