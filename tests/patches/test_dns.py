"""Name resolution without libc: numeric, localhost, hosts file, and the stub resolver over the stack.

The message codec is tested in tests/stack/wire/test_dns.py, the resolver core in tests/stack/dns."""

from __future__ import annotations

import socket
import textwrap
from pathlib import Path

from .helpers import run_patched

# -- getaddrinfo and friends in a patched process ------------------------------------------------------

NO_LIBC = """
import _socket
calls = []
def trap(name):
    def f(*a, **k):
        calls.append(name)
        raise AssertionError("libc resolver used: " + name)
    return f
for n in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr", "getnameinfo"):
    setattr(_socket, n, trap(n))
"""


def test_numeric_localhost_and_hosts_file_without_libc(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("# test hosts\n198.18.7.7   files.test   alias.test  # comment\n"
                     "198.18.7.8 two.test\n198.18.7.9 two.test\n")
    out = run_patched(NO_LIBC + textwrap.dedent("""
        import socket
        def gai(*a, **k):
            return [[int(f), int(t), p, c, list(s)] for f, t, p, c, s in socket.getaddrinfo(*a, **k)]
        def err(fn, *a):
            try:
                fn(*a)
            except (socket.gaierror, socket.herror) as e:
                return [type(e).__name__, e.errno, e.strerror]
        res = {
            "numeric": gai("198.18.0.5", 80, type=socket.SOCK_STREAM),
            "legacy": gai("127.1", "80", socket.AF_INET, socket.SOCK_DGRAM),
            "all_types": [r[1] for r in gai("127.0.0.1", 7)],
            "service": gai("127.0.0.1", "http", socket.AF_INET),
            "localhost": gai("localhost", 8080, 0, socket.SOCK_STREAM, 0, socket.AI_CANONNAME),
            "passive": gai(None, 0, socket.AF_INET, socket.SOCK_STREAM, 0, socket.AI_PASSIVE),
            "files": gai("files.test", 1, type=socket.SOCK_STREAM),
            "alias": socket.gethostbyname("ALIAS.test"),
            "ex": list(socket.gethostbyname_ex("two.test")),
            "byaddr": list(socket.gethostbyaddr("198.18.7.7")),
            "nameinfo": list(socket.getnameinfo(("198.18.7.7", 80), 0)),
            "nameinfo_numeric": list(socket.getnameinfo(("198.18.7.7", 80),
                                                        socket.NI_NUMERICHOST | socket.NI_NUMERICSERV)),
            "fqdn": socket.getfqdn("198.18.7.9"),
            "empty": socket.gethostbyname(""),
            "unknown": err(socket.getaddrinfo, "no-such-name.test", 80),
            "numeric_only": err(socket.getaddrinfo, "files.test", 80, 0, 0, 0, socket.AI_NUMERICHOST),
            "v6_for_v4": err(socket.getaddrinfo, "::1", 80, socket.AF_INET),
            "bad_service": err(socket.getaddrinfo, "127.0.0.1", "no-such-service"),
            "bad_family": err(socket.getaddrinfo, "127.0.0.1", 80, socket.AF_UNIX),
            "byaddr_unknown": err(socket.gethostbyaddr, "198.18.99.99"),
            "libc_calls": calls,
        }
        report(res)
    """), env={"PYTCP_GREEN_HOSTS_FILE": str(hosts)})
    assert out == {
        "numeric": [[2, 1, 6, "", ["198.18.0.5", 80]]],
        "legacy": [[2, 2, 17, "", ["127.0.0.1", 80]]],
        "all_types": [1, 2, 3],
        "service": [[2, 1, 6, "", ["127.0.0.1", 80]]],
        # ::1 first (the stack has IPv6 on its loopback): RFC 6724 §6 rule 6, precedence 50 over 35, as glibc
        "localhost": [[10, 1, 6, "localhost", ["::1", 8080, 0, 0]], [2, 1, 6, "", ["127.0.0.1", 8080]]],
        "passive": [[2, 1, 6, "", ["0.0.0.0", 0]]],
        "files": [[2, 1, 6, "", ["198.18.7.7", 1]]],
        "alias": "198.18.7.7",
        "ex": ["two.test", [], ["198.18.7.8", "198.18.7.9"]],
        "byaddr": ["files.test", ["alias.test"], ["198.18.7.7"]],
        "nameinfo": ["files.test", "http"],
        "nameinfo_numeric": ["198.18.7.7", "80"],
        "fqdn": "two.test",
        "empty": "0.0.0.0",
        "unknown": ["gaierror", socket.EAI_NONAME, "Name or service not known"],
        "numeric_only": ["gaierror", socket.EAI_NONAME, "Name or service not known"],
        "v6_for_v4": ["gaierror", -9, "Address family for hostname not supported"],
        "bad_service": ["gaierror", socket.EAI_SERVICE, "Servname not supported for ai_socktype"],
        "bad_family": ["gaierror", socket.EAI_FAMILY, "ai_family not supported"],
        "byaddr_unknown": ["herror", 1, "Unknown host"],
        "libc_calls": [],
    }


TOY_SERVER = """
import socket, gevent, struct
from pytcp_green.stack.wire.dns import Message, Record, Question, TYPE_A, TYPE_CNAME, TYPE_PTR, CLASS_IN
queries = []
ZONE = {"web.test": ("CNAME", "real.test"), "real.test": ("A", ["198.18.0.80"]), "loop.test": ("A", ["127.0.0.9"]),
        "many.test": ("A", [f"198.18.1.{i}" for i in range(1, 60)])}
def answer(data, over_tcp):
    q = Message.decode(data)
    name = q.questions[0].name
    queries.append([name, "tcp" if over_tcp else "udp"])
    r = Message(id=q.id, qr=True, rd=q.rd, ra=True, questions=q.questions)
    if name == "spoofed.test" and not over_tcp:
        bad = Message(id=(q.id + 1) % 65536, qr=True, questions=q.questions,
                      answers=[Record(name, TYPE_A, CLASS_IN, 60, "6.6.6.6")])
        r.answers.append(Record(name, TYPE_A, CLASS_IN, 60, "198.18.0.77"))
        return [bad.encode(), r.encode()]
    if name == "many.test" and not over_tcp:
        r.tc = True
        return [r.encode()]
    n = name
    while n in ZONE and ZONE[n][0] == "CNAME":
        r.answers.append(Record(n, TYPE_CNAME, CLASS_IN, 60, ZONE[n][1]))
        n = ZONE[n][1]
    if n in ZONE:
        for a in ZONE[n][1]:
            r.answers.append(Record(n, TYPE_A, CLASS_IN, 60, a))
    elif name.endswith(".in-addr.arpa") and name.startswith("80.0.18.198"):
        r.answers.append(Record(name, TYPE_PTR, CLASS_IN, 60, "real.test"))
    else:
        r.rcode = 3
    return [r.encode()]
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("127.0.0.1", 53))
def serve_udp():
    while True:
        data, peer = udp.recvfrom(4096)
        for reply in answer(data, False):
            udp.sendto(reply, peer)
tcp = socket.create_server(("127.0.0.1", 53))
def serve_tcp():
    while True:
        conn, _ = tcp.accept()
        with conn, conn.makefile("rb") as f:
            (n,) = struct.unpack("!H", f.read(2))
            reply = answer(f.read(n), True)[0]
            conn.sendall(struct.pack("!H", len(reply)) + reply)
gevent.spawn(serve_udp); gevent.spawn(serve_tcp)
"""


def test_stub_resolver_over_the_stacks_udp_and_tcp() -> None:
    out = run_patched(NO_LIBC + TOY_SERVER + textwrap.dedent("""
        def err(fn, *a):
            try:
                fn(*a)
            except (socket.gaierror, socket.herror) as e:
                return [type(e).__name__, e.errno]
        res = {
            "cname": list(socket.gethostbyname_ex("web.test")),
            "gai": [list(r[4]) for r in socket.getaddrinfo("web.test", 443, socket.AF_INET, socket.SOCK_STREAM)],
            "cached": socket.gethostbyname("web.test"),
            "spoof_ignored": socket.gethostbyname("spoofed.test"),
            "truncated_then_tcp": len(socket.gethostbyname_ex("many.test")[2]),
            "nxdomain": err(socket.gethostbyname, "missing.test"),
            "ptr": socket.gethostbyaddr("198.18.0.80")[0],
            "connect_by_name": None,
            "libc_calls": calls,
        }
        # A socket call with a name resolves through the stub too.
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect(("loop.test", 9))
        res["connect_by_name"] = list(s.getpeername())
        s.close()
        res["queries"] = queries
        report(res)
    """), patch='pytcp_green.patch_all(dns=["127.0.0.1"])')
    assert out["cname"] == ["real.test", ["web.test"], ["198.18.0.80"]]
    assert out["gai"] == [["198.18.0.80", 443]]
    assert out["cached"] == "198.18.0.80"
    assert out["spoof_ignored"] == "198.18.0.77"
    assert out["truncated_then_tcp"] == 59
    assert out["nxdomain"] == ["gaierror", socket.EAI_NONAME]
    assert out["ptr"] == "real.test"
    assert out["connect_by_name"] == ["127.0.0.9", 9]
    assert out["libc_calls"] == []
    # web.test asked once (then cached); many.test over UDP, then again over TCP.
    assert out["queries"] == [["web.test", "udp"], ["spoofed.test", "udp"], ["many.test", "udp"],
                              ["many.test", "tcp"], ["missing.test", "udp"],
                              ["80.0.18.198.in-addr.arpa", "udp"], ["loop.test", "udp"]]


def test_dns_servers_from_the_environment_and_none_configured() -> None:
    out = run_patched("""
        import socket
        from pytcp_green.patches import dns
        res = {"servers": dns.name_servers()}
        try:
            socket.getaddrinfo("example.test", 80)
        except socket.gaierror as e:
            res["err"] = e.errno
        report(res)
    """, env={"PYTCP_GREEN_DNS": "127.0.0.1:5353, 198.18.0.1"})
    assert out["servers"] == [["127.0.0.1", 5353], ["198.18.0.1", 53]]
    # 127.0.0.1:5353 refuses (ICMP port unreachable over the loopback) and 198.18.0.1 has no route:
    assert out["err"] == socket.EAI_AGAIN


def test_hosts_file_is_read_again_when_it_changes(tmp_path: Path) -> None:
    from pytcp_green.patches.dns import _HostsFile

    path = tmp_path / "hosts"
    hosts = _HostsFile(str(path))
    assert hosts.table().by_name("a.test") == []  # no file yet: an empty table, no error
    path.write_text("198.18.0.1 a.test\n")
    assert [e.address for e in hosts.table().by_name("a.test")] == ["198.18.0.1"]
    path.write_text("198.18.0.22 a.test\n")  # another size: read again
    assert [e.address for e in hosts.table().by_name("a.test")] == ["198.18.0.22"]
    path.unlink()
    assert hosts.table().by_name("a.test") == []


def test_getnameinfo_writes_scope_ids_as_libc_does_and_keeps_no_reference_on_error() -> None:
    """Found by CPython's test_socket (test_getnameinfo_ipv6_scopeid_symbolic, testRefCountGetNameInfo): a
    link-local address's scope is the kernel interface's name (``%lo``), any other scope its number; a
    TypeError's traceback must not hold the argument (sys.getrefcount is unchanged inside ``except``)."""
    flags = socket.NI_NUMERICHOST | socket.NI_NUMERICSERV
    cases = [("fe80::1", 80, 0, 1), ("ff02::1:2", 80, 0, 1), ("2001:db8::1", 80, 0, 1),
             ("fe80::1", 80, 0, 999999), ("ff05::1", 80, 0, 1), ("fe80::1", 80, 0, 0)]
    libc = [list(socket.getnameinfo(case, flags)) for case in cases]  # this process is not patched
    out = run_patched(NO_LIBC + textwrap.dedent(f"""
        import socket, sys
        res = {{"got": [list(socket.getnameinfo(case, {flags})) for case in {cases!r}]}}
        arg = "not a tuple" + str(len(sys.argv))
        before = sys.getrefcount(arg)
        try:
            socket.getnameinfo(arg, 0)
        except TypeError:
            res["refs"] = sys.getrefcount(arg) - before
        res["calls"] = calls
        report(res)
    """))
    assert out == {"got": libc, "refs": 0, "calls": []}
    assert libc[0] == ["fe80::1%lo", "80"]  # the loopback is ifindex 1 here: the case that names an interface
