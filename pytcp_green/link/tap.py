"""Linux TAP and TUN devices (``/dev/net/tun``): the stack's link to a real kernel.

:func:`open_tap` attaches to (or creates) a TAP interface, whose frames are Ethernet II
(:attr:`LinkKind.ETHERNET`), or a TUN interface, whose frames are bare IPv4/IPv6 packets
(:attr:`LinkKind.IP`).  The returned :class:`TapDevice` fulfils the
:class:`~pytcp_green.link.device.Device` contract.

How it is opened (see ``Documentation/networking/tuntap.rst`` in the kernel):

* ``/dev/net/tun`` is opened non-blocking and close-on-exec, then ``TUNSETIFF`` names the
  interface and sets ``IFF_TAP`` or ``IFF_TUN`` with ``IFF_NO_PI`` (no 4-byte packet-info prefix).
  A device that does not exist yet is created and lives exactly as long as this fd stays open.
* The interface MTU is set here with ``SIOCSIFMTU`` (only when it differs, so an unprivileged
  user can still attach to a persistent TAP created for them at the right MTU).  The lab does
  not set it again: it moves the device to its namespace and the MTU moves with it.
* With ``vnet_hdr=True`` the device is opened with ``IFF_VNET_HDR`` and ``TUNSETOFFLOAD``
  enables ``offload`` (by default CSUM|TSO4|TSO6, as DESIGN.md measured).  Every frame then
  travels behind a 10-byte virtio-net header ``<BBHHHH`` (flags, gso_type, hdr_len, gso_size,
  csum_start, csum_offset).  Until the stack learns to use offloads (a later issue) this module
  hides the header: :meth:`TapDevice.read_batch` strips it and, when the kernel left a checksum
  for us to finish (``NEEDS_CSUM``) in a UDP or other datagram, finishes it; a TCP segment with
  ``NEEDS_CSUM`` (the kernel's own, its field holding the pseudo-header sum) or any frame flagged
  ``DATA_VALID`` is handed up as a :class:`~pytcp_green.stack.interface.TrustedFrame`, whose
  checksum TCP does not verify, as a NIC's CHECKSUM_UNNECESSARY; everything else (frames a raw
  socket sent, say) carries its checksum as sent and is checked.  :meth:`TapDevice.write` prepends
  an all-zero header ("no offload, checksums complete").  With TSO enabled the kernel may hand over
  TCP super-frames larger than the MTU (up to ~64 KB, counted in :attr:`TapDevice.gso_frames`):
  the stack takes them whole, one segment each.  With TSO4 and TSO6 both on, the device promises
  :attr:`TapDevice.tso_max`: :meth:`TapDevice.write` hands a
  :class:`~pytcp_green.stack.interface.GsoFrame` to the kernel with a GSO header, and the kernel
  cuts it into wire segments and completes their checksums.
  Pass ``offload=0`` to keep the header but receive only MTU-sized frames.

Reading follows DESIGN.md's measured fast path: ``FileIO.readinto`` into one preallocated buffer
until the fd says EAGAIN, never blocking; the runtime waits on :meth:`TapDevice.fileno` only
when a batch comes back empty.

Not thread-safe: the runtime touches devices only from the hub's thread.
"""

from __future__ import annotations

import errno
import fcntl
import io
import logging
import os
import socket
import struct

from pytcp_green.link.device import Frame
from pytcp_green.stack.interface import GsoFrame, LinkKind, TrustedFrame
from pytcp_green.stack.wire.checksum import ones_sum

log = logging.getLogger(__name__)

TUN_PATH = "/dev/net/tun"  # module attribute so tests can point it elsewhere

# From <linux/if_tun.h> and <linux/sockios.h>.
TUNSETIFF = 0x400454CA
TUNSETOFFLOAD = 0x400454D0
IFF_TUN = 0x0001
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
TUN_F_CSUM = 0x01
TUN_F_TSO4 = 0x02
TUN_F_TSO6 = 0x04
OFFLOAD_DEFAULT = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6
SIOCGIFMTU = 0x8921
SIOCSIFMTU = 0x8922

