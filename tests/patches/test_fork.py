"""fork() in a patched program (issue 14): the stack stays with the parent.

A forked child has a frozen copy of the user-space stack.  In a lab, a patched program talks to a kernel
echo server over TCP, forks, and the child (plain ``os.fork``, a child that exits through ``sys.exit``
and its at-exit handlers, and a ``multiprocessing`` fork-method process) touches the inherited socket:
EBADF with a message naming the spawn method, a new stack socket ENETDOWN, and closing the inherited
socket sends nothing (the kernel peer sees neither FIN nor RST: the parent goes on over the same
connection and the bytes both ways hash equal).  ``subprocess.run`` works as before.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lab.helpers import lab_skip_reason

from .helpers import run_patched, run_python

pytestmark = [pytest.mark.lab, pytest.mark.skipif(lab_skip_reason() is not None, reason=str(lab_skip_reason()))]

# The kernel side: echo every byte back; at EOF, record what was received and how the stream ended.
ECHO = """
import hashlib, json, socket, sys
srv = socket.create_server(("0.0.0.0", 7000))
n = 0
while n == 0:  # the first connections may be --wait-port's probes, which send nothing
    conn, _ = srv.accept()
    h, end = hashlib.sha256(), "eof"
    try:
        while data := conn.recv(65536):
            h.update(data); n += len(data)
            conn.sendall(data)
    except ConnectionResetError:
        end = "reset"
    conn.close()
open(sys.argv[1], "w").write(json.dumps({"bytes": n, "sha256": h.hexdigest(), "end": end}))
"""

PROGRAM = """
import hashlib, json, multiprocessing, os, socket, subprocess, sys
peer = os.environ["PYTCP_GREEN_PEER_IP4"]
sock = socket.create_connection((peer, 7000), timeout=30)
sent, echoed = hashlib.sha256(), hashlib.sha256()
def exchange(part):
    sent.update(part)
    sock.sendall(part)
    got = 0
    while got < len(part):
        data = sock.recv(65536)
        echoed.update(data); got += len(data)
exchange(os.urandom(200_000))

def touch(conn=None):
    out = []
    for call in (lambda: sock.send(b"child"), lambda: sock.recv(1), lambda: socket.socket()):
        try:
            call(); out.append("no error")
        except OSError as e:
            out.append([e.errno, "spawn" in str(e)])
    sock.close()
    return out

res = {}
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.write(w, json.dumps(touch()).encode()); os._exit(0)
os.close(w)
res["fork"] = [json.loads(os.read(r, 4096)), os.waitpid(pid, 0)[1]]
os.close(r)
pid = os.fork()
if pid == 0:
    sock.close()
    sys.exit(3)  # the child's at-exit handlers run (the host's close must not)
res["exit_child"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])

def mp_child(queue):
    queue.put(touch())
ctx = multiprocessing.get_context("fork")
queue = ctx.Queue()
proc = ctx.Process(target=mp_child, args=(queue,))
proc.start()
res["multiprocessing"] = [queue.get(timeout=30), proc.join(30), proc.exitcode]
res["subprocess"] = subprocess.run([sys.executable, "-c", "print(6 * 7)"], capture_output=True, text=True).stdout
exchange(os.urandom(300_000))  # the same connection, after all the children closed their copies
sock.shutdown(socket.SHUT_WR)
res["eof"] = len(sock.recv(1))  # 0: the echo server closed after our FIN
res["sent"], res["echoed"] = sent.hexdigest(), echoed.hexdigest()
print(json.dumps(res))
"""


def test_a_forked_child_cannot_touch_the_parents_stack_sockets_nor_disturb_them(tmp_path: Path) -> None:
    (tmp_path / "echo.py").write_text(ECHO)
    (tmp_path / "prog.py").write_text(PROGRAM)
    peer_out = tmp_path / "peer.json"
    proc = run_python(["-m", "pytcp_green", "run", "--lab", "--peer", f"exec python3 {tmp_path / 'echo.py'} {peer_out}",
                       "--wait-port", "7000", str(tmp_path / "prog.py")], timeout=180)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    refused = [[9, True], [9, True], [100, True]]  # EBADF, EBADF, ENETDOWN; each message names 'spawn'
    assert out["fork"] == [refused, 0]
    assert out["exit_child"] == 3
    assert out["multiprocessing"] == [refused, None, 0]
    assert out["subprocess"] == "42\n"
    assert out["eof"] == 0
    assert out["sent"] == out["echoed"]
    peer = json.loads(peer_out.read_text())
    assert peer == {"bytes": 500_000, "sha256": out["sent"], "end": "eof"}


def test_fork_on_the_loopback_leaves_the_parent_working() -> None:
    """No lab needed: the child's refusals, and the parent's loopback connection afterwards."""
    out = run_patched("""
        import os, socket, hashlib
        srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen()
        cli = socket.create_connection(srv.getsockname()); conn, _ = srv.accept()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                conn.sendall(b"x")
            except OSError as e:
                code = 10 if e.errno == 9 and "spawn" in str(e) else 1
            conn.close(); cli.close(); srv.close()
            os._exit(code)
        status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        blob = os.urandom(100_000)
        cli.sendall(blob)
        got = bytearray()
        while len(got) < len(blob):
            got += conn.recv(65536)
        report([status, hashlib.sha256(got).hexdigest() == hashlib.sha256(blob).hexdigest()])
    """)
    assert out == [10, True]


def test_a_forked_child_does_not_answer_the_control_socket() -> None:
    """The child's copy of the control server stops: every `ctl ss` is the parent's, which alone has the
    listener opened after the fork."""
    out = run_patched("""
        import json, os, select, socket, gevent
        import pytcp_green
        path = pytcp_green.current_host().control.path
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(w)  # so that the parent's exit, whatever happens, ends the wait
            select.select([r], [], [])  # the child's hub runs while it waits
            os._exit(0)
        srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen()
        port = srv.getsockname()[1]
        seen = []
        for _ in range(20):
            with socket.socket(socket.AF_UNIX) as c:
                c.connect(path)
                c.sendall(json.dumps({"words": ["ss"]}).encode() + b"\\n")
                answer = json.loads(c.makefile("rb").readline())
            seen.append(any(row["local"] == f"*:{port}" for row in answer["ok"]))
        os.write(w, b"x")
        report([all(seen), os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])])
    """, patch="pytcp_green.patch_all(ctl='auto')")
    assert out == [True, 0]
