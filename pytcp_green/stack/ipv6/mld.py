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
* MLDv1 compatibility (§8.2.1): an MLDv1 query (RFC 2710 §3, 24 octets) switches the
  interface's Host Compatibility Mode to MLDv1 for the Older Version Querier Present Timeout
  (§9.12: robustness x Query Interval + Query Response Interval, the §9.2/§9.3 defaults, since
  an MLDv1 query carries no QQIC), re-armed by every further MLDv1 query, and cancels pending
  MLDv2 answers.  Meanwhile the host speaks only MLDv1 (RFC 2710 §4): a query (of either
  version) arms one timer per group at a random delay within its Maximum Response Delay (a
  running timer is only shortened), and on expiry an MLDv1 Report goes to the group itself;
  another node's Report for the group cancels ours (suppression); joining sends an MLDv1 Report
  at once and ``mld_robustness - 1`` more within ``mldv1_unsolicited_report_interval``, leaving
  sends a Done to all-routers (ff02::2).  When the timer runs out the interface is MLDv2 again.
  ``force_mld_version`` (Linux's name): 1 always MLDv1, 2 MLDv2 only (MLDv1 queries ignored).
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
    TYPE_MLD_V1_DONE,
    TYPE_MLD_V1_REPORT,
    TYPE_MLD_V2_REPORT,
    MldQuery,
    MldRecord,
    mld_report,
)
from pytcp_green.stack.wire.ip6 import (
    ALL_MLDV2_ROUTERS,
    ALL_NODES,
    ALL_ROUTERS,
    NH_ICMP6,
    UNSPECIFIED,
    Ip6Packet,
    is_link_local6,
    multicast_scope,
    router_alert_hbh,
)

if TYPE_CHECKING:
    from pytcp_green.stack.ipv6.addr import If6, LinkSender
    from pytcp_green.stack.services import Services

MAX_RECORDS_PER_REPORT = 60  # 20 octets each, so a report stays well inside a 1280-octet packet
QUERY_INTERVAL = 125.0  # RFC 3810 §9.2 default; an MLDv1 query does not tell us the querier's own
QUERY_RESPONSE_INTERVAL = 10.0  # RFC 3810 §9.3 default


def reportable(group: bytes) -> bool:
    return group != ALL_NODES and multicast_scope(group) > 1


