"""Host side of IP multicast (RFC 1112 §7) with IGMPv3 (RFC 3376 §5, §7) and IGMPv1/v2 compatibility (RFC 2236 §3).

Sockets join and leave groups per interface; memberships are reference-counted, and the
union over all interfaces is :attr:`Ip4Layer.groups`, which IPv4 input filters on.  Every group is
in EXCLUDE mode with an empty source list ("any source", what IP_ADD_MEMBERSHIP asks for).

* Host compatibility mode (RFC 3376 §7.2.1): IGMPv3 unless a v1 or v2 query was heard within the
  Older Version Querier Present Timeout (§8.12: robustness x query interval + query response
  interval); ``net.ipv4.conf.default.force_igmp_version`` (as Linux's) pins a version.
* Joining sends an unsolicited report at once and ``igmp_qrv - 1`` more at random times within
  the Unsolicited Report Interval (RFC 3376 §5.1: a CHANGE_TO_EXCLUDE record; RFC 2236 §3: a v2
  report); leaving sends CHANGE_TO_INCLUDE records the same way, or a v2 Leave Group to
  224.0.0.2 (RFC 2236 §3), or nothing in v1 mode (RFC 1112 has no leave).
* Queries are answered after a random delay within their Max Resp Time: in v3 mode per the five
  rules of RFC 3376 §5.2 (one pending answer to a general query, per-group answers merged, source
  lists for Group-and-Source-Specific queries), in v1/v2 mode with a timer per group that is only
  ever shortened (RFC 2236 §3), and cancelled when another member's report is heard (report
  suppression, RFC 2236 §3; v3 has none).
* 224.0.0.1 is never reported (RFC 2236 §6, RFC 3376 §5).  Reports carry TTL 1 and the Router
  Alert option (RFC 2236 §2, RFC 3376 §4), from the interface's address, or 0.0.0.0 while it has
  none (RFC 3376 §4.2.13).  A general query sent to a group other than 224.0.0.1, or a
  group-specific one not sent to its group, is ignored (RFC 3376 §4.1.12, §9.1).
"""

from __future__ import annotations

import errno
import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from pytcp_green.stack.timers import Timer
from pytcp_green.stack.wire import Malformed
from pytcp_green.stack.wire.igmp import (
    ALL_ROUTERS,
    ALL_SYSTEMS,
    ALL_V3_ROUTERS,
    CHANGE_TO_EXCLUDE,
    CHANGE_TO_INCLUDE,
    MODE_IS_EXCLUDE,
    MODE_IS_INCLUDE,
    ROUTER_ALERT,
    TYPE_QUERY,
    TYPE_V1_REPORT,
    TYPE_V2_LEAVE,
    TYPE_V2_REPORT,
    TYPE_V3_REPORT,
    IgmpMessage,
    IgmpQuery,
    IgmpRecord,
    igmp_v2,
    igmp_v3_report,
    is_multicast4,
)
from pytcp_green.stack.wire.ip4 import PROTO_IGMP

if TYPE_CHECKING:
    from pytcp_green.stack.interface import Interface
    from pytcp_green.stack.services import Services
    from pytcp_green.stack.wire.ip4 import Ip4Packet

UNSPECIFIED = bytes(4)
TOS_INTERNETWORK_CONTROL = 0xC0  # IP precedence 6, what Linux puts on IGMP (RFC 791 precedence)
V1_MAX_RESP = 100  # tenths of a second: a v1 query's Max Resp is 0 and means 10 s (RFC 2236 §4)
MAX_RECORDS_PER_REPORT = 64  # 8 octets each with no sources: a report stays far below any MTU
QUERY_INTERVAL = 125.0  # RFC 3376 §8.2 default, for the older-querier timeout when a query gives none
QUERY_RESPONSE_INTERVAL = 10.0  # RFC 3376 §8.3


def reportable(group: bytes) -> bool:
    return group != ALL_SYSTEMS


@dataclass
class _Pending:
    """A scheduled v3 answer for one group: its sources (empty: the whole group)."""

    timer: Timer
    sources: set[bytes] = field(default_factory=set)


