"""TLS over stack sockets: ``SSLContext.wrap_socket`` drives OpenSSL through ``ssl.MemoryBIO``.

The stdlib's ``SSLSocket`` hands a kernel fd to OpenSSL, which a stack socket does not have.
Here OpenSSL only ever sees two memory buffers (an ``SSLObject`` from ``SSLContext.wrap_bio``):
whenever it wants input (``SSLWantReadError``) we move bytes from the stack socket into the
incoming BIO, and after every step we flush what it wrote to the outgoing BIO into the socket.
Input moves one TLS record at a time (its 5-byte header, then its body), as OpenSSL reads a
kernel socket: bytes of later records stay in the stack socket, so the socket polls readable
while they wait (select/asyncore loops depend on it) and bytes after close_notify are left
for the plain socket ``unwrap()`` returns.
Client and server side, handshake on connect/accept or on demand, ``unwrap()``, ``makefile()``,
timeouts (the socket's timeout covers each TLS call as a whole) and non-blocking mode
(``SSLWantReadError``/``SSLWantWriteError`` as the stdlib raises them) work as with kernel sockets.

Sockets of other families (kernel-backed) keep gevent's ``SSLSocket``.
"""

from __future__ import annotations

import contextlib
import errno
import ssl as _stdssl
import warnings
from typing import Any

from pytcp_green.green.sockets import GreenSocket
from pytcp_green.patches._common import SOCK_STREAM
from pytcp_green.patches._stack_backend import StackBackend
from pytcp_green.patches.socket import _GLOBAL_DEFAULT_TIMEOUT, create_connection, socket

# What this module replaces in ``ssl`` (see :func:`pytcp_green.patches._state.patch_module`); ssl imported
# create_connection from socket (gevent's, after its patching: a kernel socket), so it is replaced too.
__implements__ = ["SSLContext", "SSLSocket", "wrap_socket", "get_server_certificate", "create_connection"]

_BaseContext: Any = _stdssl.SSLContext  # gevent's SSLContext when gevent patched first
_READ_CHUNK = 65536
_TLS_HEADER = 5  # content type, version, length (RFC 8446 §5.1)


