"""IPv4 and what a host runs beside it on a link, one module per protocol:

* :mod:`.ip` — the IPv4 layer: addresses, input filtering, options, output, fragmentation
  (RFC 791, RFC 1122 §3.2-3.3, RFC 6890 special addresses), path MTU (RFC 1191);
* :mod:`.route` — the routing table, longest-prefix match (RFC 1812 §5.2.4.3);
* :mod:`.reassembly` — fragment reassembly (RFC 791 §3.2, RFC 815, RFC 1122 §3.3.2);
* :mod:`.arp` — ARP (RFC 826) with a NUD-style neighbour cache, and address conflict
  detection (RFC 5227);
* :mod:`.icmp` — ICMPv4 for a host (RFC 792, RFC 1122 §3.2.2);
* :mod:`.igmp` — multicast host side, IGMPv3 with v1/v2 compatibility (RFC 1112, RFC 2236, RFC 3376);
* :mod:`.linklocal` — link-local addresses 169.254/16 (RFC 3927);
* :mod:`.dhcp` — the DHCPv4 client (RFC 2131, RFC 2132, RFC 4361).

The packet codecs are in :mod:`pytcp_green.stack.wire` (``ip4``, ``arp``, ``icmp4``, ``igmp``).
"""