IFNAMSIZ = 16  # including the terminating NUL, so names have at most 15 characters
_IFREQ_SIZE = 40  # sizeof(struct ifreq) on 64-bit Linux
_IFREQ_FLAGS = struct.Struct(f"{IFNAMSIZ}sH")
_IFREQ_INT = struct.Struct(f"{IFNAMSIZ}si")

# virtio-net header (legacy layout, host byte order: little-endian on every Linux we target).
VNET_HDR_LEN = 10
VNET_HDR = struct.Struct("<BBHHHH")
VIRTIO_NET_HDR_F_NEEDS_CSUM = 0x01
VIRTIO_NET_HDR_F_DATA_VALID = 0x02
VIRTIO_NET_HDR_GSO_NONE = 0x00
VIRTIO_NET_HDR_GSO_TCPV4 = 0x01
VIRTIO_NET_HDR_GSO_TCPV6 = 0x04
# The largest IP packet of a super-segment handed to the kernel: IPv4's total-length limit (the
# kernel's default gso_max_size is 64 KB).
TSO_MAX = 65535
_VNET_ZERO = bytes(VNET_HDR_LEN)
_CSUM_FIELD = struct.Struct("!H")
_TCP_CSUM_OFFSET = 16  # where TCP's checksum sits in its header (UDP's is at 6)

# Large enough for any frame the kernel can produce: a 64 KB GSO super-frame plus the virtio
# header, an Ethernet header and a VLAN tag.  A read into a smaller buffer would silently
# truncate the frame, and the MTU can be raised from outside at any time.
_READ_BUFFER_SIZE = VNET_HDR_LEN + 14 + 4 + 65535 + 64

# Write errors that mean "this frame was not sent", not "the device is gone": the link is down
# (EIO), the frame was malformed or too big for the kernel (EINVAL, EMSGSIZE), or memory ran
# short (EAGAIN, ENOBUFS, ENOMEM).  They are dropped and counted, as a NIC would.
_WRITE_DROP_ERRNOS = frozenset({errno.EIO, errno.EINVAL, errno.EMSGSIZE, errno.EAGAIN, errno.ENOBUFS, errno.ENOMEM})


def random_mac() -> bytes:
    """A random unicast, locally administered MAC (first octet ``xxxxxx10``)."""
    raw = bytearray(os.urandom(6))
    raw[0] = (raw[0] & 0xFC) | 0x02  # clear the multicast bit, set the locally-administered bit
    return bytes(raw)


def _ifreq_flags(name: str, flags: int) -> bytearray:
    buf = bytearray(_IFREQ_SIZE)
    _IFREQ_FLAGS.pack_into(buf, 0, name.encode(), flags)
    return buf


def _ifreq_name(buf: bytes | bytearray) -> str:
    return bytes(buf[:IFNAMSIZ]).split(b"\0", 1)[0].decode()


def _errno_of(exc: OSError) -> int:
    return exc.errno if exc.errno is not None else errno.EIO


def _set_mtu(name: str, mtu: int) -> None:
    """Set the interface MTU with SIOCSIFMTU unless it already has that MTU."""
    # Any AF_INET socket reaches the device ioctls; it lives in this process's namespace, which
    # is where the device was just created.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        req = bytearray(_IFREQ_SIZE)
        _IFREQ_INT.pack_into(req, 0, name.encode(), 0)
        fcntl.ioctl(sock, SIOCGIFMTU, req)
        if _IFREQ_INT.unpack_from(req)[1] == mtu:
            return
        _IFREQ_INT.pack_into(req, 0, name.encode(), mtu)
        fcntl.ioctl(sock, SIOCSIFMTU, req)


