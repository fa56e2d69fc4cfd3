"""IP_ADD_MEMBERSHIP / IP_DROP_MEMBERSHIP / IP_MULTICAST_TTL / IP_MULTICAST_LOOP / IP_TOS through the patched
socket module, on a loopback-only stack (multicast among the process's own sockets, as Linux on lo)."""

from __future__ import annotations

import errno

from patches.helpers import run_patched


def test_membership_and_multicast_options_through_setsockopt() -> None:
    out = run_patched("""
        import errno, socket, struct
        mreq = struct.pack("4s4s", socket.inet_aton("239.1.2.3"), socket.inet_aton("0.0.0.0"))
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx.settimeout(5)
        rx.bind(("", 5007))
        rx.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        try:
            rx.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
            again = None
        except OSError as exc:
            again = exc.errno
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 7)
        ttl = tx.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL)
        loop = tx.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP)
        tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
        mcast_if = socket.inet_ntoa(struct.pack("i", tx.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF)))
        tx.sendto(b"to the group", ("239.1.2.3", 5007))
        data, _ = rx.recvfrom(100)
        rx.setsockopt(socket.IPPROTO_IP, socket.IP_DROP_MEMBERSHIP, mreq)
        try:
            rx.setsockopt(socket.IPPROTO_IP, socket.IP_DROP_MEMBERSHIP, mreq)
            dropped_twice = None
        except OSError as exc:
            dropped_twice = exc.errno
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0xB9)
        rx.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0xB9)
        report({"mcast_if": mcast_if, "again": again, "ttl": ttl, "loop": loop, "data": data.decode(),
                "dropped_twice": dropped_twice,
                "tcp_tos": tcp.getsockopt(socket.IPPROTO_IP, socket.IP_TOS),
                "udp_tos": rx.getsockopt(socket.IPPROTO_IP, socket.IP_TOS)})
    """)
    assert out == {"mcast_if": "127.0.0.1", "again": errno.EADDRINUSE, "ttl": 7, "loop": 1, "data": "to the group",
                   "dropped_twice": errno.EADDRNOTAVAIL, "tcp_tos": 0xB8, "udp_tos": 0xB9}
