"""After patching, every public name of socket, select, selectors and ssl exists with the same kind."""

from __future__ import annotations

from .helpers import run_patched, run_python

KINDS = """
import inspect, json, sys
def kind(v):
    if inspect.isclass(v):
        return "exception" if issubclass(v, BaseException) else "class"
    if callable(v):
        return "callable"
    if isinstance(v, (int, str, bytes, float, tuple, type(None))):
        return type(v).__name__
    return "object"
def kinds(mod):
    return {n: kind(getattr(mod, n)) for n in dir(mod) if not n.startswith("_") or n == "_GLOBAL_DEFAULT_TIMEOUT"}
"""

CODE = KINDS + """
import socket, select, selectors, ssl
print(json.dumps({m.__name__: kinds(m) for m in (socket, select, selectors, ssl)}))
"""


def test_public_names_keep_their_kind_after_patching() -> None:
    import json

    plain = run_python(["-c", CODE])
    assert plain.returncode == 0, plain.stderr
    before = json.loads(plain.stdout)
    after = run_patched(KINDS + """
        import socket, select, selectors, ssl
        report({m.__name__: kinds(m) for m in (socket, select, selectors, ssl)})
    """.replace("\n        ", "\n"))
    removed = {"select": {"kqueue", "kevent", "devpoll"},
               "selectors": {"KqueueSelector", "DevpollSelector"}}
    problems = []
    for module, names in before.items():
        for name, kind in names.items():
            if name in removed.get(module, set()):
                assert name not in after[module], f"{module}.{name} should be removed"
                continue
            if name not in after[module]:
                problems.append(f"{module}.{name} missing")
            elif after[module][name] != kind:
                problems.append(f"{module}.{name}: {kind} -> {after[module][name]}")
    assert problems == []


def test_exception_classes_and_sentinels_are_the_stdlibs() -> None:
    out = run_patched("""
        import socket, _socket
        report([socket.error is OSError, socket.timeout is TimeoutError, socket.gaierror is _socket.gaierror,
                socket.herror is _socket.herror,
                socket._GLOBAL_DEFAULT_TIMEOUT is pytcp_green.patches.socket._GLOBAL_DEFAULT_TIMEOUT,
                socket.getdefaulttimeout is _socket.getdefaulttimeout])
    """)
    assert out == [True] * 6


def test_socket_methods_of_the_stdlib_class_exist_on_ours() -> None:
    out = run_patched("""
        import socket
        orig = pytcp_green.get_original("socket", "socket")
        public = [n for n in dir(orig) if not n.startswith("_")]
        report([n for n in public if not hasattr(socket.socket, n)])
    """)
    assert out == []
