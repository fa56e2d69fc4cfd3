"""``socket.sendfile()`` and its private helpers on stack sockets; byte views released on errors."""

from __future__ import annotations

import hashlib

from .helpers import run_patched

BLOB = bytes(i * 13 % 256 for i in range(300_000))


def test_sendfile_helpers_send_the_files_bytes_and_move_its_position() -> None:
    out = run_patched(f"""
        import gevent, hashlib, io, os, socket, tempfile
        a, b = socket.socketpair(socket.AF_INET)
        b.settimeout(10)
        path = os.path.join(tempfile.mkdtemp(), "blob")
        with open(path, "wb") as f:
            f.write(bytes(i * 13 % 256 for i in range({len(BLOB)})))
        def reading(n):  # the peer reads while the file is sent (it exceeds the socket buffers)
            def read():
                got = bytearray()
                while len(got) < n:
                    got += b.recv(n - len(got))
                return hashlib.sha256(got).hexdigest()
            return gevent.spawn(read)
        def received(reader):
            return reader.get(timeout=10)
        res = {{}}
        with open(path, "rb") as f:
            reader = reading({len(BLOB)})
            res["sendfile"] = [a.sendfile(f), f.tell(), received(reader)]
        with open(path, "rb") as f:
            reader = reading(5000)
            res["descriptor"] = [a._sendfile_use_sendfile(f, 1000, 5000), f.tell(), received(reader)]
        with open(path, "rb") as f:
            reader = reading(200_000)
            res["send"] = [a._sendfile_use_send(f, 7, 200_000), f.tell(), received(reader)]
        # Not a regular file: the descriptor path gives up, sendfile() falls back to read()/send().
        try:
            a._sendfile_use_sendfile(io.BytesIO(b"xyz"))
        except socket._GiveupOnSendfile:
            res["giveup"] = True
        res["fallback"] = [a.sendfile(io.BytesIO(b"xyz")), b.recv(3).decode()]
        a.setblocking(False)
        with open(path, "rb") as f:
            try:
                a.sendfile(f)
            except ValueError as e:
                res["nonblocking"] = str(e)
        report(res)
    """)
    full = hashlib.sha256(BLOB).hexdigest()
    assert out == {"sendfile": [len(BLOB), len(BLOB), full],
                   "descriptor": [5000, 6000, hashlib.sha256(BLOB[1000:6000]).hexdigest()],
                   "send": [200_000, 200_007, hashlib.sha256(BLOB[7:200_007]).hexdigest()],
                   "giveup": True, "fallback": [3, "xyz"],
                   "nonblocking": "non-blocking sockets are not supported"}


def test_a_failed_send_leaves_the_callers_bytearray_resizable() -> None:
    # asyncio's transports clear their bytearray write buffer while handling a send() error.
    out = run_patched("""
        import socket
        a, b = socket.socketpair(socket.AF_INET)
        b.close()
        buf = bytearray(100_000)
        error = None
        while error is None:
            try:
                a.send(buf)
            except OSError as e:
                error = e
        buf.clear()
        report([error.errno, len(buf)])
    """)
    assert out == [32, 0]  # EPIPE, and the clear() worked
