"""Run a program patched from its first line: ``pytcp-green run`` and ``python -m pytcp_green script.py``.

Like ``python -m gevent.monkey``: patch first, then hand the program to :mod:`runpy` with
``sys.argv`` set to what it would see if started directly, so ``__name__ == "__main__"`` code,
relative paths and ``argparse`` all behave.  Before it starts, the program's environment gets
``PYTCP_GREEN_STACK_IP4`` and ``PYTCP_GREEN_PEER_IP4`` (:meth:`Host.env`).

With ``--lab --peer CMD`` a kernel-side command starts in the lab namespace first; with
``--wait-port PORT`` the program starts only once that command accepts TCP connections on
``PORT``, which is checked by connecting *through the stack* (bounded retries with backoff,
giving up early if the peer exits).
"""

from __future__ import annotations

import errno
import os
import runpy
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

WAIT_PORT_TIMEOUT = 30.0


class RunError(RuntimeError):
    """The program could not be started; the message says why."""


def wait_for_port(host: Any, address: str, port: int, *, peer: subprocess.Popen[Any] | None = None,
                  timeout: float = WAIT_PORT_TIMEOUT) -> None:
    """Return once ``address:port`` accepts a TCP connection made through the stack."""
    import gevent

    from pytcp_green.green.sockets import GreenSocket
    from pytcp_green.stack.sockbase import AF_INET
    from pytcp_green.stack.stack import SOCK_STREAM

    runtime = host.runtime
    deadline = runtime.now() + timeout
    delay = 0.01
    last: OSError | None = None
    while True:
        if peer is not None and peer.poll() is not None:
            raise RunError(f"the peer command exited with status {peer.returncode} before listening on {port}")
        remaining = deadline - runtime.now()
        if remaining <= 0:
            raise RunError(f"nothing listened on {address}:{port} within {timeout:g} s (last error: {last})")
        sock = GreenSocket(runtime, host.stack.socket(AF_INET, SOCK_STREAM), timeout=min(remaining, 5.0))
        try:
            sock.connect((address, port))
        except (OSError, TimeoutError) as exc:
            last = exc if isinstance(exc, OSError) else OSError(errno.ETIMEDOUT, "timed out")
        else:
            return
        finally:
            sock.close()
        # A refused connect comes back at once: back off (capped) so a slow starter is not hammered.
        gevent.sleep(min(delay, max(0.0, deadline - runtime.now())))
        delay = min(delay * 2, 0.5)


def run_program(options: Any, *, target: str | None, module: str | None, args: Sequence[str],
                peer: str | None = None, wait_port: int | None = None, dns: Sequence[str] | None = None) -> int:
    """Patch, start the peer, run the program; returns its exit status."""
    import pytcp_green

    if (target is None) == (module is None):
        raise RunError("give a script or -m MODULE")
    if peer and not options.lab:
        raise RunError("--peer runs its command in the lab: add --lab")
    if wait_port is not None and not peer:
        raise RunError("--wait-port waits for the --peer command: add --peer")
    stack_options = {name: getattr(options, name) for name in pytcp_green.patches.stack_option_names()}
    host = pytcp_green.patch_all(dns=list(dns) if dns else True, **stack_options)
    os.environ.update(host.env())
    proc: subprocess.Popen[Any] | None = None
    parent = os.getpid()
    try:
        if peer:
            proc = start_peer(host, peer, wait_port)
        return run_target(target, module, args)
    finally:
        # Not in a forked child whose sys.exit() unwinds through here: the peer, the lab and the stack
        # are the parent's.
        if os.getpid() == parent:
            _tear_down(proc, host)


def _tear_down(proc: subprocess.Popen[Any] | None, host: Any) -> None:
    from pytcp_green.patches import _state

    if proc is not None:
        from pytcp_green.lab.daemon import stop_process

        stop_process(proc)
    if _state.has_host() and _state.current_host() is host:
        _state.set_host(None)
        host.close()


def start_peer(host: Any, peer: str, wait_port: int | None = None, **popen: Any) -> subprocess.Popen[Any]:
    """Start the shell command ``peer`` on the kernel side of ``host``'s lab (it sees :meth:`Host.env`);
    with ``wait_port``, return once it accepts TCP connections on that port.  ``popen``: extra
    :class:`subprocess.Popen` arguments (``stdout``, ``stderr``…).  The lab stops it at teardown."""
    if host.lab is None:
        raise RunError("--peer runs its command in the lab: add --lab")
    proc: subprocess.Popen[Any] = host.lab.popen(["sh", "-c", peer], env=dict(os.environ, **host.env()), **popen)
    if wait_port is not None:
        peer_ip = host.env().get("PYTCP_GREEN_PEER_IP4")
        if peer_ip is None:
            raise RunError("no peer address to wait on")
        wait_for_port(host, peer_ip, wait_port, peer=proc)
    return proc


def run_target(target: str | None, module: str | None, args: Sequence[str]) -> int:
    """runpy with the argv and sys.path the program would have had if started directly."""
    try:
        if module is not None:
            sys.argv[:] = [module, *args]  # runpy.run_module replaces argv[0] with the module's path
            sys.path.insert(0, os.getcwd())  # as python -m does
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        else:
            assert target is not None
            sys.argv[:] = [target, *args]
            sys.path.insert(0, os.path.dirname(os.path.abspath(target)))
            runpy.run_path(target, run_name="__main__")
    except SystemExit as exc:
        code = exc.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        print(code, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        raise
    except BaseException:
        # The program's own uncaught exception: report it as the interpreter would, exit status 1,
        # never as one of pytcp-green's usage errors.
        sys.excepthook(*sys.exc_info())
        return 1
    return 0
