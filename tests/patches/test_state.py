"""patch_all() bookkeeping: gevent's tables, originals, repeat calls, warnings."""

from __future__ import annotations

from .helpers import run_patched, run_python


def test_patch_all_records_in_gevents_tables_and_ours() -> None:
    out = run_patched("""
        import socket, select, selectors, _socket
        import gevent.monkey as m
        from pytcp_green.patches.socket import socket as ours
        report({
            "socket_is_ours": socket.socket is ours,
            "sockettype_is_ours": socket.SocketType is ours,
            "gevent_sees_socket": m.is_module_patched("socket"),
            "gevent_sees_object": m.is_object_patched("socket", "create_connection"),
            "gevent_original_is_stdlib": m.get_original("socket", "socket").__module__ == "socket",
            "ours_original_is_stdlib":
                pytcp_green.get_original("socket", "socket") is m.get_original("socket", "socket"),
            "original_getaddrinfo_is_stdlib": pytcp_green.get_original("socket", "getaddrinfo").__module__ == "socket",
            "is_module_patched": [pytcp_green.is_module_patched(n) for n in ("socket", "select", "selectors", "os")],
            "is_object_patched": pytcp_green.is_object_patched("socket", "getaddrinfo"),
            "epoll_is_ours": select.epoll.__module__ == "pytcp_green.patches.select",
            "epoll_selector_on_ours": selectors.EpollSelector._selector_cls is select.epoll,
            "default_selector": selectors.DefaultSelector.__name__,
            "host_loopback": str(pytcp_green.current_host().stack.interfaces["lo"].ip4[0]),
            "interfaces": sorted(pytcp_green.current_host().stack.interfaces),
        })
    """)
    assert out == {
        "socket_is_ours": True,
        "sockettype_is_ours": True,
        "gevent_sees_socket": True,
        "gevent_sees_object": True,
        "gevent_original_is_stdlib": True,
        "ours_original_is_stdlib": True,
        "original_getaddrinfo_is_stdlib": True,
        "is_module_patched": [True, True, True, True],  # os: our close over gevent's deferred one (patches/os.py)
        "is_object_patched": True,
        "epoll_is_ours": True,
        "epoll_selector_on_ours": True,
        "default_selector": "PollSelector",
        "host_loopback": "127.0.0.1/8",
        "interfaces": ["lo"],
    }


def test_patching_twice_is_harmless_and_keeps_the_first_host() -> None:
    out = run_patched("""
        import warnings, socket
        first = pytcp_green.current_host()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            again = pytcp_green.patch_all()
            pytcp_green.patch_all(ip4=[], mtu=9000)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.sendto(b"still works", s.getsockname())
        data = s.recv(100)
        s.close()
        report({"same": again is first, "data": data.decode(),
                "warnings": [str(w.message).split(";")[0] for w in caught if w.category.__name__ == "PatchWarning"]})
    """)
    assert out["same"] is True
    assert out["data"] == "still works"
    assert out["warnings"] == ["patch_all() called again with different stack options"]


def test_warns_when_a_module_imported_socket_before_patching() -> None:
    out = run_patched("""
        from socket import socket as early_socket
        import warnings
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pytcp_green.patch_all()
        report([str(w.message) for w in caught if w.category.__name__ == "PatchWarning"])
    """, patch="")
    assert len(out) == 1
    assert "__main__.early_socket" in out[0]


def test_warns_when_a_socket_bypassing_extension_is_imported(tmp_path: object) -> None:
    import pathlib

    root = pathlib.Path(str(tmp_path))
    (root / "grpc").mkdir()
    (root / "grpc" / "__init__.py").write_text("VALUE = 42\n")
    out = run_patched("""
        import warnings
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import grpc
        report({"value": grpc.VALUE, "warnings": [str(w.message) for w in caught]})
    """, env={"PYTHONPATH": str(root)})
    assert out["value"] == 42
    assert len(out["warnings"]) == 1
    assert out["warnings"][0].startswith("grpc imported into a pytcp_green-patched process")


def test_stack_options_from_the_environment() -> None:
    out = run_patched("""
        import socket
        host = pytcp_green.current_host()
        report({"mtu": host.options.mtu, "log": host.options.log})
    """, env={"PYTCP_GREEN_MTU": "1400", "PYTCP_GREEN_LOG": "error"})
    assert out == {"mtu": 1400, "log": "error"}


def test_importing_pytcp_green_does_not_import_gevent() -> None:
    proc = run_python(["-c", "import sys, pytcp_green, pytcp_green.stack.stack; print('gevent' in sys.modules)"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
