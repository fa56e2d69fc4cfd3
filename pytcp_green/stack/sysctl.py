"""Tunables in one registry shaped like Linux's ``/proc/sys/net``, settable at start and at run time.

Every tunable is declared in :data:`DEFAULTS`, so overrides given when a stack is built are
checked against the full list before any protocol module exists.

Names and meanings follow Linux (Documentation/networking/ip-sysctl.rst) so that a user who
knows one knows the other; values are Python ints, floats (seconds) or strings.  Protocol
code reads them when it needs them, so a change takes effect for the next decision made.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Mapping, MutableMapping

Value = int | float | str

DEFAULTS: dict[str, Value] = {
    # IPv4
    "net.ipv4.ip_default_ttl": 64,
    "net.ipv4.ip_local_port_range": "32768 60999",
    "net.ipv4.icmp_echo_ignore_all": 0,
    "net.ipv4.icmp_echo_ignore_broadcasts": 1,
    "net.ipv4.icmp_msgs_per_sec": 1000,  # global ICMP error rate (token bucket), as Linux
    "net.ipv4.icmp_msgs_burst": 50,
    # IPv4 reassembly (Linux names; ipfrag_max_frags is ours: a per-datagram fragment cap)
    "net.ipv4.ipfrag_high_thresh": 4194304,
    "net.ipv4.ipfrag_low_thresh": 3145728,
    "net.ipv4.ipfrag_time": 30.0,
    "net.ipv4.ipfrag_max_frags": 512,
    # Path MTU cache (Linux net.ipv4.route.*; seconds)
    "net.ipv4.route.min_pmtu": 552,
    "net.ipv4.route.mtu_expires": 600.0,
    # RFC 5227 address conflict detection (seconds; defaults are the RFC's §1.1 constants).
    # acd_enable=1 makes Host probe static addresses before using them; DHCP always probes.
    "net.ipv4.acd.enable": 0,
    "net.ipv4.acd.probe_wait": 1.0,
    "net.ipv4.acd.probe_num": 3,
    "net.ipv4.acd.probe_min": 1.0,
    "net.ipv4.acd.probe_max": 2.0,
    "net.ipv4.acd.announce_wait": 2.0,
    "net.ipv4.acd.announce_num": 2,
    "net.ipv4.acd.announce_interval": 2.0,
    "net.ipv4.acd.defend_interval": 10.0,
    # DHCPv4 client (seconds; RFC 2131 §4.1 and §4.4.5 values).  dhcp.acd=0 skips the RFC 5227 probe.
    "net.ipv4.dhcp.initial_timeout": 4.0,
    "net.ipv4.dhcp.max_timeout": 64.0,
    "net.ipv4.dhcp.request_retries": 4,
    "net.ipv4.dhcp.renew_min_interval": 60.0,
    "net.ipv4.dhcp.renew_max_interval": 86400.0,
    "net.ipv4.dhcp.decline_wait": 10.0,
    "net.ipv4.dhcp.acd": 1,
    # RFC 3927 link-local addresses, when DHCP gives none within linklocal.dhcp_timeout seconds
    # (probing uses the acd.* timings above, which are RFC 3927's constants too).
    "net.ipv4.linklocal.enable": 1,
    "net.ipv4.linklocal.dhcp_timeout": 60.0,
    "net.ipv4.linklocal.max_conflicts": 10,
    "net.ipv4.linklocal.rate_limit_interval": 60.0,
    # IGMP (RFC 3376 §8; Linux names, intervals in seconds).  force_igmp_version 0: v3 unless an
    # older querier is heard (RFC 3376 §7.2.1); igmp_max_memberships: groups per socket (ENOBUFS past it).
    "net.ipv4.igmp_qrv": 2,
    "net.ipv4.igmp_max_memberships": 20,
    "net.ipv4.conf.default.force_igmp_version": 0,
    "net.ipv4.conf.default.igmpv2_unsolicited_report_interval": 10.0,
    "net.ipv4.conf.default.igmpv3_unsolicited_report_interval": 1.0,
    # ARP / neighbour (seconds, like Linux's *_ms values divided by 1000)
    "net.ipv4.neigh.default.retrans_time": 1.0,
    "net.ipv4.neigh.default.base_reachable_time": 30.0,
    "net.ipv4.neigh.default.delay_first_probe_time": 5.0,
    "net.ipv4.neigh.default.gc_stale_time": 60.0,
    "net.ipv4.neigh.default.mcast_solicit": 3,
    "net.ipv4.neigh.default.ucast_solicit": 3,
    "net.ipv4.neigh.default.unres_qlen": 101,
    # Neighbour table size, for ARP and ND alike (their shared cache enforces it, ipv4/arp.py):
    # from gc_thresh2 entries idle for 5 s give way to new ones, gc_thresh3 is the hard cap.
    "net.ipv4.neigh.default.gc_thresh2": 512,
    "net.ipv4.neigh.default.gc_thresh3": 1024,
    "net.ipv6.neigh.default.gc_thresh2": 512,
    "net.ipv6.neigh.default.gc_thresh3": 1024,
    # UDP
    "net.core.rmem_default": 212992,
    "net.core.wmem_default": 212992,
    # TCP
    "net.ipv4.tcp_sack": 1,
    "net.ipv4.tcp_dsack": 1,  # RFC 2883 D-SACK blocks sent (and learnt from), with SACK negotiated
    "net.ipv4.tcp_timestamps": 1,
    "net.ipv4.tcp_window_scaling": 1,
    "net.ipv4.tcp_ecn": 2,  # RFC 3168 ECN: 0 off, 1 request and accept, 2 accept only (Linux's default)
    # Congestion control (stack/tcp/cc): the module new sockets get, and which TCP_CONGESTION may
    # choose.  Linux's available list is read-only and names the loaded modules; ours are built in.
    "net.ipv4.tcp_congestion_control": "cubic",
    "net.ipv4.tcp_available_congestion_control": "reno cubic",
    "net.ipv4.tcp_allowed_congestion_control": "reno cubic",
    "net.ipv4.tcp_recovery": 1,  # RFC 8985 RACK-TLP: lost-retransmission detection and tail loss probes
    "net.ipv4.tcp_frto": 2,  # RFC 5682 F-RTO (SACK-enhanced, §3, on every connection as Linux): 0 off
    "net.ipv4.tcp_syn_retries": 6,
    "net.ipv4.tcp_synack_retries": 5,
    "net.ipv4.tcp_retries2": 15,  # timeouts of the same data, or unanswered window probes, before giving up
    # What closed sockets' connections (orphans) may hold, as Linux (tcp/closing.py): orphan_retries
    # replaces retries2 for them (0 reads as 8 while the connection is alive); beyond max_orphans a
    # close() resets at once, beyond max_tw_buckets a connection skips TIME-WAIT.  Linux sizes both
    # maxima from its connection hash table; 131072 is what it chose on the 24 GB machine this was
    # written on (/proc/sys/net/ipv4/tcp_max_orphans and tcp_max_tw_buckets).
    "net.ipv4.tcp_orphan_retries": 0,
    "net.ipv4.tcp_max_orphans": 131072,
    "net.ipv4.tcp_max_tw_buckets": 131072,
    "net.ipv4.tcp_fin_timeout": 60.0,  # how long an orphan waits in FIN-WAIT-2 for the peer's FIN
    "net.ipv4.tcp_tw_timeout": 60.0,  # 2*MSL; Linux hard-codes 60 s (TCP_TIMEWAIT_LEN)
    "net.ipv4.tcp_keepalive_time": 7200.0,
    "net.ipv4.tcp_keepalive_intvl": 75.0,
    "net.ipv4.tcp_keepalive_probes": 9,
    "net.ipv4.tcp_rmem": "4096 131072 6291456",
    "net.ipv4.tcp_moderate_rcvbuf": 1,  # receive buffer auto-tuning up to tcp_rmem[2] (tcp/rcvbuf.py)
    "net.ipv4.tcp_wmem": "4096 16384 4194304",
    "net.ipv4.tcp_delack_min": 0.04,  # Linux TCP_DELACK_MIN
    "net.ipv4.tcp_rto_min": 0.2,
    "net.ipv4.tcp_rto_max": 120.0,
    "net.ipv4.tcp_rto_initial": 1.0,
    "net.ipv4.tcp_max_syn_backlog": 128,
    # SYN cookies (Linux's meaning): 1 = when a listener's SYN queue overflows, 2 = always, 0 = never
    # (then the oldest half-open connection makes room for a new SYN).
    "net.ipv4.tcp_syncookies": 1,
    # TCP Fast Open (RFC 7413, stack/tcp/fastopen.py), Linux's bits: 1 = client (MSG_FASTOPEN,
    # TCP_FASTOPEN_CONNECT), 2 = server (listeners with TCP_FASTOPEN set), 0x200 = server takes SYN data
    # without a cookie, 0x400 = every listener does Fast Open; Linux's default is 1.
    "net.ipv4.tcp_fastopen": 1,
    # RFC 1337 (TIME-WAIT assassination): 1 = a RST in TIME-WAIT is ignored; Linux's default 0 lets it
    # end TIME-WAIT early (tcp/arrive.py reset_received).
    "net.ipv4.tcp_rfc1337": 0,
    "net.ipv4.tcp_challenge_ack_limit": 1000,  # RFC 5961 challenge ACKs per second, as Linux
    "net.core.somaxconn": 4096,
}


class Sysctl(MutableMapping[str, Value]):
    """The registry.  Unknown names raise KeyError, so a typo never silently configures nothing."""

    def __init__(self, overrides: Mapping[str, Value] | None = None) -> None:
        self._values: dict[str, Value] = dict(DEFAULTS)
        # ints()' parsed vectors: a connection reads tcp_rmem/tcp_wmem several times as it is made,
        # and splitting the string each time was a tenth of an accepted connection's CPU.
        self._vectors: dict[str, tuple[builtins.int, ...]] = {}
        for name, value in (overrides or {}).items():
            self[name] = value

    def __getitem__(self, name: str) -> Value:
        return self._values[name]

    def __setitem__(self, name: str, value: Value) -> None:
        if name not in self._values:
            raise KeyError(f"unknown sysctl {name!r}")
        current = self._values[name]
        self._vectors.pop(name, None)
        if isinstance(current, str):
            self._values[name] = str(value)
        elif isinstance(current, float):
            self._values[name] = builtins.float(value)
        else:
            self._values[name] = builtins.int(value)

    def __delitem__(self, name: str) -> None:
        raise TypeError("sysctls cannot be removed; set them back to their default instead")

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def int(self, name: str) -> builtins.int:
        value = self._values[name]
        assert isinstance(value, int)
        return value

    def float(self, name: str) -> builtins.float:
        return builtins.float(self._values[name])

    def ints(self, name: str) -> tuple[builtins.int, ...]:
        """A space-separated vector such as ``tcp_rmem`` as ints."""
        vector = self._vectors.get(name)
        if vector is None:
            vector = self._vectors[name] = tuple(builtins.int(x) for x in str(self._values[name]).split())
        return vector
