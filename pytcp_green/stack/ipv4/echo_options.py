"""The IP options an ICMP echo reply carries back: record route and timestamp.

RFC 1122 §3.2.2.6: a Record Route or Timestamp option received in an Echo Request SHOULD be
updated to include the current host and included in the IP header of the Echo Reply, without
truncation, so the recorded route covers the whole round trip.  The options' formats are
RFC 791 §3.1:

* Record Route (type 7): ``type, length, pointer, route data``; the pointer (1-based, at least 4)
  names the next free 4-byte slot; when the option is full it goes back as it came.
* Timestamp (type 68): ``type, length, pointer, overflow(4 bits)|flag(4 bits), data``; flag 0
  stores timestamps, 1 an address and a timestamp, 3 a timestamp only in slots whose
  prespecified address is ours.  When there is no room the overflow count goes up (it stops at
  15).  The core has no wall clock, so the timestamp is the monotonic time in milliseconds with
  the high-order bit set, which RFC 791 prescribes for a time "not with respect to midnight UT".

Other options (source routes, Router Alert) are not echoed.
"""

from __future__ import annotations

import struct

from pytcp_green.stack.wire.ip4 import OPT_RR, OPT_TS, Ip4Packet

_TS_ONLY, _TS_AND_ADDR, _TS_PRESPEC = 0, 1, 3
_NONSTANDARD_TIME = 0x80000000


def reply_options(request: Ip4Packet, local: bytes, now: float) -> bytes:
    """The options for the reply to ``request``, sent from ``local`` at ``now``; b"" when none."""
    if not request.options:
        return b""
    out = bytearray()
    for kind, raw in request.iter_options():
        if kind == OPT_RR:
            out += _record_route(bytearray(raw), local)
        elif kind == OPT_TS:
            out += _timestamp(bytearray(raw), local, now)
    return bytes(out)


def _record_route(opt: bytearray, local: bytes) -> bytearray:
    pointer = opt[2]
    if pointer >= 4 and pointer + 3 <= len(opt):
        opt[pointer - 1:pointer + 3] = local
        opt[2] = pointer + 4
    return opt


def _timestamp(opt: bytearray, local: bytes, now: float) -> bytearray:
    if len(opt) < 4:
        return opt
    pointer, flag = opt[2], opt[3] & 0x0F
    stamp = struct.pack("!I", (int(now * 1000) & 0x7FFFFFFF) | _NONSTANDARD_TIME)
    slot = 8 if flag in (_TS_AND_ADDR, _TS_PRESPEC) else 4
    if pointer < 5 or pointer + slot - 1 > len(opt):
        overflow = opt[3] >> 4
        opt[3] = (min(overflow + 1, 15) << 4) | flag
        return opt
    at = pointer - 1
    if flag == _TS_ONLY:
        opt[at:at + 4] = stamp
    elif flag == _TS_AND_ADDR:
        opt[at:at + 8] = local + stamp
    elif flag == _TS_PRESPEC:
        if bytes(opt[at:at + 4]) != local:
            return opt  # the next prespecified hop is not us: leave it for that hop
        opt[at + 4:at + 8] = stamp
    else:
        return opt  # an unknown flag: nothing defined to do
    opt[2] = pointer + slot
    return opt
