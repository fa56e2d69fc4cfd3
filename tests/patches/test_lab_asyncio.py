"""asyncio under ``pytcp-green run --lab`` against kernel peers (issue 14): an unmodified asyncio program's
streams, TLS, ``loop.sock_*``, ``loop.sendfile``, datagram endpoint and ``start_server`` run over the
stack, and every byte that crosses is hashed on the far side.

The peer (kernel sockets, in the lab namespace) serves TCP echo on 7000, TLS echo on 7443, UDP echo on
7001, and a control port 7003: ``sink`` reads to EOF and answers the SHA-256 of what came; ``call HOST
PORT`` connects to the stack's server, sends 100 KB, half-closes, and answers the SHA-256 of the echo.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from lab.helpers import lab_skip_reason

from .helpers import run_python

pytestmark = [pytest.mark.lab, pytest.mark.skipif(lab_skip_reason() is not None, reason=str(lab_skip_reason())),
              pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command for a test cert")]

PEER = r"""
import hashlib, socket, ssl, sys, threading
crt, key = sys.argv[1], sys.argv[2]
tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
tls.load_cert_chain(crt, key)
PATTERN = bytes(range(256)) * 400

def echo(conn):
    with conn:
        while data := conn.recv(65536):
            conn.sendall(data)
        if isinstance(conn, ssl.SSLSocket):
            conn.unwrap()  # answer the client's close_notify

def control(conn):
    with conn, conn.makefile("rwb") as f:
        words = f.readline().split()
        if words[0] == b"sink":
            digest = hashlib.sha256()
            while data := f.read1(65536):  # through the same buffer as the command line
                digest.update(data)
        else:
            out = socket.create_connection((words[1].decode(), int(words[2])), timeout=30)
            out.sendall(PATTERN)
            out.shutdown(socket.SHUT_WR)
            digest = hashlib.sha256()
            while data := out.recv(65536):
                digest.update(data)
            out.close()
        f.write(digest.hexdigest().encode() + b"\n")

def serve(port, handler, wrap=False):
    server = socket.create_server(("0.0.0.0", port))
    while True:
        conn, _ = server.accept()
        def run(conn=conn):
            handler(tls.wrap_socket(conn, server_side=True) if wrap else conn)
        threading.Thread(target=run, daemon=True).start()

udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("0.0.0.0", 7001))
def udp_echo():
    while True:
        data, addr = udp.recvfrom(2048)
        udp.sendto(data, addr)
threading.Thread(target=udp_echo, daemon=True).start()
threading.Thread(target=serve, args=(7000, echo), daemon=True).start()
threading.Thread(target=serve, args=(7443, echo, True), daemon=True).start()
serve(7003, control)
"""

PROGRAM = r"""
import asyncio, hashlib, json, os, socket, ssl, sys, tempfile
peer, me, crt = os.environ["PYTCP_GREEN_PEER_IP4"], os.environ["PYTCP_GREEN_STACK_IP4"], sys.argv[1]
blob = os.urandom(300_000)
PATTERN = bytes(range(256)) * 400
sha = lambda data: hashlib.sha256(data).hexdigest()

async def echo_stream(reader, writer, data):
    writer.write(data)
    await writer.drain()
    writer.write_eof()
    got = await reader.read()
    writer.close()
    await writer.wait_closed()
    return sha(got)

async def main():
    out = {"kind": type(socket.socket()).__module__, "blob": sha(blob), "file": sha(blob * 4)}
    out["streams"] = await echo_stream(*await asyncio.open_connection(peer, 7000), blob)
    ctx = ssl.create_default_context(cafile=crt)
    reader, writer = await asyncio.open_connection(peer, 7443, ssl=ctx, server_hostname="localhost")
    writer.write(blob)
    await writer.drain()
    got = await reader.readexactly(len(blob))
    out["tls"] = sha(got)
    out["tls_version"] = writer.get_extra_info("ssl_object").version()
    writer.close()
    await writer.wait_closed()  # the TLS shutdown, answered by the peer's unwrap()

    loop = asyncio.get_running_loop()
    s = socket.socket()
    s.setblocking(False)
    await loop.sock_connect(s, (peer, 7000))
    await loop.sock_sendall(s, blob)
    s.shutdown(socket.SHUT_WR)
    got = bytearray()
    while data := await loop.sock_recv(s, 65536):
        got += data
    s.close()
    out["sock_api"] = sha(got)

    with tempfile.TemporaryFile() as f:
        f.write(blob * 4)
        f.flush()
        f.seek(0)
        reader, writer = await asyncio.open_connection(peer, 7003)
        writer.write(b"sink\n")
        out["sendfile_sent"] = await loop.sendfile(writer.transport, f)
        writer.write_eof()
        out["sendfile"] = (await reader.readline()).decode().strip()
        writer.close()
        await writer.wait_closed()

    class Echoes(asyncio.DatagramProtocol):
        def __init__(self):
            self.got, self.done = [], loop.create_future()
        def datagram_received(self, data, addr):
            self.got.append(data)
            if len(self.got) == 5:
                self.done.set_result(addr)
    transport, proto = await loop.create_datagram_endpoint(Echoes, remote_addr=(peer, 7001))
    for n in range(5):
        transport.sendto(b"datagram %d" % n)
    out["udp_from"] = list(await asyncio.wait_for(proto.done, 30))
    out["udp"] = sorted(d.decode() for d in proto.got)
    transport.close()

    async def handle(reader, writer):
        writer.write(await reader.read())
        await writer.drain()
        writer.close()
    server = await asyncio.start_server(handle, "0.0.0.0", 9000)
    reader, writer = await asyncio.open_connection(peer, 7003)
    writer.write(f"call {me} 9000\n".encode())
    out["server"] = (await reader.readline()).decode().strip()
    writer.close()
    server.close()
    await server.wait_closed()
    return out

print(json.dumps(asyncio.run(asyncio.wait_for(main(), 120))))
"""


@pytest.fixture
def cert(tmp_path: Path) -> str:
    key, crt = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(crt),
                    "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
                   check=True, capture_output=True)
    return str(crt)


def test_asyncio_program_over_the_stack_against_kernel_peers(tmp_path: Path, cert: str) -> None:
    (tmp_path / "peer.py").write_text(PEER)
    (tmp_path / "program.py").write_text(PROGRAM)
    peer = f"exec python3 {tmp_path / 'peer.py'} {cert} {tmp_path / 'key.pem'}"
    proc = run_python(["-m", "pytcp_green", "run", "--lab", "--peer", peer, "--wait-port", "7003",
                       str(tmp_path / "program.py"), cert], timeout=180)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["streams"] == out["tls"] == out["sock_api"] == out["blob"]  # 300 KB back intact on each path
    assert out["kind"] == "pytcp_green.patches.socket"
    assert out["tls_version"].startswith("TLSv1.")
    assert out["sendfile_sent"] == 1_200_000 and out["sendfile"] == out["file"]
    assert out["udp_from"] == ["198.18.0.1", 7001]
    assert out["udp"] == [f"datagram {n}" for n in range(5)]
    assert out["server"] == hashlib.sha256(bytes(range(256)) * 400).hexdigest()