class SSLSocket(socket):
    """A TLS connection over a stack socket (same API as ``ssl.SSLSocket``)."""

    _sslobj: Any
    _context: Any
    _session: Any
    _incoming: Any
    _outgoing: Any
    _pending_out: bytes
    _record_head: bytes  # the part read so far of the next TLS record's 5-byte header
    _record_left: int  # bytes of the current TLS record's body not read yet
    _connected: bool
    server_side: bool
    server_hostname: str | None
    do_handshake_on_connect: bool
    suppress_ragged_eofs: bool

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError(f"{type(self).__name__} does not have a public constructor. "
                        f"Instances are returned by SSLContext.wrap_socket().")

    @classmethod
    def _create(cls, sock: socket, server_side: bool = False, do_handshake_on_connect: bool = True,
                suppress_ragged_eofs: bool = True, server_hostname: str | None = None,
                context: Any = None, session: Any = None) -> SSLSocket:
        if sock.getsockopt(_stdssl.SOL_SOCKET, _stdssl.SO_TYPE) != SOCK_STREAM:
            raise NotImplementedError("only stream sockets are supported")
        if server_side and server_hostname:
            raise ValueError("server_hostname can only be specified in client mode")
        if session is not None and server_side:
            raise ValueError("session can only be specified in client mode")
        if context.check_hostname and not server_hostname:
            raise ValueError("check_hostname requires server_hostname")
        self = cls.__new__(cls)
        timeout = sock.gettimeout()
        # Take the stack socket over as the stdlib does with detach(): the old object is closed.
        self._init(sock._hand_over())
        self._green().timeout = timeout
        self._context = context
        self.server_side = server_side
        self.server_hostname = context._encode_hostname(server_hostname) if server_hostname else None
        self.do_handshake_on_connect = do_handshake_on_connect
        self.suppress_ragged_eofs = suppress_ragged_eofs
        self._session = session
        self._incoming = _stdssl.MemoryBIO()
        self._outgoing = _stdssl.MemoryBIO()
        self._sslobj = None
        self._pending_out = b""
        self._record_head = b""
        self._record_left = 0
        try:
            self._impl.getpeername()
            connected = True
        except OSError as exc:
            if exc.errno != errno.ENOTCONN:
                raise
            connected = False
            self._refuse_data_before_handshake(exc.errno)
        self._connected = connected
        if connected:
            self._sslobj = self._new_sslobj(server_side, session)
            if do_handshake_on_connect:
                try:
                    if timeout == 0.0:
                        raise ValueError("do_handshake_on_connect should not be specified for non-blocking sockets")
                    self._do_handshake()
                except BaseException:
                    self.close()
                    raise
        return self

    def _refuse_data_before_handshake(self, code: int) -> None:
        """A socket that is not connected but still holds received bytes (the peer sent them, then reset
        the connection) is closed with an SSLError, as the stdlib's since 3.11.5 (gh-108310): those bytes
        never went through TLS and must not reach a caller who would take them for the peer's."""
        green = self._green()
        try:
            data = bytes(green.core.recv(1, green.runtime.now()))
        except OSError as exc:
            if exc.errno not in (errno.ENOTCONN, errno.EINVAL):
                raise
            return
        if not data:
            return
        reason = "Closed before TLS handshake with data in recv buffer."
        error = _stdssl.SSLError(code, reason)
        error.reason = reason  # the attributes _ssl.c sets on the errors it raises
        error.library = None  # type: ignore[assignment]  # typeshed has it as str; the stdlib sets None here
        with contextlib.suppress(OSError):
            self.close()
        raise error

    # -- the pump ------------------------------------------------------------------------------------
    def _new_sslobj(self, server_side: bool, session: Any) -> Any:
        sslobj = self._context.wrap_bio(self._incoming, self._outgoing, server_side=server_side,
                                        server_hostname=self.server_hostname, session=session)
        # OpenSSL's callbacks (sni_callback, _msg_callback) get the C object's owner: make that this
        # socket, as the stdlib's SSLSocket does, rather than the SSLObject.
        sslobj._sslobj.owner = self
        # The stdlib's SSLSocket._sslobj is that C object, which has the certificate chain getters
        # (3.10+) the SSLObject of 3.11 does not offer yet: code reaching for them finds them here too.
        for name in ("get_verified_chain", "get_unverified_chain"):
            if not hasattr(sslobj, name):
                setattr(sslobj, name, getattr(sslobj._sslobj, name))
        return sslobj

    def _green(self) -> GreenSocket:
        impl = self._impl
        assert isinstance(impl, StackBackend)  # _create() only wraps stack sockets
        return impl.green()

    def _sslsock(self) -> SSLSocket:
        """gevent's wrappers of those callbacks unwrap ``conn._sslsock()`` (a weakref call on its sockets)."""
        return self

    def _send_bytes(self, green: GreenSocket, data: bytes, deadline: float | None, nonblocking: bool) -> None:
        view = memoryview(data)
        sent = 0
        while sent < len(view):
            chunk = view[sent:]

            def send_rest(now: float, chunk: memoryview = chunk) -> int:
                return int(green.core.send(chunk, now))

            try:
                sent += green.call_until(send_rest, deadline, nonblocking=nonblocking)
            except BlockingIOError:
                # Keep the unsent TLS bytes for the next call, as a kernel socket buffer would.
                self._pending_out = bytes(view[sent:])
                raise _stdssl.SSLWantWriteError(_stdssl.SSL_ERROR_WANT_WRITE,
                                                "The operation did not complete (write)") from None

    def _flush(self, green: GreenSocket, deadline: float | None, nonblocking: bool) -> None:
        """Send what OpenSSL wrote (after any bytes a non-blocking call left behind)."""
        if self._pending_out:
            data, self._pending_out = self._pending_out, b""
            self._send_bytes(green, data, deadline, nonblocking)
        data = self._outgoing.read()
        if data:
            self._send_bytes(green, data, deadline, nonblocking)

    def _io(self, op: Any, *args: Any) -> Any:
        """Run one SSLObject operation to completion over the stack socket, within the timeout."""
        green = self._green()
        limit = green.timeout
        nonblocking = limit == 0
        deadline = None if limit is None else green.runtime.now() + limit
        self._flush(green, deadline, nonblocking)
        while True:
            try:
                result = op(*args)
            except _stdssl.SSLWantReadError:
                self._flush(green, deadline, nonblocking)
                self._fill(green, deadline, nonblocking)
                continue
            except _stdssl.SSLWantWriteError:
                self._flush(green, deadline, nonblocking)
                continue
            except _stdssl.SSLError:
                # An alert OpenSSL wrote before failing goes out first, as it would on a kernel socket.
                with contextlib.suppress(OSError):
                    self._flush(green, deadline, nonblocking)
                raise
            self._flush(green, deadline, nonblocking)
            return result

    def _fill(self, green: GreenSocket, deadline: float | None, nonblocking: bool) -> None:
        """Move the next piece of the current TLS record (header or body) into the incoming BIO."""
        want = min(self._record_left, _READ_CHUNK) if self._record_left else _TLS_HEADER - len(self._record_head)

        def recv_some(now: float) -> bytes:
            return bytes(green.core.recv(want, now))

        try:
            data = green.call_until(recv_some, deadline, nonblocking=nonblocking)
        except BlockingIOError:
            raise _stdssl.SSLWantReadError(_stdssl.SSL_ERROR_WANT_READ,
                                           "The operation did not complete (read)") from None
        if not data:
            self._incoming.write_eof()
            return
        if self._record_left:
            self._record_left -= len(data)
        else:
            self._record_head += data
            if len(self._record_head) == _TLS_HEADER:
                self._record_left = int.from_bytes(self._record_head[3:5], "big")
                self._record_head = b""
        self._incoming.write(data)

    # -- TLS API -------------------------------------------------------------------------------------
    @property
    def context(self) -> Any:
        return self._context

    @context.setter
    def context(self, ctx: Any) -> None:
        self._context = ctx
        if self._sslobj is not None:
            self._sslobj.context = ctx

    @property
    def session(self) -> Any:
        return self._sslobj.session if self._sslobj is not None else self._session

    @session.setter
    def session(self, session: Any) -> None:
        self._session = session
        if self._sslobj is not None:
            self._sslobj.session = session

    @property
    def session_reused(self) -> bool | None:
        return self._sslobj.session_reused if self._sslobj is not None else None

    def _check_connected(self) -> None:
        if not self._connected:
            # Like the stdlib: raises ENOTCONN if the socket is not connected.
            self._impl.getpeername()

    # The public TLS and socket methods go to private ones and never to each other through ``self`` (a
    # subclass may override any of them to call another); makefile() and sendfile() use the same hooks.
    def do_handshake(self, block: bool = False) -> None:
        self._do_handshake()

    def _do_handshake(self) -> None:
        self._check_connected()
        self._io(self._sslobj.do_handshake)

    def read(self, len: int = 1024, buffer: Any = None) -> Any:
        return self._read(len, buffer)

    def _read(self, len: int, buffer: Any) -> Any:
        if self._sslobj is None:
            raise ValueError("Read on closed or unwrapped SSL socket.")
        try:
            if buffer is not None:
                return self._io(self._sslobj.read, len, buffer)
            return self._io(self._sslobj.read, len)
        except _stdssl.SSLError as exc:
            if exc.args[0] == _stdssl.SSL_ERROR_EOF and self.suppress_ragged_eofs:
                return 0 if buffer is not None else b""
            raise

    def write(self, data: Any) -> int:
        return self._write(data)

    def _write(self, data: Any) -> int:
        if self._sslobj is None:
            raise ValueError("Write on closed or unwrapped SSL socket.")
        return int(self._io(self._sslobj.write, data))

    def pending(self) -> int:
        return int(self._sslobj.pending()) if self._sslobj is not None else 0

    def recv(self, buflen: int = 1024, flags: int = 0) -> bytes:
        return self._recv(buflen, flags)

    def _recv(self, buflen: int, flags: int) -> bytes:
        if self._sslobj is None:
            return super()._recv(buflen, flags)
        if flags:
            raise ValueError(f"non-zero flags not allowed in calls to recv() on {type(self)}")
        if buflen == 0:
            return b""
        data: bytes = self._read(buflen, None)
        return data

    def _recv_into(self, buffer: Any, nbytes: int, flags: int) -> int:
        if self._sslobj is None:
            return super()._recv_into(buffer, nbytes, flags)
        if flags:
            raise ValueError(f"non-zero flags not allowed in calls to recv_into() on {type(self)}")
        view = memoryview(buffer).cast("B")
        if nbytes <= 0 or nbytes > len(view):
            nbytes = len(view)
        if nbytes == 0:
            return 0
        return int(self._read(nbytes, view))

    def recvfrom(self, buflen: int = 1024, flags: int = 0) -> tuple[bytes, Any]:
        return self._recvfrom(buflen, flags)

    def _recvfrom(self, buflen: int, flags: int) -> tuple[bytes, Any]:
        if self._sslobj is not None:
            raise ValueError(f"recvfrom not allowed on instances of {type(self)}")
        return super()._recvfrom(buflen, flags)

    def _recvfrom_into(self, buffer: Any, nbytes: int, flags: int) -> tuple[int, Any]:
        if self._sslobj is not None:
            raise ValueError(f"recvfrom_into not allowed on instances of {type(self)}")
        return super()._recvfrom_into(buffer, nbytes, flags)

    def recvmsg(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"recvmsg not allowed on instances of {type(self)}")

    def recvmsg_into(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"recvmsg_into not allowed on instances of {type(self)}")

    def _send(self, data: Any, flags: int) -> int:
        if self._sslobj is None:
            return super()._send(data, flags)
        if flags:
            raise ValueError(f"non-zero flags not allowed in calls to send() on {type(self)}")
        return self._write(data)

    def _sendall(self, data: Any, flags: int) -> None:
        if self._sslobj is None:
            super()._sendall(data, flags)
            return
        if flags:
            raise ValueError(f"non-zero flags not allowed in calls to sendall() on {type(self)}")
        view = memoryview(data).cast("B")
        sent = 0
        while sent < len(view):
            sent += self._write(view[sent:])

    def _sendto(self, data: Any, *args: Any) -> int:
        if self._sslobj is not None:
            raise ValueError(f"sendto not allowed on instances of {type(self)}")
        return super()._sendto(data, *args)

    def sendmsg(self, *args: Any, **kwargs: Any) -> int:
        raise NotImplementedError(f"sendmsg not allowed on instances of {type(self)}")

    def getpeercert(self, binary_form: bool = False) -> Any:
        self._check_connected()
        if self._sslobj is None:
            return None
        return self._sslobj.getpeercert(binary_form)

    def get_channel_binding(self, cb_type: str = "tls-unique") -> Any:
        return self._sslobj.get_channel_binding(cb_type) if self._sslobj is not None else None

    def selected_npn_protocol(self) -> str | None:
        return None

    def selected_alpn_protocol(self) -> str | None:
        return self._sslobj.selected_alpn_protocol() if self._sslobj is not None else None

    def cipher(self) -> Any:
        return self._sslobj.cipher() if self._sslobj is not None else None

    def shared_ciphers(self) -> Any:
        return self._sslobj.shared_ciphers() if self._sslobj is not None else None

    def compression(self) -> Any:
        return self._sslobj.compression() if self._sslobj is not None else None

    def version(self) -> str | None:
        return self._sslobj.version() if self._sslobj is not None else None

    def verify_client_post_handshake(self) -> None:
        if self._sslobj is None:
            raise ValueError("No SSL wrapper around " + str(self))
        self._io(self._sslobj.verify_client_post_handshake)

    def unwrap(self) -> socket:
        """Send close_notify and wait for the peer's; from then on this socket carries plain bytes.

        Returns this same object, as the stdlib's does (its C ``shutdown()`` hands back the
        SSLSocket): a second ``unwrap()`` raises ValueError (ftplib's ``ccc()`` relies on it).
        """
        if self._sslobj is None:
            raise ValueError("No SSL wrapper around " + str(self))
        self._io(self._sslobj.unwrap)
        self._sslobj = None
        return self

    def shutdown(self, how: int) -> None:
        self._sslobj = None
        super().shutdown(how)

    def _real_close(self) -> None:
        self._sslobj = None
        super()._real_close()

    def dup(self) -> socket:
        raise NotImplementedError(f"Can't dup() {type(self).__name__} instances")

    def detach(self) -> int:
        self._sslobj = None
        return super().detach()

    # -- connection set-up ---------------------------------------------------------------------------
    def _real_connect(self, address: Any, connect_ex: bool) -> int:
        if self.server_side:
            raise ValueError("can't connect in server-side mode")
        if self._connected or self._sslobj is not None:
            raise ValueError("attempt to connect already-connected SSLSocket!")
        # As the stdlib's: the TLS object exists before connecting and survives a non-blocking
        # connect_ex() still in progress, so do_handshake() can follow once the socket is writable.
        self._sslobj = self._new_sslobj(False, self._session)
        try:
            rc = super().connect_ex(address) if connect_ex else (super().connect(address) or 0)
        except (OSError, ValueError):
            self._sslobj = None
            raise
        if rc:
            return rc
        self._connected = True
        if self.do_handshake_on_connect:
            self._do_handshake()
        return 0

    def connect(self, address: Any) -> None:
        self._real_connect(address, False)

    def connect_ex(self, address: Any) -> int:
        return self._real_connect(address, True)

    def accept(self) -> tuple[socket, Any]:
        conn, addr = super().accept()
        wrapped = self._context.wrap_socket(conn, do_handshake_on_connect=self.do_handshake_on_connect,
                                            suppress_ragged_eofs=self.suppress_ragged_eofs, server_side=True)
        return wrapped, addr