@dataclass
class IgmpIf:
    """IGMP state of one interface."""

    iface: Interface
    groups: dict[bytes, int] = field(default_factory=dict)  # group -> join count
    v1_until: float = -1.0  # Older Version Querier Present, per version (RFC 3376 §7.2.1)
    v2_until: float = -1.0
    general: Timer | None = None  # v3: the pending answer to a general query (§5.2 rule 1-2)
    pending: dict[bytes, _Pending] = field(default_factory=dict)  # per-group answers (v3 and v1/v2)


class IgmpHost(Protocol):
    """What IGMP needs from IPv4 (:class:`~pytcp_green.stack.ipv4.ip.Ip4Layer`): the groups input accepts, output."""

    groups: set[bytes]

    def output(self, src: bytes, dst: bytes, proto: int, payload: bytes | bytearray | memoryview, now: float, *,
               tos: int = 0, ttl: int | None = None, iface: Interface | None = None, options: bytes = b"") -> int: ...


class Igmp:
    def __init__(self, svc: Services, ip4: IgmpHost) -> None:
        self.svc = svc
        self.ip4 = ip4
        self.ifs: dict[Interface, IgmpIf] = {}

    def _state(self, iface: Interface) -> IgmpIf:
        state = self.ifs.get(iface)
        if state is None:
            state = self.ifs[iface] = IgmpIf(iface)
        return state

    def version(self, iface: Interface, now: float) -> int:
        """The host compatibility mode on ``iface`` (RFC 3376 §7.2.1)."""
        forced = self.svc.sysctl.int("net.ipv4.conf.default.force_igmp_version")
        if forced in (1, 2, 3):
            return forced
        state = self.ifs.get(iface)
        if state is None:
            return 3
        if now < state.v1_until:
            return 1
        if now < state.v2_until:
            return 2
        return 3

    def joined(self, iface: Interface, group: bytes) -> bool:
        state = self.ifs.get(iface)
        return state is not None and group in state.groups

    # -- membership -------------------------------------------------------------------------------------
    def join(self, iface: Interface, group: bytes, now: float) -> None:
        if not is_multicast4(group):
            raise OSError(errno.EINVAL, "not a multicast group")
        state = self._state(iface)
        count = state.groups.get(group, 0)
        state.groups[group] = count + 1
        if count:
            return
        self.ip4.groups.add(group)
        self.svc.stats["igmp.join"] += 1
        if reportable(group):
            self._state_change(state, group, True, now)

    def leave(self, iface: Interface, group: bytes, now: float) -> None:
        state = self.ifs.get(iface)
        count = 0 if state is None else state.groups.get(group, 0)
        if state is None or count == 0:
            return
        if count > 1:
            state.groups[group] = count - 1
            return
        del state.groups[group]
        pending = state.pending.pop(group, None)
        if pending is not None:
            pending.timer.cancel()
        if group != ALL_SYSTEMS and not any(group in s.groups for s in self.ifs.values()):
            self.ip4.groups.discard(group)
        self.svc.stats["igmp.leave"] += 1
        if reportable(group):
            self._state_change(state, group, False, now)

    def _state_change(self, state: IgmpIf, group: bytes, joining: bool, now: float) -> None:
        """RFC 3376 §5.1 / RFC 2236 §3: the first report now, the repeats at random later times."""
        version = self.version(state.iface, now)
        if version == 1 and not joining:
            return  # IGMPv1 has no leave message
        if version < 3 and not joining:
            self._send(state.iface, ALL_ROUTERS, igmp_v2(TYPE_V2_LEAVE, group), now)  # leaves are not repeated
            self.svc.stats["igmp.tx.leave"] += 1
            return
        self._unsolicited(state, group, joining, version, now)
        sysctl = self.svc.sysctl
        interval = sysctl.float("net.ipv4.conf.default.igmpv3_unsolicited_report_interval" if version == 3 else
                                "net.ipv4.conf.default.igmpv2_unsolicited_report_interval")
        when = now
        for _ in range(max(sysctl.int("net.ipv4.igmp_qrv") - 1, 0)):
            when += self.svc.rng.uniform(0.0, interval)
            self.svc.timers.schedule(when, functools.partial(self._repeat, state, group, joining))

    def _repeat(self, state: IgmpIf, group: bytes, joining: bool, now: float) -> None:
        if (group in state.groups) != joining:
            return  # the membership flipped back meanwhile: that change sent its own reports
        version = self.version(state.iface, now)
        if version < 3 and not joining:
            return
        self._unsolicited(state, group, joining, version, now)

    def _unsolicited(self, state: IgmpIf, group: bytes, joining: bool, version: int, now: float) -> None:
        if version == 3:
            kind = CHANGE_TO_EXCLUDE if joining else CHANGE_TO_INCLUDE
            self._send_v3(state.iface, [IgmpRecord(kind, group)], now)
        else:
            self._send_v12(state.iface, group, version, now)

    # -- output ------------------------------------------------------------------------------------------
    def _send(self, iface: Interface, dst: bytes, message: bytes, now: float) -> None:
        src = iface.ip4[0].ip.packed if iface.ip4 else UNSPECIFIED
        self.ip4.output(src, dst, PROTO_IGMP, message, now, ttl=1, tos=TOS_INTERNETWORK_CONTROL,
                        iface=iface, options=ROUTER_ALERT)

    def _send_v3(self, iface: Interface, records: list[IgmpRecord], now: float) -> None:
        for i in range(0, len(records), MAX_RECORDS_PER_REPORT):
            self._send(iface, ALL_V3_ROUTERS, igmp_v3_report(records[i : i + MAX_RECORDS_PER_REPORT]), now)
            self.svc.stats["igmp.tx.v3_report"] += 1

    def _send_v12(self, iface: Interface, group: bytes, version: int, now: float) -> None:
        # v1/v2 reports go to the group itself (RFC 1112 appendix I, RFC 2236 §3).
        self._send(iface, group, igmp_v2(TYPE_V1_REPORT if version == 1 else TYPE_V2_REPORT, group), now)
        self.svc.stats[f"igmp.tx.v{version}_report"] += 1

    # -- input -------------------------------------------------------------------------------------------
    def receive(self, iface: Interface, pkt: Ip4Packet, now: float) -> None:
        stats = self.svc.stats
        try:
            msg = IgmpMessage.parse(pkt.payload)
        except Malformed as exc:
            stats["igmp.drop." + exc.reason] += 1
            return
        if msg.type == TYPE_QUERY:
            assert msg.query is not None
            self._query(iface, pkt.dst, msg.query, now)
        elif msg.type in (TYPE_V1_REPORT, TYPE_V2_REPORT):
            stats["igmp.rx.report"] += 1
            self._suppress(iface, msg.group, now)
        elif msg.type in (TYPE_V2_LEAVE, TYPE_V3_REPORT):
            stats["igmp.rx.other"] += 1  # for routers
        else:
            stats["igmp.rx.unknown_type"] += 1

    def _suppress(self, iface: Interface, group: bytes, now: float) -> None:
        """RFC 2236 §3: another member answered for the group; in v1/v2 mode our pending report is moot."""
        state = self.ifs.get(iface)
        if state is None or self.version(iface, now) == 3:
            return
        pending = state.pending.pop(group, None)
        if pending is not None:
            pending.timer.cancel()
            self.svc.stats["igmp.report_suppressed"] += 1

    def _query(self, iface: Interface, dst: bytes, query: IgmpQuery, now: float) -> None:
        stats = self.svc.stats
        general = query.group == UNSPECIFIED
        if (general and dst != ALL_SYSTEMS) or (not general and dst != query.group):
            stats["igmp.drop.bad_query_destination"] += 1
            return
        if not general and not is_multicast4(query.group):
            stats["igmp.drop.bad_query_group"] += 1
            return
        stats[f"igmp.rx.query_v{query.version}"] += 1
        state = self._state(iface)
        if query.version < 3:
            # RFC 3376 §7.2.1: an older querier is present; §8.12 says for how long.
            qqi = QUERY_INTERVAL
            timeout = self.svc.sysctl.int("net.ipv4.igmp_qrv") * qqi + QUERY_RESPONSE_INTERVAL
            before = self.version(iface, now)
            if query.version == 1:
                state.v1_until = now + timeout
            else:
                state.v2_until = now + timeout
            if before == 3:
                self._cancel_all(state)  # v3 answers pending are not what the querier can hear now
        max_resp = (query.max_resp or V1_MAX_RESP) if query.version == 1 else query.max_resp
        delay = self.svc.rng.uniform(0.0, max_resp / 10.0)
        version = self.version(iface, now)
        if version < 3:
            groups = [g for g in state.groups if reportable(g)] if general else (
                [query.group] if query.group in state.groups and reportable(query.group) else [])
            for group in groups:
                self._arm_v12(state, group, now + delay)
            return
        when = now + delay
        # RFC 3376 §5.2 rule 1: a pending general answer due sooner covers this query.
        if state.general is not None and not state.general.cancelled and state.general.when <= when:
            return
        if general:
            if state.general is not None:
                state.general.cancel()
            state.general = self.svc.timers.schedule(when, functools.partial(self._answer_general, state))
            return
        if query.group not in state.groups or not reportable(query.group):
            stats["igmp.rx.query_not_member"] += 1
            return
        pending = state.pending.get(query.group)
        if pending is None or pending.timer.cancelled:
            # Rule 3: a new per-group answer, with the query's sources (empty: the whole group).
            timer = self.svc.timers.schedule(when, functools.partial(self._answer_group, state, query.group))
            state.pending[query.group] = _Pending(timer, set(query.sources))
            return
        # Rules 4-5: merge into the pending answer, due at the earlier time; a group-wide query
        # (or a pending group-wide answer) makes the answer group-wide.
        if not query.sources or not pending.sources:
            pending.sources.clear()
        else:
            pending.sources.update(query.sources)
        if when < pending.timer.when:
            pending.timer.cancel()
            pending.timer = self.svc.timers.schedule(when, functools.partial(self._answer_group, state,
                                                                             query.group))

    def _arm_v12(self, state: IgmpIf, group: bytes, when: float) -> None:
        """RFC 2236 §3: start the group's timer, or shorten it; never lengthen a running one."""
        pending = state.pending.get(group)
        if pending is not None and not pending.timer.cancelled and pending.timer.when <= when:
            return
        if pending is not None:
            pending.timer.cancel()
        timer = self.svc.timers.schedule(when, functools.partial(self._answer_v12, state, group))
        state.pending[group] = _Pending(timer)

    def _cancel_all(self, state: IgmpIf) -> None:
        if state.general is not None:
            state.general.cancel()
            state.general = None
        for pending in state.pending.values():
            pending.timer.cancel()
        state.pending.clear()

    def _answer_v12(self, state: IgmpIf, group: bytes, now: float) -> None:
        state.pending.pop(group, None)
        if group in state.groups:
            version = self.version(state.iface, now)
            if version == 3:  # the older querier went away meanwhile: answer as v3
                self._send_v3(state.iface, [IgmpRecord(MODE_IS_EXCLUDE, group)], now)
            else:
                self._send_v12(state.iface, group, version, now)
            self.svc.stats["igmp.tx.query_answer"] += 1

    def _answer_general(self, state: IgmpIf, now: float) -> None:
        state.general = None
        records = [IgmpRecord(MODE_IS_EXCLUDE, g) for g in state.groups if reportable(g)]
        if records:
            self._send_v3(state.iface, records, now)
            self.svc.stats["igmp.tx.query_answer"] += 1

    def _answer_group(self, state: IgmpIf, group: bytes, now: float) -> None:
        pending = state.pending.pop(group, None)
        if pending is None or group not in state.groups:
            return
        if pending.sources:
            # EXCLUDE({}) accepts every source, so all the queried ones are wanted (§5.2).
            record = IgmpRecord(MODE_IS_INCLUDE, group, sorted(pending.sources))
        else:
            record = IgmpRecord(MODE_IS_EXCLUDE, group)
        self._send_v3(state.iface, [record], now)
        self.svc.stats["igmp.tx.query_answer"] += 1
