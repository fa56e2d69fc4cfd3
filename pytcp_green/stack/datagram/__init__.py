"""Datagram transports and their sockets:

* :mod:`.udp` — UDP (RFC 768, RFC 1122 §4.1): demultiplexing, endpoints, ICMP errors to sockets;
* :mod:`.udplite` — UDP-Lite (RFC 3828): the UDP layer with partial checksum coverage;
* :mod:`.ping` — ICMP echo sockets (``SOCK_DGRAM`` + ``IPPROTO_ICMP``/``IPPROTO_ICMPV6``) as
  Linux's ping sockets behave;
* :mod:`.base` — what both share: the receive queue charged against SO_RCVBUF, recvfrom with
  truncation, pending errors, the socket table.

TCP, the stream transport, is :mod:`pytcp_green.stack.tcp`.
"""