def _is_stack_socket(sock: Any) -> bool:
    """Our socket over a stack socket, or an object delegating to one (the stdlib's wrap_socket only
    reads attributes of what it is given, so a wrapper works there too)."""
    return isinstance(getattr(sock, "_impl", None), StackBackend)


class SSLContext(_BaseContext):  # type: ignore[misc]
    """``ssl.SSLContext`` whose ``wrap_socket`` handles stack sockets through memory BIOs."""

    if hasattr(_BaseContext, "_msg_callback"):
        # gevent's setter rebinds ssl.SSLContext to the stdlib's class while it runs and then to *gevent's*
        # class, which would undo our patching for the rest of the process: put back what was there.
        @property
        def _msg_callback(self) -> Any:
            return _BaseContext._msg_callback.__get__(self)

        @_msg_callback.setter
        def _msg_callback(self, value: Any) -> None:
            current = _stdssl.SSLContext
            try:
                _BaseContext._msg_callback.__set__(self, value)
            finally:
                _stdssl.SSLContext = current  # type: ignore[misc]

    def wrap_socket(self, sock: Any, server_side: bool = False, do_handshake_on_connect: bool = True,
                    suppress_ragged_eofs: bool = True, server_hostname: str | None = None,
                    session: Any = None) -> Any:
        if _is_stack_socket(sock):
            # A context's sslsocket_class may name a subclass of ours (ssl.SSLSocket is ours after patching).
            cls = getattr(self, "sslsocket_class", None)
            if not (isinstance(cls, type) and issubclass(cls, SSLSocket)):
                cls = SSLSocket
            return cls._create(sock, server_side=server_side, do_handshake_on_connect=do_handshake_on_connect,
                                     suppress_ragged_eofs=suppress_ragged_eofs, server_hostname=server_hostname,
                                     context=self, session=session)
        return super().wrap_socket(sock, server_side=server_side, do_handshake_on_connect=do_handshake_on_connect,
                                   suppress_ragged_eofs=suppress_ragged_eofs, server_hostname=server_hostname,
                                   session=session)