class TapDevice:
    """An open TAP or TUN interface; a :class:`~pytcp_green.link.device.Device`.

    Made by :func:`open_tap`.  ``mac`` is the *stack's* address on the link, a random locally
    administered one: the kernel's end of a TAP has its own MAC, and the two must differ.
    """

    def __init__(
        self,
        fd: int,
        name: str,
        *,
        kind: LinkKind,
        mtu: int,
        mac: bytes | None,
        vnet_hdr: bool,
        offload: int,
    ) -> None:
        self.name = name
        self.kind = kind
        self.mtu = mtu
        self.mac = mac
        self.vnet_hdr = vnet_hdr
        self.offload = offload  # TUN_F_* bits enabled with TUNSETOFFLOAD (0 without vnet_hdr)
        # What the device contract (link/device.py) promises the stack: with TSO enabled the kernel
        # takes super-segments and segments them (and completes their checksums) itself.
        self.tso_max = TSO_MAX if offload & (TUN_F_TSO4 | TUN_F_TSO6) == TUN_F_TSO4 | TUN_F_TSO6 else 0
        # The kernel completes a partial checksum only of a frame written with NEEDS_CSUM, which write()
        # sets for super-segments alone: every other frame must leave with whole checksums.
        self.csum_offload = False
        self.gso_sent = 0  # super-segments written (each leaves as several wire segments)
        self.dropped = 0  # frames whose write failed without the device being broken
        self.gso_frames = 0  # received super-frames (vnet_hdr with TSO): larger than the MTU
        self.csum_finished = 0  # received non-TCP frames whose partial checksum (NEEDS_CSUM) we completed
        self.csum_trusted = 0  # received frames handed up as TrustedFrame (TCP NEEDS_CSUM, DATA_VALID)
        self._fd = fd
        # FileIO.readinto returns None on EAGAIN instead of raising, which keeps the drain loop
        # free of exception handling (and recv_into does not work: a TAP fd is not a socket).
        self._file = io.FileIO(fd, "r+b", closefd=True)
        self._buf = bytearray(_READ_BUFFER_SIZE)
        self._view = memoryview(self._buf)

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def fileno(self) -> int:
        if self._fd < 0:
            raise OSError(errno.EBADF, f"{self.name}: device is closed")
        return self._fd

    def read_batch(self, limit: int = 256) -> list[bytes]:
        if self._fd < 0:
            raise OSError(errno.EBADF, f"{self.name}: device is closed")
        if self.vnet_hdr:
            return self._read_batch_vnet(limit)
        readinto = self._file.readinto
        buf = self._buf
        view = self._view
        frames: list[bytes] = []
        append = frames.append
        try:
            for _ in range(limit):
                n = readinto(buf)
                if not n:  # None: EAGAIN, nothing more waiting
                    break
                append(view[:n].tobytes())  # measured fastest way to a right-sized bytes copy
        except OSError as exc:
            # EBADFD: the interface is gone (its namespace was deleted), the fd is useless now.
            raise OSError(_errno_of(exc), f"{self.name}: read failed: {exc.strerror}") from exc
        return frames

    def _read_batch_vnet(self, limit: int) -> list[bytes]:
        readinto = self._file.readinto
        buf = self._buf
        view = self._view
        frames: list[bytes] = []
        try:
            for _ in range(limit):
                n = readinto(buf)
                if not n:
                    break
                if n <= VNET_HDR_LEN:
                    continue  # a header with no frame behind it: nothing to hand up
                flags, gso_type, _hdr_len, _gso_size, csum_start, csum_offset = VNET_HDR.unpack_from(buf)
                if gso_type != VIRTIO_NET_HDR_GSO_NONE:
                    self.gso_frames += 1
                if flags & VIRTIO_NET_HDR_F_NEEDS_CSUM:
                    if csum_offset == _TCP_CSUM_OFFSET:
                        # The kernel's own segment: TCP takes it on trust, nobody sums 64 KB twice.
                        frames.append(TrustedFrame(view[VNET_HDR_LEN:n]))
                        self.csum_trusted += 1
                        continue
                    if self._finish_checksum(n, csum_start, csum_offset):
                        self.csum_finished += 1
                elif flags & VIRTIO_NET_HDR_F_DATA_VALID:
                    frames.append(TrustedFrame(view[VNET_HDR_LEN:n]))
                    self.csum_trusted += 1
                    continue
                frames.append(view[VNET_HDR_LEN:n].tobytes())
        except OSError as exc:
            raise OSError(_errno_of(exc), f"{self.name}: read failed: {exc.strerror}") from exc
        return frames

    def _finish_checksum(self, n: int, csum_start: int, csum_offset: int) -> bool:
        """Complete a checksum the kernel left partial (CHECKSUM_PARTIAL on its side).

        The field at csum_start + csum_offset holds only the folded pseudo-header sum; the
        one's-complement sum from csum_start to the end of the packet, field included, is the
        value to complement and store.  Offsets count from the frame, after the virtio header.
        """
        start = VNET_HDR_LEN + csum_start
        field = start + csum_offset
        if field + 2 > n:
            return False  # inconsistent header: leave the frame alone, the stack's checks drop it
        value = ~ones_sum(self._view[start:n]) & 0xFFFF
        # 0xFFFF and 0 are the same one's-complement number, but for UDP 0 means "no checksum".
        _CSUM_FIELD.pack_into(self._buf, field, value or 0xFFFF)
        return True

    def write(self, frame: Frame) -> None:
        fd = self._fd
        if fd < 0:
            raise OSError(errno.EBADF, f"{self.name}: device is closed")
        try:
            if type(frame) is GsoFrame:
                # A super-segment: the kernel cuts it at gso_size and finishes each checksum from
                # the pseudo-header sum in the field (csum_start/csum_offset), as for a virtio guest.
                v6 = frame[frame.l3] >> 4 == 6
                hdr_len = frame.l4 + (frame[frame.l4 + 12] >> 4) * 4
                header = VNET_HDR.pack(VIRTIO_NET_HDR_F_NEEDS_CSUM,
                                       VIRTIO_NET_HDR_GSO_TCPV6 if v6 else VIRTIO_NET_HDR_GSO_TCPV4,
                                       hdr_len, frame.gso_size, frame.l4, _TCP_CSUM_OFFSET)
                os.writev(fd, (header, frame))
                self.gso_sent += 1
            elif self.vnet_hdr:
                # A gather write sends header and frame in one packet without concatenating them;
                # the all-zero header says "no offload requested, checksums are complete".
                os.writev(fd, (_VNET_ZERO, frame))
            else:
                os.write(fd, frame)
        except OSError as exc:
            if exc.errno in _WRITE_DROP_ERRNOS:
                self.dropped += 1
                return
            raise OSError(_errno_of(exc), f"{self.name}: write failed: {exc.strerror}") from exc

    def close(self) -> None:
        if self._fd >= 0:
            self._fd = -1
            # Closing the last fd of a non-persistent device removes the interface, wherever
            # (in whichever namespace) it is by now.
            self._file.close()

    def __enter__(self) -> TapDevice:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        mac = self.mac.hex(":") if self.mac is not None else "-"
        state = "closed" if self._fd < 0 else f"fd={self._fd}"
        vnet = f" vnet_hdr offload={self.offload:#x}" if self.vnet_hdr else ""
        return f"<TapDevice {self.name} {self.kind.value} mtu={self.mtu} mac={mac} {state}{vnet}>"


