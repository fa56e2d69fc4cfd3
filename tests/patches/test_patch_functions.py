"""The per-module patches (gevent's patch_socket/patch_dns/patch_select/patch_ssl), each used alone."""

from __future__ import annotations

from .helpers import run_patched


def test_patch_socket_alone_puts_sockets_on_the_stack() -> None:
    out = run_patched("""
        import select, socket, ssl
        from pytcp_green.patches.socket import handle_for_fd
        a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        a.bind(("127.0.0.1", 0))
        a.sendto(b"over the stack", a.getsockname())
        data = a.recv(100)
        report({"data": data.decode(), "on_stack": handle_for_fd(a.fileno()) is not None,
                "socket": pytcp_green.is_object_patched("socket", "socket"),
                "dns": pytcp_green.is_object_patched("socket", "getaddrinfo"),
                "select": pytcp_green.is_module_patched("select"),
                "ssl": pytcp_green.is_module_patched("ssl"),
                "localhost": socket.getaddrinfo("localhost", 80, socket.AF_INET)[0][4],
                "original": pytcp_green.get_original("socket", "socket").__module__})
        a.close()
    """, patch="pytcp_green.patch_socket()")
    assert out == {"data": "over the stack", "on_stack": True, "socket": True, "dns": True, "select": False,
                   "ssl": False, "localhost": ["127.0.0.1", 80], "original": "socket"}


def test_patch_socket_without_dns_keeps_the_resolver_functions() -> None:
    out = run_patched("""
        import socket
        report({"socket": pytcp_green.is_object_patched("socket", "socket"),
                "dns": pytcp_green.is_object_patched("socket", "getaddrinfo"),
                "getaddrinfo": socket.getaddrinfo.__module__})
    """, patch="pytcp_green.patch_socket(dns=False)")
    assert out == {"socket": True, "dns": False, "getaddrinfo": "socket"}


def test_patch_dns_alone_replaces_only_the_resolver(tmp_path: object) -> None:
    import pathlib

    hosts = pathlib.Path(str(tmp_path)) / "hosts"
    hosts.write_text("192.0.2.7 only-in-our-hosts\n")
    out = run_patched("""
        import socket
        report({"socket": pytcp_green.is_object_patched("socket", "socket"),
                "names": sorted(pytcp_green.patches._state.patched["socket"]),
                "resolved": socket.gethostbyname("only-in-our-hosts"),
                "host": pytcp_green.current_host() is not None})
    """, patch="pytcp_green.patch_dns()", env={"PYTCP_GREEN_HOSTS_FILE": str(hosts)})
    assert out == {"socket": False, "resolved": "192.0.2.7", "host": True,
                   "names": ["getaddrinfo", "getfqdn", "gethostbyaddr", "gethostbyname", "gethostbyname_ex",
                             "getnameinfo"]}


def test_patch_select_alone() -> None:
    out = run_patched("""
        import select, selectors, socket
        report({"select": select.select.__module__, "poll": select.poll.__module__,
                "epoll": hasattr(select, "epoll"), "default": selectors.DefaultSelector.__name__,
                "epoll_selector": hasattr(selectors, "EpollSelector"),
                "socket": pytcp_green.is_module_patched("socket"),
                "original": pytcp_green.get_original("select", "epoll").__name__})
    """, patch="pytcp_green.patch_select()")
    assert out == {"select": "pytcp_green.patches.select", "poll": "pytcp_green.patches.select", "epoll": True,
                   "default": "PollSelector", "epoll_selector": True, "socket": False, "original": "epoll"}


def test_patch_ssl_alone() -> None:
    out = run_patched("""
        import ssl
        report({"context": ssl.SSLContext.__module__, "socket": pytcp_green.is_module_patched("socket"),
                "original": pytcp_green.get_original("ssl", "SSLContext").__module__ != ssl.SSLContext.__module__,
                "create_connection": ssl.create_connection.__module__})
    """, patch="pytcp_green.patch_ssl()")
    assert out == {"context": "pytcp_green.patches.ssl", "socket": False, "original": True,
                   "create_connection": "pytcp_green.patches.socket"}


def test_patch_functions_are_exported() -> None:
    out = run_patched("""
        import pytcp_green.patches as p
        names = ("patch_socket", "patch_dns", "patch_select", "patch_ssl", "patch_all")
        report([getattr(pytcp_green, n) is getattr(p, n) and n in pytcp_green.__all__ and n in p.__all__
                for n in names])
    """, patch="")
    assert out == [True] * 5
