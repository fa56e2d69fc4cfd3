"""Connection states (RFC 9293 §3.3.2) and the constants every part of the connection shares.

A leaf module: the connection's modules all import it and it imports none of them.
"""

from __future__ import annotations

CLOSED = 0
LISTEN = 1
SYN_SENT = 2
SYN_RECEIVED = 3
ESTABLISHED = 4
FIN_WAIT_1 = 5
FIN_WAIT_2 = 6
CLOSE_WAIT = 7
CLOSING = 8
LAST_ACK = 9
TIME_WAIT = 10
STATE_NAMES = ("CLOSED", "LISTEN", "SYN_SENT", "SYN_RECEIVED", "ESTABLISHED", "FIN_WAIT_1",
               "FIN_WAIT_2", "CLOSE_WAIT", "CLOSING", "LAST_ACK", "TIME_WAIT")

# States in which data may still flow out (ours not yet fully acknowledged).
SENDING = frozenset((ESTABLISHED, CLOSE_WAIT, FIN_WAIT_1, CLOSING, LAST_ACK))
# States in which the peer's data is accepted (RFC 9293 §3.10.7.4 seventh).
RECEIVING = frozenset((ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2))
# States a keep-alive watches.
KEEPALIVE = frozenset((ESTABLISHED, CLOSE_WAIT, FIN_WAIT_1, FIN_WAIT_2))

DEFAULT_MSS4 = 536  # RFC 9293 §3.7.1 when the peer sends no MSS option
DEFAULT_MSS6 = 1220  # RFC 8200 §8.3
MIN_MSS = 64  # floor against absurd MSS options and ICMP-driven shrinking (Linux uses 48 + options)
TS_OPT_LEN = 12


def window_scale_for(space: int) -> int:
    """The window scale we offer (RFC 7323 §2.3): the smallest that lets ``space`` bytes be advertised."""
    scale = 0
    while scale < 14 and (65535 << scale) < space:
        scale += 1
    return scale
