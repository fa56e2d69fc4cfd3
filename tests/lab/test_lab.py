"""The Lab's lifecycle: what it builds exists while it is open and is gone after, however it ends.

Ends covered: normal exit, an exception, Ctrl-C in the body, Ctrl-C during teardown, SIGTERM and
atexit (those two in a child process), a peer that ignores SIGTERM, a peer that daemonized, and
namespaces left behind by a dead process.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pytcp_green.lab import Lab, LabError, cleanup_stale, lab_unavailable_reason

from .frames import netns_list, open_pidfd, pid_alive, wait_exited

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]


def _ns_handle(netns: str) -> int:
    """An open handle on the namespace: it keeps the namespace alive after `ip netns del`, so we
    can look inside it afterwards and see what teardown left in it."""
    return os.open(f"/run/netns/{netns}", os.O_RDONLY | os.O_CLOEXEC)


def _links_in(handle: int) -> list[str]:
    out = subprocess.run(
        ["nsenter", f"--net=/proc/self/fd/{handle}", "ip", "-o", "link", "show"],
        pass_fds=(handle,),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]


def _processes_in(handle: int) -> list[int]:
    st = os.fstat(handle)
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ns = os.stat(f"/proc/{entry}/ns/net")
        except OSError:
            continue
        if (ns.st_dev, ns.st_ino) == (st.st_dev, st.st_ino):
            found.append(int(entry))
    return found


@contextmanager
def _watched(lab: Lab) -> Iterator[dict[str, object]]:
    """Run ``lab`` as its own ``with`` would, holding a handle on its namespace throughout; after
    teardown record what is left inside (links, processes) for :func:`_assert_gone`."""
    lab.start()
    facts: dict[str, object] = {"netns": lab.netns, "tap": lab.device.name}
    handle = _ns_handle(lab.netns)
    try:
        try:
            yield facts
        finally:
            try:
                lab.close()  # may re-raise a Ctrl-C that arrived during teardown
            finally:
                facts["links_after"] = _links_in(handle)
                facts["procs_after"] = _processes_in(handle)
    finally:
        os.close(handle)


def _assert_gone(facts: dict[str, object]) -> None:
    assert facts["netns"] not in netns_list()
    assert facts["links_after"] == ["lo"], facts  # the TAP went with the closed fd
    assert facts["procs_after"] == [], facts
    assert not os.path.exists(f"/sys/class/net/{facts['tap']}")


def test_namespace_and_tap_exist_inside_and_are_gone_after() -> None:
    lab = Lab()
    with _watched(lab) as facts:
        assert lab.netns in netns_list()
        assert lab.netns.startswith(f"pg-{os.getpid()}-")
        assert len(lab.device.name) <= 15 and lab.device.name.startswith(f"pgt{os.getpid()}-")
        links = lab.run(["ip", "-o", "link", "show"], check=True).stdout
        assert lab.device.name in links and "UP" in links
        addresses = lab.run(["ip", "-o", "-4", "address", "show", "dev", lab.device.name], check=True).stdout
        assert "198.18.0.1/24" in addresses
        assert not os.path.exists(f"/sys/class/net/{lab.device.name}")  # not in our namespace
        assert lab.env() == {"PYTCP_GREEN_STACK_IP4": "198.18.0.2", "PYTCP_GREEN_PEER_IP4": "198.18.0.1"}
    assert lab.device.closed
    _assert_gone(facts)
    with pytest.raises(LabError):
        lab.run(["true"])


def test_exception_in_the_body_tears_down_and_stops_a_running_peer() -> None:
    lab = Lab()
    with pytest.raises(RuntimeError, match="boom"), _watched(lab) as facts:
        peer = lab.popen(["sleep", "1000"])
        raise RuntimeError("boom")
    assert peer.returncode == -signal.SIGTERM
    _assert_gone(facts)


def test_ctrl_c_in_the_body_tears_down() -> None:
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT is not Python's default KeyboardInterrupt handler here")
    lab = Lab()
    with pytest.raises(KeyboardInterrupt), _watched(lab) as facts:
        peer = lab.popen(["sleep", "1000"])
        signal.raise_signal(signal.SIGINT)
        pytest.fail("SIGINT did not interrupt")
    assert peer.returncode == -signal.SIGTERM
    _assert_gone(facts)


INTERRUPT_PARENT_ON_TERM = """
import os, signal, sys
def on_term(*_):
    os.kill(int(sys.argv[1]), signal.SIGINT)   # Ctrl-C lands on the lab while it tears down
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
print("ready", flush=True)
while True:
    signal.pause()
