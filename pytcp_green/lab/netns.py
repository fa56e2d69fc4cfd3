"""The lab: a network namespace whose only link is a TAP (or TUN) device that this process holds.

Layout of one lab::

    this process (host namespace)            namespace pg-<pid>-<n>
    TapDevice fd  <==== pgt<pid>-<n> ====>   kernel: kernel_ip4 on the TAP, lo up
    (the stack, stack_ip4)                   peers started with Lab.run()/Lab.popen()

How it is built: ``ip netns add`` creates the namespace; :func:`~pytcp_green.link.tap.open_offloaded`
opens the TAP here, so the fd belongs to this process (and the MTU is set by ``open_tap``);
``ip link set dev <tap> netns <ns>`` moves the interface, and the fd keeps working after the
move.  Inside the namespace ``lo`` goes up, ``kernel_ip4`` goes on the TAP and the TAP goes up.
IPv6 stays enabled, so the kernel's first frames on the link are IPv6 (router solicitations,
MLD, DAD): readers must expect them.

Teardown (normal exit, an exception, Ctrl-C, SIGTERM, or atexit as the last resort), in order:

1. processes started with :meth:`Lab.popen` are stopped by process group (each runs in its own
   session): SIGTERM, then SIGKILL after ``term_timeout`` seconds, and reaped;
2. any process still inside the namespace (say, one that daemonized from :meth:`Lab.run`) gets
   SIGKILL by PID, after checking that it is in *this* namespace;
3. the TAP fd is closed, which destroys the interface;
4. the namespace is deleted as ``ip netns del`` does it (detach-unmount and unlink
   ``/run/netns/<name>``), with plain system calls so that it also works from a signal handler,
   atexit, or under gevent's monkey-patching where spawning ``ip`` is not an option.

A second Ctrl-C during teardown does not cut it short: the step is retried and the interrupt is
re-raised when teardown is done.  SIGTERM arriving during teardown is delivered after it.

The SIGTERM handler is installed only from the main thread and only when SIGTERM still has its
default disposition: it tears down this process's labs without grace periods, restores the
default and re-sends SIGTERM to the process, so the host program dies exactly as it would have.
With no lab open it is uninstalled (or, if uninstalling is not possible, behaves as the default).

Stale labs: a namespace named ``pg-<pid>-<n>`` whose ``<pid>`` is no longer running (or is this
process but not one of its open labs: a recycled PID) is left over from a crash.
:func:`cleanup_stale` (run by every :meth:`Lab.start`) kills what runs inside it and deletes it.
Namespaces not matching that pattern are never touched.
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import itertools
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Sequence
from types import FrameType
from typing import Any

from pytcp_green.lab.nsops import NETNS_DIR, delete_netns, kill_netns_processes, pid_alive
from pytcp_green.link import tap as _tap
from pytcp_green.link.tap import TapDevice, open_offloaded

_NETNS_RE = re.compile(r"^pg-(\d+)-(\d+)$")
_IFNAME_MAX = 15
_CAP_NET_ADMIN = 12
_CAP_SYS_ADMIN = 21

_lock = threading.RLock()  # re-entrant: the SIGTERM handler may run while the main thread holds it
_active: dict[str, Lab] = {}  # namespace name -> open lab of this process
_counter = itertools.count()
_atexit_registered = False
_teardown_depth = 0  # teardowns in progress in this process
_sigterm_pending = False  # SIGTERM arrived during a teardown; re-sent when it is done


class LabError(RuntimeError):
    """Building or using the lab failed (an ``ip`` command refused, for instance)."""


class LabUnavailable(LabError):
    """This machine or user cannot run a lab; the message says why."""


# --------------------------------------------------------------------------- availability


def _effective_caps() -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except OSError:
        pass
    return None


def lab_unavailable_reason() -> str | None:
    """None when a lab can be built here; otherwise a sentence saying what is missing."""
    if not sys.platform.startswith("linux"):
        return f"the lab needs Linux (network namespaces, /dev/net/tun); this is {sys.platform}"
    if os.geteuid() != 0:
        return f"the lab needs root (network namespaces and TAP devices); running as uid {os.geteuid()}"
    caps = _effective_caps()
    if caps is not None:
        missing = [
            name
            for bit, name in ((_CAP_NET_ADMIN, "CAP_NET_ADMIN"), (_CAP_SYS_ADMIN, "CAP_SYS_ADMIN"))
            if not caps >> bit & 1
        ]
        if missing:
            return f"the lab needs {' and '.join(missing)}, which this root process lacks (a restricted container?)"
    if not os.path.exists(_tap.TUN_PATH):
        return f"{_tap.TUN_PATH} does not exist (load the tun module, or pass the device into the container)"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    return None


def needs_lab() -> None:
    """Raise :class:`LabUnavailable` with the reason when a lab cannot be built here."""
    reason = lab_unavailable_reason()
    if reason is not None:
        raise LabUnavailable(reason)


# --------------------------------------------------------------------------- low-level helpers


def _ip_path() -> str:
    path = shutil.which("ip")
    if path is None:
        raise LabUnavailable("the `ip` command (iproute2) is not installed")
    return path


def _ip(*args: str) -> None:
    """Run one ``ip`` command; raise LabError with its own complaint when it fails."""
    done = subprocess.run([_ip_path(), *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise LabError(f"ip {' '.join(args)}: {done.stderr.strip() or f'exit status {done.returncode}'}")


def cleanup_stale() -> list[str]:
    """Delete lab namespaces left behind by dead processes; return their names.

    Only names matching ``pg-<pid>-<n>`` are considered, and only when ``<pid>`` is not alive,
    or is this process but not one of its open labs.  Processes still inside are killed first.
    """
    removed: list[str] = []
    try:
        names = sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return removed
    me = os.getpid()
    for name in names:
        match = _NETNS_RE.match(name)
        if match is None:
            continue
        pid = int(match.group(1))
        with _lock:
            if pid == me:
                if name in _active:
                    continue
            elif pid_alive(pid):
                continue
            try:
                kill_netns_processes(os.path.join(NETNS_DIR, name))
                delete_netns(name)
            except OSError as exc:
                warnings.warn(f"could not remove stale lab namespace {name}: {exc}", stacklevel=2)
                continue
        removed.append(name)
    return removed


# --------------------------------------------------------------------------- signals and atexit


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    global _sigterm_pending
    if _teardown_depth:
        # Interrupting a teardown half-way would leak what it has not removed yet; let it
        # finish, it re-sends SIGTERM at the end.
        _sigterm_pending = True
        return
    for lab in list(_active.values()):
        with contextlib.suppress(Exception):
            lab._teardown(graceful=False)
    with contextlib.suppress(ValueError):  # ValueError: not the main thread (cannot happen here)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _maybe_install_sigterm() -> None:
    if threading.current_thread() is not threading.main_thread():
        return  # signal.signal works only there; the host program owns signals anyway
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)


def _maybe_uninstall_sigterm() -> None:
    if _active or threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is _on_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _atexit_cleanup() -> None:
    for lab in list(_active.values()):
        try:
            lab.close()
        except Exception as exc:  # nothing to propagate to at exit; say what leaked
            print(f"pytcp_green.lab: cleaning up {lab.netns} at exit failed: {exc}", file=sys.stderr)


# --------------------------------------------------------------------------- the lab


class Lab:
    """A namespace with the Linux kernel on one side of a TAP and this process on the other.

    Use it as a context manager (or call :meth:`start` and :meth:`close`)::

        with Lab(kernel_ip4="198.18.0.1/24", stack_ip4="198.18.0.2/24") as lab:
            run_stack(lab.device, lab.stack_ip4)
            lab.run(["ping", "-c", "1", str(lab.stack_ip4.ip)], timeout=5)

    ``tun=True`` gives a TUN device (bare IP, no ARP); ``vnet_hdr=True`` opens it with the
    virtio-net header (see :mod:`pytcp_green.link.tap`).  ``term_timeout`` bounds how long
    teardown waits for :meth:`popen` processes after SIGTERM before it uses SIGKILL.
    """

    def __init__(
        self,
        *,
        kernel_ip4: str = "198.18.0.1/24",
        stack_ip4: str = "198.18.0.2/24",
        mtu: int = 1500,
        tun: bool = False,
        vnet_hdr: bool = False,
        term_timeout: float = 3.0,
        kernel_ip6: str | None = None,
    ) -> None:
        self.kernel_ip4 = ipaddress.IPv4Interface(kernel_ip4)
        # With kernel_ip6 the kernel side also gets this IPv6 address and the link-local fe80::1,
        # both without DAD ("nodad") so that they are usable at once (a test must not wait ~1 s).
        self.kernel_ip6 = ipaddress.IPv6Interface(kernel_ip6) if kernel_ip6 else None
        self.kernel_ll6 = ipaddress.IPv6Address("fe80::1")
        self.stack_ip4 = ipaddress.IPv4Interface(stack_ip4)
        if self.kernel_ip4.network != self.stack_ip4.network:
            raise ValueError(f"kernel {self.kernel_ip4} and stack {self.stack_ip4} are not on one subnet")
        if self.kernel_ip4.ip == self.stack_ip4.ip:
            raise ValueError(f"kernel and stack both have the address {self.kernel_ip4.ip}")
        self.mtu = mtu
        self.tun = tun
        self.vnet_hdr = vnet_hdr
        self.term_timeout = term_timeout
        self.kernel_mac: bytes | None = None  # the kernel's MAC on the TAP (None for TUN)
        self._netns: str | None = None
        self._device: TapDevice | None = None
        self._procs: list[subprocess.Popen[Any]] = []
        self._terminated: set[int] = set()  # PIDs of peers sent SIGTERM by teardown
        self._term_deadline: float | None = None  # when teardown stops waiting for them
        self._owner_pid = os.getpid()
        self._started = False
        self._closed = False

    # ---- properties

    @property
    def netns(self) -> str:
        """The namespace's name, ``pg-<pid>-<n>``."""
        if self._netns is None:
            raise LabError("the lab has not been started")
        return self._netns

    @property
    def device(self) -> TapDevice:
        """The TAP/TUN device, open in this process; its interface lives in the namespace."""
        if self._device is None:
            raise LabError("the lab has not been started")
        return self._device

    # ---- lifecycle

    def __enter__(self) -> Lab:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self) -> Lab:
        """Build the namespace and the device; on any failure (Ctrl-C included) undo what was built."""
        global _atexit_registered
        if self._started:
            raise LabError("a Lab can be started only once")
        self._started = True
        needs_lab()
        cleanup_stale()
        pid = os.getpid()
        with _lock:
            while True:
                n = next(_counter)
                netns, ifname = f"pg-{pid}-{n}", f"pgt{pid}-{n}"
                if len(ifname) > _IFNAME_MAX:
                    raise LabError(f"out of interface names for pid {pid} ({ifname!r} is too long)")
                if not os.path.lexists(os.path.join(NETNS_DIR, netns)) and not os.path.lexists(
                    f"/sys/class/net/{ifname}"
                ):
                    break
            # Registered before anything exists, so a teardown from any path covers it and
            # cleanup_stale() of this process leaves it alone.
            self._netns = netns
            _active[netns] = self
            if not _atexit_registered:
                atexit.register(_atexit_cleanup)
                _atexit_registered = True
            _maybe_install_sigterm()
        try:
            _ip("netns", "add", netns)
            self._device = open_offloaded(ifname, tun=self.tun, mtu=self.mtu, offload=self.vnet_hdr)
            if not self.tun:
                with open(f"/sys/class/net/{ifname}/address", encoding="ascii") as address:
                    self.kernel_mac = bytes.fromhex(address.read().strip().replace(":", ""))
            _ip("link", "set", "dev", ifname, "netns", netns)
            _ip("-n", netns, "link", "set", "dev", "lo", "up")
            _ip("-n", netns, "address", "add", str(self.kernel_ip4), "dev", ifname)
            if self.kernel_ip6 is not None and not self.tun:
                _ip("-n", netns, "link", "set", "dev", ifname, "addrgenmode", "none")
                _ip("-n", netns, "address", "add", f"{self.kernel_ll6}/64", "dev", ifname, "nodad")
                _ip("-n", netns, "address", "add", str(self.kernel_ip6), "dev", ifname, "nodad")
            _ip("-n", netns, "link", "set", "dev", ifname, "up")
        except BaseException:
            self._teardown(graceful=True)
            raise
        return self

    def close(self) -> None:
        """Tear the lab down (see the module docstring); idempotent."""
        self._teardown(graceful=True)

    def _teardown(self, *, graceful: bool) -> None:
        global _teardown_depth, _sigterm_pending
        if self._closed or os.getpid() != self._owner_pid:
            return  # a forked child inherits the registry but does not own the lab
        steps = (
            self._stop_processes if graceful else self._kill_processes,
            self._kill_namespace_processes,
            self._close_device,
            self._remove_namespace,
        )
        interrupt: KeyboardInterrupt | None = None
        error: Exception | None = None
        with _lock:
            _teardown_depth += 1
        try:
            for step in steps:
                # Every step is idempotent, so a Ctrl-C in the middle of one just runs it again.
                for _attempt in range(5):
                    try:
                        step()
                        break
                    except KeyboardInterrupt as exc:
                        interrupt = exc
                    except Exception as exc:
                        error = error or exc
                        break
            self._closed = True
        finally:
            with _lock:
                _teardown_depth -= 1
                if self._closed and self._netns is not None:
                    _active.pop(self._netns, None)
                _maybe_uninstall_sigterm()
                resend = _sigterm_pending and not _teardown_depth
                if resend:
                    _sigterm_pending = False
        if resend:
            os.kill(os.getpid(), signal.SIGTERM)
        if interrupt is not None:
            raise interrupt
        if error is not None:
            raise error

    def _live_procs(self) -> list[subprocess.Popen[Any]]:
        # returncode is None until we reaped the process: only then is its PID (and so its
        # process group ID) guaranteed not to have been recycled.
        return [proc for proc in self._procs if proc.returncode is None]

    def _kill_processes(self) -> None:
        for proc in self._live_procs():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)

    def _stop_processes(self) -> None:
        live = self._live_procs()
        if not live:
            return
        # A Ctrl-C re-runs this step: do not send SIGTERM twice (a peer busy shutting down may
        # not survive a second one) nor restart the grace period.
        for proc in live:
            if proc.pid not in self._terminated:
                self._terminated.add(proc.pid)
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGTERM)
        if self._term_deadline is None:
            self._term_deadline = time.monotonic() + self.term_timeout
        deadline = self._term_deadline
        # Wait for the group leaders to exit without reaping them (pidfds poll readable on
        # exit), so their group IDs stay reserved for the SIGKILL below.
        pidfds: list[int] = []
        for proc in live:
            with contextlib.suppress(OSError):
                pidfds.append(os.pidfd_open(proc.pid))
        try:
            waiting = list(pidfds)
            while waiting:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                ready, _, _ = select.select(waiting, [], [], remaining)
                waiting = [fd for fd in waiting if fd not in ready]
        finally:
            for fd in pidfds:
                os.close(fd)
        # Whatever is left of each group (a leader ignoring SIGTERM, or children of a leader
        # that did exit) gets SIGKILL; then reap the leaders.
        self._kill_processes()
        for proc in live:
            proc.wait()

    def _kill_namespace_processes(self) -> None:
        if self._netns is not None:
            kill_netns_processes(os.path.join(NETNS_DIR, self._netns))

    def _close_device(self) -> None:
        if self._device is not None:
            self._device.close()

    def _remove_namespace(self) -> None:
        if self._netns is not None:
            delete_netns(self._netns)

    # ---- running things inside

    def _check_open(self) -> str:
        if self._closed:
            raise LabError(f"lab {self._netns} is closed")
        return self.netns

    def netns_argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` prefixed so that it runs inside the namespace (``ip netns exec <ns> ...``)."""
        if isinstance(argv, str):
            raise TypeError("argv must be a sequence of arguments, not a string")
        return [_ip_path(), "netns", "exec", self._check_open(), *argv]

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` inside the namespace; the lab stops it at teardown.

        Keyword arguments go to :class:`subprocess.Popen`.  The process always starts a new
        session (so Ctrl-C on the terminal reaches this program, which then tears it down, and
        its whole process group can be signalled at once).
        """
        for key in ("start_new_session", "process_group"):
            if key in kwargs and kwargs[key] not in (True, None):
                raise ValueError(f"Lab.popen: {key}={kwargs[key]!r} is not supported (each peer gets its own session)")
        kwargs.pop("process_group", None)
        kwargs["start_new_session"] = True
        proc: subprocess.Popen[Any] = subprocess.Popen(self.netns_argv(argv), **kwargs)
        self._procs.append(proc)
        return proc

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = 60.0,
        check: bool = False,
        input: str | bytes | None = None,
        capture_output: bool = True,
        text: bool = True,
        **kwargs: Any,
    ) -> subprocess.CompletedProcess[Any]:
        """Run ``argv`` inside the namespace to completion, like :func:`subprocess.run`.

        Output is captured as text by default.  On timeout (or Ctrl-C) the command's whole
        process group is killed and reaped before the exception propagates.
        """
        if capture_output:
            kwargs.setdefault("stdout", subprocess.PIPE)
            kwargs.setdefault("stderr", subprocess.PIPE)
        if input is not None:
            kwargs["stdin"] = subprocess.PIPE
        proc: subprocess.Popen[Any] = subprocess.Popen(
            self.netns_argv(argv), start_new_session=True, text=text, **kwargs
        )
        with proc:
            try:
                stdout, stderr = proc.communicate(input, timeout=timeout)
            except BaseException:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
                raise
        done = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
        if check:
            done.check_returncode()
        return done

    def sysctl(self, key: str, value: str | int | None = None) -> str:
        """Read, or set and read back, a sysctl inside the namespace (``net.ipv4.tcp_sack``).

        Works through ``/proc/sys`` with ``sh``, so it does not depend on procps.  Keys may use
        the dotted or the slashed form (the latter for interface names containing dots).
        """
        relative = key.replace(".", "/") if "/" not in key else key.strip("/")
        if not relative or ".." in relative.split("/"):
            raise ValueError(f"bad sysctl key {key!r}")
        path = f"/proc/sys/{relative}"
        script = 'if [ "$#" -gt 1 ]; then printf "%s\\n" "$2" > "$1" || exit 1; fi; cat "$1"'
        argv = ["sh", "-c", script, "sh", path] + ([] if value is None else [str(value)])
        done = self.run(argv, timeout=30)
        if done.returncode != 0:
            raise LabError(f"sysctl {key} in {self.netns}: {done.stderr.strip() or 'failed'}")
        return str(done.stdout).strip()

    def env(self) -> dict[str, str]:
        """Environment variables telling a program run in this process how to configure the stack."""
        return {
            "PYTCP_GREEN_STACK_IP4": str(self.stack_ip4.ip),
            "PYTCP_GREEN_PEER_IP4": str(self.kernel_ip4.ip),
            **({"PYTCP_GREEN_PEER_IP6": str(self.kernel_ip6.ip)} if self.kernel_ip6 is not None else {}),
        }

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("open" if self._device is not None else "new")
        kind = "tun" if self.tun else "tap"
        return f"<Lab {self._netns or '-'} {kind} kernel={self.kernel_ip4} stack={self.stack_ip4} {state}>"
