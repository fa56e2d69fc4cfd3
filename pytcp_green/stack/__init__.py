"""The sans-I/O protocol core: state machines fed with frames and ``now``, never touching a clock or an fd.

Where each part lives (every module's docstring names the RFC sections it implements):

* :mod:`.stack` — :class:`~.stack.Stack`, the one object a runtime drives and the composition
  root: Ethernet demultiplexing (RFC 894), the families and transports built and wired together,
  the entry points ``receive``/``poll``;
* :mod:`.interface` — an interface as the core sees it, and :class:`~.interface.LinkKind`, the
  one thing the core knows about devices;
* :mod:`.ipv4` — IPv4, ARP and ACD, ICMPv4, IGMP, link-local addresses, the DHCPv4 client;
* :mod:`.ipv6` — IPv6, ICMPv6, Neighbor Discovery, SLAAC, MLD, address selection;
* :mod:`.tcp` — TCP (RFC 9293 and its extensions);
* :mod:`.datagram` — UDP and ICMP echo sockets;
* :mod:`.dns` — the stub resolver (RFC 1035 §7, RFC 5452), sans-I/O: its caller sends the
  queries it returns and feeds back replies and timeouts;
* :mod:`.wire` — the packet codecs, one module per protocol (DNS messages included);
* :mod:`.services` — the shared machinery every layer is given (timers, stats, sysctl, rng), and
  :mod:`.contracts` — the Protocols between the network layers and the transports;
* shared machinery, used by both families and the transports: :mod:`.timers` (the deadline heap),
  :mod:`.sysctl` (Linux-named tunables), :mod:`.stats` (counters), :mod:`.sockbase` (what every
  core socket shares, errno helpers), :mod:`.ports` (RFC 6056 port choice), :mod:`.pmtu` (the
  path MTU cache, RFC 1191/8201), :mod:`.reassembly` (the fragment reassembly core) and
  :mod:`.icmp_ratelimit` (the ICMP error token bucket).
"""