"""


def test_ctrl_c_during_teardown_does_not_cut_it_short() -> None:
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT is not Python's default KeyboardInterrupt handler here")
    lab = Lab()
    with pytest.raises(KeyboardInterrupt), _watched(lab) as facts:
        peer = lab.popen(
            [sys.executable, "-c", INTERRUPT_PARENT_ON_TERM, str(os.getpid())], stdout=subprocess.PIPE, text=True
        )
        assert peer.stdout is not None
        assert select.select([peer.stdout], [], [], 30)[0], "peer never got ready"
        assert peer.stdout.readline() == "ready\n"
    assert peer.stdout is not None
    peer.stdout.close()
    assert peer.returncode == 0
    _assert_gone(facts)


def test_peer_ignoring_sigterm_is_killed_with_its_whole_group() -> None:
    lab = Lab(term_timeout=0.3)
    with _watched(lab) as facts:
        # sh ignores SIGTERM and so does the background sleep it starts (ignored signals are
        # inherited); both are in the peer's process group.
        peer = lab.popen(["sh", "-c", "trap '' TERM; sleep 1000 & echo $!; wait"], stdout=subprocess.PIPE, text=True)
        assert peer.stdout is not None
        child = int(peer.stdout.readline())
        child_fd = open_pidfd(child)
    try:
        assert peer.returncode == -signal.SIGKILL
        assert wait_exited(child_fd), "the peer's child survived teardown"
    finally:
        os.close(child_fd)
        assert peer.stdout is not None
        peer.stdout.close()
    _assert_gone(facts)


DAEMONIZE = """
import subprocess
d = subprocess.DEVNULL
print(subprocess.Popen(["sleep", "1000"], start_new_session=True, stdin=d, stdout=d, stderr=d).pid)
"""


def test_a_daemonized_process_inside_the_namespace_is_killed() -> None:
    lab = Lab()
    with _watched(lab) as facts:
        # Popen returns only once the exec succeeded, so the printed PID is the sleep's; the
        # launcher exits at once, leaving the sleep orphaned in its own session.
        out = lab.run([sys.executable, "-c", DAEMONIZE], check=True)
        daemon = int(out.stdout)
        daemon_fd = open_pidfd(daemon)
    try:
        assert wait_exited(daemon_fd), "the daemon survived teardown"
    finally:
        os.close(daemon_fd)
    _assert_gone(facts)


def test_run_timeout_kills_the_command_and_its_children() -> None:
    with Lab() as lab:
        with pytest.raises(subprocess.TimeoutExpired):
            lab.run(["sh", "-c", "sleep 1000 & wait"], timeout=0.3)
        # Nothing of it is left in the namespace (the sleep held the output pipe: had it
        # survived, run() would not have returned at all).
        assert _processes_in_lab(lab) == []


def _processes_in_lab(lab: Lab) -> list[int]:
    handle = _ns_handle(lab.netns)
    try:
        return [pid for pid in _processes_in(handle) if pid_alive(pid)]
    finally:
        os.close(handle)


def test_sysctl_is_per_namespace() -> None:
    with open("/proc/sys/net/ipv4/tcp_sack") as host:
        host_value = host.read().strip()
    with Lab() as lab:
        assert lab.sysctl("net.ipv4.tcp_sack") == "1"
        assert lab.sysctl("net.ipv4.tcp_sack", 0) == "0"
        assert lab.sysctl("net/ipv4/tcp_sack") == "0"
        with pytest.raises(LabError):
            lab.sysctl("net.ipv4.no_such_thing", 1)
    with open("/proc/sys/net/ipv4/tcp_sack") as host:
        assert host.read().strip() == host_value


def test_popen_refuses_to_share_our_session() -> None:
    with Lab() as lab, pytest.raises(ValueError):
        lab.popen(["true"], start_new_session=False)


def test_bad_addresses_are_rejected() -> None:
    with pytest.raises(ValueError):
        Lab(kernel_ip4="198.18.0.1/24", stack_ip4="198.18.1.2/24")
    with pytest.raises(ValueError):
        Lab(kernel_ip4="198.18.0.1/24", stack_ip4="198.18.0.1/24")


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    assert not pid_alive(proc.pid)
    return proc.pid


def test_stale_namespaces_of_dead_processes_are_removed_and_nothing_else() -> None:
    dead = _dead_pid()
    keeper = subprocess.Popen(["sleep", "1000"])  # a live PID to name a "live" lab after
    stale, live, foreign = f"pg-{dead}-0", f"pg-{keeper.pid}-0", f"pgx-{dead}-0"
    made: list[str] = []
    squatter: subprocess.Popen[bytes] | None = None
    try:
        for name in (stale, live, foreign):
            subprocess.run(["ip", "netns", "add", name], check=True)
            made.append(name)
        # Something still running inside the stale lab must not keep it alive.
        squatter = subprocess.Popen(["ip", "netns", "exec", stale, "sleep", "1000"], start_new_session=True)
        assert select.select([], [], [], 0) == ([], [], [])
        squatter_fd = open_pidfd(squatter.pid)
        try:
            # Wait until the squatter has entered the namespace (its exec replaced `ip`).
            for _ in range(1000):
                with open(f"/proc/{squatter.pid}/comm") as comm:
                    if comm.read().strip() == "sleep":
                        break
                select.select([squatter_fd], [], [], 0.01)
            removed = cleanup_stale()
            # `stale in removed` would be racy: a concurrent test session's Lab.start() may
            # have cleaned it first.  The end state is what matters.
            assert live not in removed and foreign not in removed
            names = netns_list()
            assert stale not in names and live in names and foreign in names
            assert wait_exited(squatter_fd)
        finally:
            os.close(squatter_fd)
        assert squatter.wait(timeout=10) == -signal.SIGKILL
    finally:
        if squatter is not None and squatter.poll() is None:
            squatter.kill()
            squatter.wait()
        keeper.kill()
        keeper.wait()
        for name in made:
            if name in netns_list():
                subprocess.run(["ip", "netns", "del", name], check=True)


def test_starting_a_lab_removes_stale_ones() -> None:
    stale = f"pg-{_dead_pid()}-7"
    subprocess.run(["ip", "netns", "add", stale], check=True)
    try:
        with Lab():
            assert stale not in netns_list()
    finally:
        if stale in netns_list():
            subprocess.run(["ip", "netns", "del", stale], check=True)


CHILD_LAB = """
import sys
from pytcp_green.lab import Lab
lab = Lab().start()
peer = lab.popen(["sleep", "1000"])
print(lab.netns, peer.pid, flush=True)
if sys.argv[1] == "wait":
    sys.stdin.read()          # until the parent sends SIGTERM
