"""Packet codecs, one module per protocol.

Conventions every codec follows:

* Parsing is a view over the received buffer: ``Xxx.parse(buf: memoryview) -> Xxx`` reads the
  fixed header with one precompiled ``struct.Struct`` and keeps memoryview slices for options
  and payload (no copy). Validation happens once, in ``parse``; on failure it raises
  :class:`Malformed` with a short snake_case reason that becomes a drop counter name.
* Building writes into a preallocated ``bytearray``: ``write_xxx(buf, offset, ...)`` packs the
  header at ``offset``; the caller allocated room for every layer plus payload at once.
* Checksums live in :mod:`pytcp_green.stack.wire.checksum` and nowhere else.
"""


class Malformed(Exception):
    """A packet failed validation; ``reason`` names the drop counter (e.g. ``bad_checksum``)."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
