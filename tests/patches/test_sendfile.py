"""``socket.sendfile()`` and its private helpers on stack sockets; byte views released on errors."""

from __future__ import annotations

import hashlib
import textwrap

from .helpers import run_patched

BLOB = bytes(i * 13 % 256 for i in range(300_000))
# Both ends of a stack TCP connection, and BLOB in a file at ``path``.
SETUP = f"""
import asyncio, errno, gevent, hashlib, io, os, socket, tempfile
a, b = socket.socketpair(socket.AF_INET)
b.settimeout(10)
path = os.path.join(tempfile.mkdtemp(), "blob")
with open(path, "wb") as f:
    f.write(bytes(i * 13 % 256 for i in range({len(BLOB)})))
"""


def test_sendfile_helpers_send_the_files_bytes_and_move_its_position() -> None:
    out = run_patched(SETUP + textwrap.dedent(f"""
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
    """))
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


def test_os_sendfile_into_a_stack_socket_sends_as_sendfile2_does() -> None:
    """os.sendfile() with a stack socket's descriptor (asyncio's native loop.sendfile path): the bytes go
    through the stack; an offset leaves the file position alone, None moves it; a non-blocking socket
    sends what its buffer takes, then EAGAIN."""
    out = run_patched(SETUP + textwrap.dedent(f"""
        def drain(n):
            got = bytearray()
            while len(got) < n:
                got += b.recv(n - len(got))
            return hashlib.sha256(got).hexdigest()
        res = {{}}
        fd = os.open(path, os.O_RDONLY)
        res["offset"] = [os.sendfile(a.fileno(), fd, 1000, 5000), os.lseek(fd, 0, os.SEEK_CUR), drain(5000)]
        os.lseek(fd, 10, os.SEEK_SET)
        res["position"] = [os.sendfile(a.fileno(), fd, None, 300), os.lseek(fd, 0, os.SEEK_CUR), drain(300)]
        a.setblocking(False)
        sent = 0
        try:
            while True:  # nobody reads: the send buffer fills
                sent += os.sendfile(a.fileno(), fd, sent % {len(BLOB)}, 65536)
        except BlockingIOError as e:
            res["full"] = [sent > 0, e.errno == errno.EAGAIN, drain(sent) is not None]
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        res["dgram"] = attempt(lambda: os.sendfile(u.fileno(), fd, 0, 10))
        os.close(fd)
        a.close(); b.close(); u.close()

        async def main():
            received = bytearray()
            done = asyncio.get_running_loop().create_future()
            async def serve(reader, writer):
                while chunk := await reader.read(65536):
                    received.extend(chunk)
                done.set_result(None)
            server = await asyncio.start_server(serve, "127.0.0.1", 0)
            reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname())
            with open(path, "rb") as f:
                task = asyncio.ensure_future(asyncio.get_running_loop().sendfile(writer.transport, f))
                await asyncio.sleep(0)
                try:
                    writer.write(b"x")
                except RuntimeError as e:
                    res["bare_write"] = str(e)
                res["asyncio"] = await task
            writer.close()
            await done
            res["asyncio_sha"] = hashlib.sha256(received).hexdigest()
            server.close()
        asyncio.run(main())
        report(res)
    """))
    assert out == {"offset": [5000, 0, hashlib.sha256(BLOB[1000:6000]).hexdigest()],
                   "position": [300, 310, hashlib.sha256(BLOB[10:310]).hexdigest()],
                   "full": [True, True, True], "dgram": "errno 22",
                   "bare_write": "unable to write; sendfile is in progress",
                   "asyncio": len(BLOB), "asyncio_sha": hashlib.sha256(BLOB).hexdigest()}
