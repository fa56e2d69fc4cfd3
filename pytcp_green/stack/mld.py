"""MLDv2 listener (RFC 3810): reports for the groups the stack listens on, answers to queries.

Every group we listen on is in EXCLUDE mode with an empty source list ("any source"), which is
what an IPv6 host needs for its solicited-node and all-nodes groups (RFC 3810 §6.1 "ASM").

* Joining a group sends an unsolicited State Change Report, CHANGE_TO_EXCLUDE_MODE with no
  sources, ``mld_robustness`` times at random intervals within the Unsolicited Report Interval
  (§6.1, §9.11); leaving sends CHANGE_TO_INCLUDE_MODE with no sources the same way.
* A General Query is answered, after a random delay within its Maximum Response Delay, by one
  Current State Report listing every group as MODE_IS_EXCLUDE (§6.2 case 1); a
  Multicast-Address-Specific Query by a record for that group if we listen to it (case 2); a
  Multicast-Address-and-Source-Specific Query by MODE_IS_INCLUDE with the queried sources
  (§6.3: in EXCLUDE({}) mode we want all of them).
* The all-nodes group and groups of scope 0 and 1 are never reported (§6).
* Reports go to ff02::16 with hop limit 1 and a Router Alert hop-by-hop option (§5), from the
  link-local address, or from ``::`` while it is still tentative (§5.2.13).  Queries are
  accepted only from link-local sources with hop limit 1 (§5.1.14).
* MLDv1 queries (RFC 2710) are counted and not answered: the MLDv1 compatibility mode of §8
  is not implemented.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from pytcp_green.stack.timers import Timer
from pytcp_green.stack.wire.icmp6 import (
    CHANGE_TO_EXCLUDE,
    CHANGE_TO_INCLUDE,
    MODE_IS_EXCLUDE,
    MODE_IS_INCLUDE,
    TYPE_MLD_V2_REPORT,
    MldQuery,
    MldRecord,
    mld_report,
)
from pytcp_green.stack.wire.ip6 import (
    ALL_MLDV2_ROUTERS,
    ALL_NODES,
    NH_ICMP6,
    UNSPECIFIED,
    Ip6Packet,
    is_link_local6,
    multicast_scope,
    router_alert_hbh,
)

if TYPE_CHECKING:
    from pytcp_green.stack.ip6 import If6
    from pytcp_green.stack.stack import Stack

MAX_RECORDS_PER_REPORT = 60  # 20 octets each, so a report stays well inside a 1280-octet packet


def reportable(group: bytes) -> bool:
    return group != ALL_NODES and multicast_scope(group) > 1


class Mld:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self._general: dict[If6, Timer] = {}  # pending answer to a general query, per interface
        self._specific: dict[tuple[If6, bytes], Timer] = {}

    def _conf(self, name: str) -> float:
        return self.stack.sysctl.float(f"net.ipv6.conf.default.{name}")

    # -- membership -----------------------------------------------------------------------------------
    def join(self, if6: If6, group: bytes, now: float) -> None:
        count = if6.groups.get(group, 0)
        if6.groups[group] = count + 1
        if count == 0 and reportable(group):
            self._state_change(if6, group, CHANGE_TO_EXCLUDE, now)

    def leave(self, if6: If6, group: bytes, now: float) -> None:
        count = if6.groups.get(group, 0)
        if count <= 1:
            if count == 1 and group != ALL_NODES:
                del if6.groups[group]
                if reportable(group):
                    self._state_change(if6, group, CHANGE_TO_INCLUDE, now)
            return
        if6.groups[group] = count - 1

    def _state_change(self, if6: If6, group: bytes, kind: int, now: float) -> None:
        """§6.1: the first report now, the retransmissions at random times within the interval."""
        self._send(if6, [MldRecord(kind, group)], now)
        interval = self._conf("mldv2_unsolicited_report_interval")
        for _ in range(int(self._conf("mld_robustness")) - 1):
            when = now + self.stack.rng.uniform(0.0, interval)
            self.stack.timers.schedule(when, functools.partial(self._retransmit, if6, group, kind))

    def _retransmit(self, if6: If6, group: bytes, kind: int, now: float) -> None:
        member = group in if6.groups
        if (kind == CHANGE_TO_EXCLUDE) == member:  # the state did not flip back meanwhile
            self._send(if6, [MldRecord(kind, group)], now)

    def _send(self, if6: If6, records: list[MldRecord], now: float) -> None:
        if if6.iface.mac is None:
            return
        src = if6.link_local or UNSPECIFIED
        for i in range(0, len(records), MAX_RECORDS_PER_REPORT):
            rest, body = mld_report(records[i : i + MAX_RECORDS_PER_REPORT])
            self.stack.ip6.send_icmp(if6, src, ALL_MLDV2_ROUTERS, TYPE_MLD_V2_REPORT, 0, rest, body, now,
                                     hop_limit=1, hbh=router_alert_hbh(NH_ICMP6))
            self.stack.stats["mld.tx.report"] += 1

    # -- queries ---------------------------------------------------------------------------------------
    def receive_query(self, if6: If6, pkt: Ip6Packet, query: MldQuery, now: float) -> None:
        stats = self.stack.stats
        if not is_link_local6(pkt.src) or pkt.hop_limit != 1:
            stats["mld.drop.invalid_query"] += 1
            return
        if query.version == 1:
            stats["mld.rx.query_v1_ignored"] += 1
            return
        stats["mld.rx.query"] += 1
        delay = self.stack.rng.uniform(0.0, query.max_resp_ms / 1000.0)
        when = now + delay
        if query.group == UNSPECIFIED:
            pending = self._general.get(if6)
            if pending is not None and not pending.cancelled and pending.when <= when:
                return  # §6.2 case 1: an earlier answer is already scheduled
            if pending is not None:
                pending.cancel()
            self._general[if6] = self.stack.timers.schedule(when, functools.partial(self._answer_general, if6))
            return
        if query.group not in if6.groups or not reportable(query.group):
            stats["mld.rx.query_not_member"] += 1
            return
        key = (if6, query.group)
        old = self._specific.pop(key, None)
        if old is not None:
            old.cancel()
        record = MldRecord(MODE_IS_INCLUDE, query.group, query.sources) if query.sources else MldRecord(
            MODE_IS_EXCLUDE, query.group)
        self._specific[key] = self.stack.timers.schedule(when, functools.partial(self._answer, key, record))

    def _answer_general(self, if6: If6, now: float) -> None:
        self._general.pop(if6, None)
        records = [MldRecord(MODE_IS_EXCLUDE, g) for g in if6.groups if reportable(g)]
        if records:
            self._send(if6, records, now)

    def _answer(self, key: tuple[If6, bytes], record: MldRecord, now: float) -> None:
        self._specific.pop(key, None)
        if record.group in key[0].groups:
            self._send(key[0], [record], now)