def wrap_socket(sock: Any, keyfile: str | None = None, certfile: str | None = None, server_side: bool = False,
                cert_reqs: Any = _stdssl.CERT_NONE, ssl_version: Any = _stdssl.PROTOCOL_TLS,
                ca_certs: str | None = None,
                do_handshake_on_connect: bool = True, suppress_ragged_eofs: bool = True,
                ciphers: str | None = None) -> Any:
    """The deprecated module-level ``ssl.wrap_socket``, building one of our contexts (gevent's would build
    its own SSLSocket, which needs a kernel fd)."""
    warnings.warn("ssl.wrap_socket() is deprecated, use SSLContext.wrap_socket()", DeprecationWarning, stacklevel=2)
    if server_side and not certfile:
        raise ValueError("certfile must be specified for server-side operations")
    if keyfile and not certfile:
        raise ValueError("certfile must be specified")
    context = SSLContext(ssl_version)
    context.verify_mode = cert_reqs
    if ca_certs:
        context.load_verify_locations(ca_certs)
    if certfile:
        context.load_cert_chain(certfile, keyfile)
    if ciphers:
        context.set_ciphers(ciphers)
    return context.wrap_socket(sock, server_side=server_side, do_handshake_on_connect=do_handshake_on_connect,
                               suppress_ragged_eofs=suppress_ragged_eofs)


def get_server_certificate(addr: tuple[str, int], ssl_version: Any = _stdssl.PROTOCOL_TLS_CLIENT,
                           ca_certs: str | None = None, timeout: Any = _GLOBAL_DEFAULT_TIMEOUT) -> str:
    """``ssl.get_server_certificate`` over a stack connection (3.10's ``timeout`` included)."""
    context = SSLContext(ssl_version)
    context.check_hostname = False
    if ca_certs is not None:
        context.verify_mode = _stdssl.CERT_REQUIRED
        context.load_verify_locations(ca_certs)
    else:
        context.verify_mode = _stdssl.CERT_NONE
    with create_connection(addr, timeout=timeout) as sock, \
            context.wrap_socket(sock, server_hostname=addr[0]) as sslsock:
        der = sslsock.getpeercert(True)
    return str(_stdssl.DER_cert_to_PEM_cert(der))
