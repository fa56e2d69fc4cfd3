"""Send and receive buffers of one connection (RFC 9293 §3.8.6 windows; RFC 2018 §4 SACK block choice).

The send buffer keeps bytes in a ``bytearray`` indexed by unwrapped sequence numbers (see :mod:`.seq`).
Dropping acknowledged bytes from the front is ``del buf[:n]``, which CPython does in amortised O(1) by
moving the start pointer, so it never shifts the whole buffer per segment.

In-order received bytes are kept as they arrived, as views of the frames that carried them (frames
are immutable ``bytes``), so a byte is copied once on its way to the application: when it reads.
Small payloads are copied into a shared tail instead, as Linux collapses small skbs: a view per
tiny segment would cost more than its bytes, and a peer could pin a frame per byte.

Out-of-order data is kept as a sorted list of disjoint, non-adjacent blocks.  A segment that extends a
block at its right end (what follows a single loss: every later segment lands there) is appended in
place; only segments that bridge or overlap blocks trigger a merge.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque

from pytcp_green.stack.wire.checksum import Buffer


class SendBuffer:
    """Bytes the application handed to send() that are not yet acknowledged; ``head`` is the sequence
    number of ``data[0]`` (SND.UNA once the SYN is acknowledged)."""

    __slots__ = ("data", "head")

    def __init__(self, head: int) -> None:
        self.head = head
        self.data = bytearray()

    @property
    def end(self) -> int:
        """Sequence number just after the last byte queued."""
        return self.head + len(self.data)

    def append(self, chunk: Buffer) -> None:
        self.data += chunk

    def acknowledge(self, upto: int) -> int:
        """Forget every byte before ``upto``; returns how many bytes were released."""
        count = min(upto, self.head + len(self.data)) - self.head
        if count > 0:
            del self.data[:count]
            self.head += count
            return count
        return 0

    def copy_out(self, dest: bytearray, offset: int, seq: int, length: int) -> None:
        """Copy ``length`` bytes starting at sequence ``seq`` into ``dest[offset:]``."""
        start = seq - self.head
        with memoryview(self.data) as view:
            dest[offset:offset + length] = view[start:start + length]


class _Block:
    __slots__ = ("data", "start")

    def __init__(self, start: int, data: bytearray) -> None:
        self.start = start
        self.data = data

    @property
    def end(self) -> int:
        return self.start + len(self.data)


# A payload at least this long is kept as a view of its frame; a shorter one is copied into the tail.
_VIEW_FROM = 512


class ReceiveBuffer:
    """In-order bytes not yet read (``chunks``, ``size`` bytes in all) and out-of-order blocks
    waiting for the gap to fill.  A chunk is a view of a received frame or a ``bytearray`` of ours."""

    __slots__ = ("_recent", "_tail", "blocks", "chunks", "ooo_bytes", "size")

    # RFC 2018 §4 asks for the most recently reported blocks to be repeated; remembering a few more
    # than fit in one option keeps the report stable while blocks merge.
    _RECENT_KEEP = 8

    def __init__(self) -> None:
        self.chunks: deque[memoryview | bytearray] = deque()
        self.size = 0
        self._tail: bytearray | None = None  # the last chunk when it is ours and may still grow
        self.blocks: list[_Block] = []
        self.ooo_bytes = 0
        self._recent: list[int] = []  # a sequence number inside each recently received ooo segment

    def append(self, payload: memoryview) -> None:
        """Queue in-order ``payload`` for the application."""
        size = len(payload)
        self.size += size
        if size >= _VIEW_FROM and isinstance(payload.obj, bytes):
            self.chunks.append(payload)
            self._tail = None
        elif self._tail is not None:
            self._tail += payload
        else:
            self._tail = bytearray(payload)
            self.chunks.append(self._tail)

    def _append_owned(self, data: bytearray) -> None:
        """Queue a bytearray nobody else holds (a reassembled block) as a chunk of its own."""
        self.size += len(data)
        self.chunks.append(data)
        self._tail = data

    def add(self, seq: int, payload: memoryview, rcv_nxt: int) -> int:
        """Store ``payload`` (already trimmed to start at or after ``rcv_nxt`` and to fit the window);
        returns the new RCV.NXT, which moves only when the data is in order."""
        if seq == rcv_nxt:
            self.append(payload)
            rcv_nxt += len(payload)
            if self.blocks:
                rcv_nxt = self._pull(rcv_nxt)
            return rcv_nxt
        self._insert(seq, payload)
        recent = self._recent
        recent.insert(0, seq)
        del recent[self._RECENT_KEEP:]
        return rcv_nxt

    def _pull(self, rcv_nxt: int) -> int:
        """Move blocks that the in-order data now reaches into ``data``."""
        blocks = self.blocks
        while blocks and blocks[0].start <= rcv_nxt:
            block = blocks.pop(0)
            self.ooo_bytes -= len(block.data)
            end = block.end
            if end > rcv_nxt:
                del block.data[:rcv_nxt - block.start]
                self._append_owned(block.data)
                rcv_nxt = end
        if not blocks:
            self._recent.clear()
        return rcv_nxt

    def _insert(self, seq: int, payload: memoryview) -> None:
        blocks = self.blocks
        end = seq + len(payload)
        starts = [b.start for b in blocks] if len(blocks) > 1 else None
        # index of the last block starting at or before seq
        i = (bisect_right(starts, seq) if starts is not None else int(bool(blocks) and blocks[0].start <= seq)) - 1
        nxt = blocks[i + 1].start if i + 1 < len(blocks) else None
        if i >= 0:
            block = blocks[i]
            bend = block.end
            if end <= bend:
                return  # a duplicate of data we hold
            if seq <= bend and (nxt is None or end < nxt):
                block.data += payload[bend - seq:]  # the common case: extends a block to the right
                self.ooo_bytes += end - bend
                return
        if (i < 0 or seq > blocks[i].end) and (nxt is None or end < nxt):
            blocks.insert(i + 1, _Block(seq, bytearray(payload)))
            self.ooo_bytes += len(payload)
            return
        # General case: the segment touches several blocks; rebuild the span it covers.
        lo = i if i >= 0 and seq <= blocks[i].end else i + 1
        hi = lo
        while hi < len(blocks) and blocks[hi].start <= end:
            hi += 1
        merged_start = min(seq, blocks[lo].start)
        merged_end = max(end, blocks[hi - 1].end)
        merged = bytearray(merged_end - merged_start)
        merged[seq - merged_start:end - merged_start] = payload
        for block in blocks[lo:hi]:
            merged[block.start - merged_start:block.end - merged_start] = block.data
            self.ooo_bytes -= len(block.data)
        blocks[lo:hi] = [_Block(merged_start, merged)]
        self.ooo_bytes += len(merged)

    def holds(self, start: int, end: int) -> bool:
        """True when one out-of-order block already holds all of ``[start, end)``."""
        return any(block.start <= start and end <= block.end for block in self.blocks)

    def sack_blocks(self, limit: int) -> list[tuple[int, int]]:
        """Up to ``limit`` (start, end) blocks, the one holding the latest segment first (RFC 2018 §4)."""
        out: list[tuple[int, int]] = []
        blocks = self.blocks
        for seq in self._recent:
            for block in blocks:
                if block.start <= seq < block.end:
                    edge = (block.start, block.end)
                    if edge not in out:
                        out.append(edge)
                    break
            if len(out) == limit:
                return out
        for block in blocks:  # blocks whose segments have aged out of the recent list
            if len(out) == limit:
                break
            edge = (block.start, block.end)
            if edge not in out:
                out.append(edge)
        return out

    def peek(self, count: int) -> bytes:
        """Up to ``count`` in-order bytes, left in place (MSG_PEEK)."""
        pieces: list[memoryview | bytearray] = []
        for chunk in self.chunks:
            if count <= 0:
                break
            pieces.append(chunk[:count])
            count -= len(chunk)
        return b"".join(pieces)

    def read(self, count: int) -> bytes:
        """Remove and return up to ``count`` in-order bytes."""
        chunks = self.chunks
        if len(chunks) == 1 and count >= self.size:
            self._tail = None
            self.size = 0
            return bytes(chunks.pop())
        pieces: list[memoryview | bytearray] = []
        while chunks and count > 0:
            chunk = chunks[0]
            if len(chunk) <= count:
                pieces.append(chunks.popleft())
                count -= len(chunk)
            else:
                pieces.append(chunk[:count])
                self._consume_front(count)
                count = 0
        if not chunks:
            self._tail = None
        out = b"".join(pieces)
        self.size -= len(out)
        return out

    def read_into(self, dest: memoryview, count: int) -> int:
        """Move up to ``count`` in-order bytes into ``dest``; returns how many."""
        chunks = self.chunks
        done = 0
        count = min(count, self.size)
        while done < count:
            chunk = chunks[0]
            take = min(len(chunk), count - done)
            if type(chunk) is memoryview:
                dest[done:done + take] = chunk[:take]
            else:
                with memoryview(chunk) as view:
                    dest[done:done + take] = view[:take]
            done += take
            if take == len(chunk):
                chunks.popleft()
            else:
                self._consume_front(take)
        if not chunks:
            self._tail = None
        self.size -= done
        return done

    def _consume_front(self, count: int) -> None:
        """Drop ``count`` bytes (fewer than it holds) from the front chunk."""
        chunk = self.chunks[0]
        if type(chunk) is memoryview:
            self.chunks[0] = chunk[count:]
        else:
            del chunk[:count]  # ours, and no view of it is alive