# "exit": fall off the end without closing the lab: atexit must clean up
"""


def _child_lab(mode: str) -> tuple[subprocess.Popen[str], str, int]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD_LAB, mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdout is not None
    assert select.select([child.stdout], [], [], 60)[0], "the child lab never started"
    netns, peer = child.stdout.readline().split()
    return child, netns, int(peer)


@pytest.mark.parametrize("mode", ["sigterm", "atexit"])
def test_child_process_lab_is_cleaned_up_on(mode: str) -> None:
    child, netns, peer = _child_lab("wait" if mode == "sigterm" else "exit")
    peer_fd = open_pidfd(peer) if pid_alive(peer) else None
    try:
        if mode == "sigterm":
            assert netns in netns_list()
            child.send_signal(signal.SIGTERM)
            assert child.wait(timeout=30) == -signal.SIGTERM  # still dies of SIGTERM
        else:
            assert child.wait(timeout=30) == 0
        assert netns not in netns_list()
        if peer_fd is not None:
            assert wait_exited(peer_fd), "the child's peer survived"
    finally:
        if peer_fd is not None:
            os.close(peer_fd)
        if child.poll() is None:
            child.kill()
            child.wait()
        for stream in (child.stdin, child.stdout):
            if stream is not None:
                stream.close()


def test_unavailable_reason_is_none_here() -> None:
    # The lab tests run only when it is None; this documents what they rely on.
    assert lab_unavailable_reason() is None
