"""IPv6 and the protocols a host runs with it, one module per protocol:

* :mod:`.ip` — the IPv6 layer: addresses, routes, input checks, output, fragmentation
  (RFC 8200), path MTU (RFC 8201);
* :mod:`.source` — scopes (RFC 6724 §3.1-3.2) and source address selection (RFC 6724 §5);
* :mod:`.exthdr` — the extension-header walk of input and the hand-off to the upper layer
  (RFC 8200 §4, RFC 7112 §5, RFC 6946 atomic fragments);
* :mod:`.addr` — the per-interface state all of them share: addresses with their DAD state
  (RFC 4862, RFC 4429), groups, routers, prefixes;
* :mod:`.reassembly` — fragment reassembly (RFC 8200 §4.5, RFC 5722, RFC 6946);
* :mod:`.icmp` — ICMPv6 (RFC 4443): echo, errors and their rate limit, ND/MLD dispatch;
* :mod:`.nd` — Neighbor Discovery: neighbour cache, NS/NA, redirects (RFC 4861 §7-8);
* :mod:`.addrconf` — SLAAC and router discovery (RFC 4862, RFC 4861 §6.3, RFC 7217, RFC 8981
  temporary addresses, RFC 4429 optimistic DAD);
* :mod:`.ralimits` — an RA's hop limit and ND timers bounded as Linux bounds them (RFC 4861 §6.3.4);
* :mod:`.deadline` — lifetimes an RA refreshes, moved without piling entries in the timer heap;
* :mod:`.addrsel` — destination address selection (RFC 6724 §6);
* :mod:`.mld` — the MLDv2 listener with MLDv1 compatibility (RFC 3810, RFC 2710).

The packet codecs are in :mod:`pytcp_green.stack.wire` (``ip6``, ``icmp6``).
"""