class Mld:
    """The listener of every interface; reports go out through ``ip6`` (the IPv6 layer)."""

    def __init__(self, svc: Services, ip6: LinkSender) -> None:
        self.svc = svc
        self.ip6 = ip6
        self._general: dict[If6, Timer] = {}  # pending answer to a general query, per interface
        self._specific: dict[tuple[If6, bytes], Timer] = {}
        self._v1_querier: dict[If6, Timer] = {}  # Older Version Querier Present timer (§8.2.1)
        self._v1_reports: dict[tuple[If6, bytes], Timer] = {}  # MLDv1 per-group report delay (RFC 2710 §4)

    def _conf(self, name: str) -> float:
        return self.svc.sysctl.float(f"net.ipv6.conf.default.{name}")

    def v1_mode(self, if6: If6) -> bool:
        """Host Compatibility Mode is MLDv1 (§8.2.1): an MLDv1 querier was heard lately, or forced."""
        forced = int(self._conf("force_mld_version"))
        return forced == 1 or (forced != 2 and if6 in self._v1_querier)

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
        if self.v1_mode(if6):
            self._v1_state_change(if6, group, kind == CHANGE_TO_EXCLUDE, now)
            return
        self._send(if6, [MldRecord(kind, group)], now)
        interval = self._conf("mldv2_unsolicited_report_interval")
        for _ in range(int(self._conf("mld_robustness")) - 1):
            when = now + self.svc.rng.uniform(0.0, interval)
            self.svc.timers.schedule(when, functools.partial(self._retransmit, if6, group, kind))

    def _retransmit(self, if6: If6, group: bytes, kind: int, now: float) -> None:
        member = group in if6.groups
        if self.v1_mode(if6):
            return  # the mode changed meanwhile: MLDv2 retransmissions are cancelled (§8.2.1)
        if (kind == CHANGE_TO_EXCLUDE) == member:  # the state did not flip back meanwhile
            self._send(if6, [MldRecord(kind, group)], now)

    def _send(self, if6: If6, records: list[MldRecord], now: float) -> None:
        if if6.iface.mac is None:
            return
        src = if6.link_local or UNSPECIFIED
        for i in range(0, len(records), MAX_RECORDS_PER_REPORT):
            rest, body = mld_report(records[i : i + MAX_RECORDS_PER_REPORT])
            self.ip6.send_icmp(if6, src, ALL_MLDV2_ROUTERS, TYPE_MLD_V2_REPORT, 0, rest, body, now,
                               hop_limit=1, hbh=router_alert_hbh(NH_ICMP6))
            self.svc.stats["mld.tx.report"] += 1

    # -- queries ---------------------------------------------------------------------------------------
    def receive_query(self, if6: If6, pkt: Ip6Packet, query: MldQuery, now: float) -> None:
        stats = self.svc.stats
        if not is_link_local6(pkt.src) or pkt.hop_limit != 1:
            stats["mld.drop.invalid_query"] += 1
            return
        if query.version == 1:
            if int(self._conf("force_mld_version")) == 2:
                stats["mld.rx.query_v1_ignored"] += 1
                return
            stats["mld.rx.query_v1"] += 1
            self._older_querier_present(if6, now)
        if self.v1_mode(if6):
            self._v1_query(if6, query, now)
            return
        stats["mld.rx.query"] += 1
        delay = self.svc.rng.uniform(0.0, query.max_resp_ms / 1000.0)
        when = now + delay
        if query.group == UNSPECIFIED:
            pending = self._general.get(if6)
            if pending is not None and not pending.cancelled and pending.when <= when:
                return  # §6.2 case 1: an earlier answer is already scheduled
            if pending is not None:
                pending.cancel()
            self._general[if6] = self.svc.timers.schedule(when, functools.partial(self._answer_general, if6))
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
        self._specific[key] = self.svc.timers.schedule(when, functools.partial(self._answer, key, record))

    def _answer_general(self, if6: If6, now: float) -> None:
        self._general.pop(if6, None)
        records = [MldRecord(MODE_IS_EXCLUDE, g) for g in if6.groups if reportable(g)]
        if records:
            self._send(if6, records, now)

    def _answer(self, key: tuple[If6, bytes], record: MldRecord, now: float) -> None:
        self._specific.pop(key, None)
        if record.group in key[0].groups:
            self._send(key[0], [record], now)

    # -- MLDv1 compatibility (RFC 3810 §8, RFC 2710 §4) ----------------------------------------------------
    def _older_querier_present(self, if6: If6, now: float) -> None:
        """Arm (or re-arm) the Older Version Querier Present timer; entering MLDv1 mode cancels the
        MLDv2 answers still pending, which would otherwise reach an MLDv1 querier it cannot read."""
        old = self._v1_querier.pop(if6, None)
        if old is not None:
            old.cancel()
        else:
            self.svc.stats["mld.mode.v1"] += 1
            pending = self._general.pop(if6, None)
            if pending is not None:
                pending.cancel()
            for key in [k for k in self._specific if k[0] is if6]:
                self._specific.pop(key).cancel()
        timeout = self._conf("mld_robustness") * QUERY_INTERVAL + QUERY_RESPONSE_INTERVAL
        self._v1_querier[if6] = self.svc.timers.schedule(now + timeout,
                                                         functools.partial(self._older_querier_gone, if6))

    def _older_querier_gone(self, if6: If6, now: float) -> None:
        self._v1_querier.pop(if6, None)
        self.svc.stats["mld.mode.v2"] += 1
        for key in [k for k in self._v1_reports if k[0] is if6]:
            self._v1_reports.pop(key).cancel()

    def _v1_query(self, if6: If6, query: MldQuery, now: float) -> None:
        """RFC 2710 §4: a random delay per group within the Maximum Response Delay; a running timer
        is reset only when the new delay bound is shorter than what it has left."""
        if query.group == UNSPECIFIED:
            groups = [g for g in if6.groups if reportable(g)]
        elif query.group in if6.groups and reportable(query.group):
            groups = [query.group]
        else:
            self.svc.stats["mld.rx.query_not_member"] += 1
            return
        max_delay = query.max_resp_ms / 1000.0
        for group in groups:
            key = (if6, group)
            running = self._v1_reports.get(key)
            if running is not None and not running.cancelled and running.when - now <= max_delay:
                continue
            if running is not None:
                running.cancel()
            when = now + self.svc.rng.uniform(0.0, max_delay)
            self._v1_reports[key] = self.svc.timers.schedule(when, functools.partial(self._v1_report_due, key))

    def _v1_report_due(self, key: tuple[If6, bytes], now: float) -> None:
        self._v1_reports.pop(key, None)
        if key[1] in key[0].groups:
            self._send_v1(key[0], TYPE_MLD_V1_REPORT, key[1], now)

    def receive_v1_report(self, if6: If6, group: bytes) -> None:
        """RFC 2710 §4: another listener's Report for a group we were about to report: ours is redundant."""
        timer = self._v1_reports.pop((if6, group), None)
        if timer is not None:
            timer.cancel()
            self.svc.stats["mld.v1.report_suppressed"] += 1

    def _v1_state_change(self, if6: If6, group: bytes, joined: bool, now: float) -> None:
        """RFC 2710 §4: join -> Report now and repeated within the Unsolicited Report Interval;
        leave -> Done to all-routers (sent even when our last Report was suppressed, which §4 allows)."""
        if not joined:
            timer = self._v1_reports.pop((if6, group), None)
            if timer is not None:
                timer.cancel()
            self._send_v1(if6, TYPE_MLD_V1_DONE, group, now)
            return
        self._send_v1(if6, TYPE_MLD_V1_REPORT, group, now)
        interval = self._conf("mldv1_unsolicited_report_interval")
        for _ in range(int(self._conf("mld_robustness")) - 1):
            when = now + self.svc.rng.uniform(0.0, interval)
            self.svc.timers.schedule(when, functools.partial(self._v1_repeat, if6, group))

    def _v1_repeat(self, if6: If6, group: bytes, now: float) -> None:
        if group in if6.groups and self.v1_mode(if6):
            self._send_v1(if6, TYPE_MLD_V1_REPORT, group, now)

    def _send_v1(self, if6: If6, kind: int, group: bytes, now: float) -> None:
        """An MLDv1 Report (to the group) or Done (to ff02::2), RFC 2710 §3: hop limit 1, Router Alert,
        from the link-local address (or ``::`` while it is tentative, as MLDv2 reports, RFC 3590)."""
        if if6.iface.mac is None:
            return
        src = if6.link_local or UNSPECIFIED
        dst = group if kind == TYPE_MLD_V1_REPORT else ALL_ROUTERS
        self.ip6.send_icmp(if6, src, dst, kind, 0, 0, group, now, hop_limit=1, hbh=router_alert_hbh(NH_ICMP6))
        self.svc.stats["mld.tx.v1_report" if kind == TYPE_MLD_V1_REPORT else "mld.tx.v1_done"] += 1
