"""Sequence-number arithmetic (RFC 9293 §3.4) done once, at the edge.

The wire carries 32-bit sequence numbers that wrap.  Inside a connection every sequence number is kept
*unwrapped*: a plain Python int that keeps growing past 2**32.  An incoming 32-bit value is mapped to the
unwrapped number nearest to a reference the connection already holds (RCV.NXT for sequence numbers,
SND.UNA for acknowledgments and SACK edges), which is exact as long as the value lies within 2**31 of
the reference, the same assumption RFC 9293's modular comparisons make.  After that, every comparison in
the state machine is an ordinary ``<`` on ints: no modular helpers to forget, and faster.
"""

from __future__ import annotations

MASK = 0xFFFFFFFF
HALF = 0x80000000


def unwrap(value: int, ref: int) -> int:
    """The unwrapped sequence number congruent to ``value`` (mod 2**32) nearest to ``ref``."""
    return ref + ((value - ref + HALF) & MASK) - HALF


def ts_before(a: int, b: int) -> bool:
    """RFC 7323 §5.2 timestamp order: ``a`` is earlier than ``b`` in the 32-bit modular sense."""
    return 0 < ((b - a) & MASK) < HALF