def open_tap(
    name: str,
    *,
    tun: bool = False,
    vnet_hdr: bool = False,
    mtu: int = 1500,
    offload: int | None = None,
    mac: bytes | None = None,
) -> TapDevice:
    """Open the TAP (or, with ``tun=True``, TUN) interface ``name``, creating it if needed.

    ``name`` may contain ``%d`` to let the kernel pick a free number; :attr:`TapDevice.name` is
    the name the kernel actually used.  ``offload`` (TUN_F_* bits, default
    :data:`OFFLOAD_DEFAULT`) applies only with ``vnet_hdr``.  ``mac`` is the stack's own MAC on a
    TAP (default: random, locally administered); a TUN has none.

    Raises :class:`OSError` with the kernel's errno and a message naming the device: ENOENT
    without ``/dev/net/tun``, EACCES/EPERM without root or CAP_NET_ADMIN, EBUSY when another
    process already holds the device, EINVAL when ``name`` is an interface that is not a
    TUN/TAP of the requested type.
    """
    if not name or len(name) >= IFNAMSIZ or "/" in name or any(c.isspace() for c in name):
        raise ValueError(f"bad interface name {name!r}: 1 to {IFNAMSIZ - 1} characters, no '/' or spaces")
    if not 68 <= mtu <= 65535:
        raise ValueError(f"{name}: MTU {mtu} out of range 68..65535")
    if tun and mac is not None:
        raise ValueError(f"{name}: a TUN device carries bare IP packets and has no MAC")
    if mac is not None and (len(mac) != 6 or mac[0] & 0x01):
        raise ValueError(f"{name}: the stack's MAC must be 6 bytes and unicast, got {mac.hex(':')}")
    what = "TUN" if tun else "TAP"
    offload_bits = (OFFLOAD_DEFAULT if offload is None else offload) if vnet_hdr else 0

    try:
        fd = os.open(TUN_PATH, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        hint = {
            errno.ENOENT: " (is the tun module loaded? in a container, pass the device in)",
            errno.EACCES: " (needs root, or read/write access to it)",
            errno.EPERM: " (needs root, or read/write access to it)",
        }.get(_errno_of(exc), "")
        raise OSError(_errno_of(exc), f"{what} {name}: cannot open {TUN_PATH}: {exc.strerror}{hint}") from exc

    step = "TUNSETIFF"
    try:
        flags = (IFF_TUN if tun else IFF_TAP) | IFF_NO_PI | (IFF_VNET_HDR if vnet_hdr else 0)
        req = _ifreq_flags(name, flags)
        fcntl.ioctl(fd, TUNSETIFF, req)
        actual = _ifreq_name(req)
        if vnet_hdr:
            step = "TUNSETOFFLOAD"
            fcntl.ioctl(fd, TUNSETOFFLOAD, offload_bits)
        step = f"SIOCSIFMTU {mtu}"
        _set_mtu(actual, mtu)
    except OSError as exc:
        os.close(fd)
        hint = {
            errno.EPERM: " (needs root or CAP_NET_ADMIN)",
            errno.EBUSY: " (another process holds it)",
            errno.EINVAL: " (an interface of another type has that name?)",
        }.get(_errno_of(exc), "")
        raise OSError(_errno_of(exc), f"{what} {name}: {step} failed: {exc.strerror}{hint}") from exc

    return TapDevice(
        fd,
        actual,
        kind=LinkKind.IP if tun else LinkKind.ETHERNET,
        mtu=mtu,
        mac=None if tun else (mac if mac is not None else random_mac()),
        vnet_hdr=vnet_hdr,
        offload=offload_bits,
    )


def open_offloaded(name: str, *, tun: bool = False, mtu: int = 1500, offload: bool = True) -> TapDevice:
    """:func:`open_tap` with the virtio-net header and :data:`OFFLOAD_DEFAULT` when ``offload``, else
    without; a kernel that refuses TUNSETOFFLOAD gets the plain device, which works as before."""
    if offload:
        try:
            return open_tap(name, tun=tun, mtu=mtu, vnet_hdr=True)
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.EOPNOTSUPP):
                raise
            log.info("%s: the kernel refused offloads (%s); opening it without", name, exc.strerror)
    return open_tap(name, tun=tun, mtu=mtu)
