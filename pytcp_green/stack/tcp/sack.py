"""The sender's SACK scoreboard (RFC 2018 §5, RFC 6675 §3-4).

It holds what the peer reported receiving above SND.UNA as sorted, disjoint [start, end) ranges of
unwrapped sequence numbers, and answers the questions RFC 6675 asks of it: IsLost (as a boundary below
which every un-SACKed byte counts as lost), the holes NextSeg picks from, and the byte counts SetPipe
needs.  SACK information is advisory (RFC 2018 §8): nothing is freed because of it, and it is cleared
after a retransmission timeout in case the receiver reneged.
"""

from __future__ import annotations

DUP_THRESH = 3  # RFC 6675 §2 DupThresh / RFC 5681 §3.2


class Scoreboard:
    __slots__ = ("ranges", "sacked")

    def __init__(self) -> None:
        self.ranges: list[list[int]] = []  # [start, end), sorted, disjoint, non-adjacent
        self.sacked = 0  # bytes covered by ranges

    def __bool__(self) -> bool:
        return bool(self.ranges)

    def clear(self) -> None:
        self.ranges.clear()
        self.sacked = 0

    @property
    def high(self) -> int:
        """The end of the highest SACKed range (RFC 6675 "HighSACK" + 1); call only when non-empty."""
        return self.ranges[-1][1]

    def add(self, start: int, end: int) -> bool:
        """Record one reported block (already clipped to SND.UNA..SND.MAX); True if it covered new bytes."""
        ranges = self.ranges
        i = 0
        n = len(ranges)
        while i < n and ranges[i][1] < start:
            i += 1
        j = i
        covered = 0
        while j < n and ranges[j][0] <= end:
            covered += ranges[j][1] - ranges[j][0]
            j += 1
        if j > i:
            start = min(start, ranges[i][0])
            end = max(end, ranges[j - 1][1])
        grown = (end - start) - covered
        if grown <= 0:
            return False
        ranges[i:j] = [[start, end]]
        self.sacked += grown
        return True

    def advance(self, una: int) -> None:
        """Drop what the cumulative ACK now covers."""
        ranges = self.ranges
        while ranges and ranges[0][0] < una:
            first = ranges[0]
            if first[1] <= una:
                self.sacked -= first[1] - first[0]
                del ranges[0]
            else:
                self.sacked -= una - first[0]
                first[0] = una
                break

    def lost_boundary(self, una: int, mss: int) -> int:
        """The highest sequence number L such that every un-SACKed byte in [una, L) IsLost (RFC 6675 §4):
        DupThresh SACKed ranges, or more than (DupThresh - 1) * SMSS SACKed bytes, lie above it."""
        above = 0
        for count, (start, end) in enumerate(reversed(self.ranges), 1):
            above += end - start
            if count >= DUP_THRESH or above > (DUP_THRESH - 1) * mss:
                return start
        return una

    def sacked_below(self, seq: int) -> int:
        """SACKed bytes before ``seq``."""
        total = 0
        for start, end in self.ranges:
            if start >= seq:
                break
            total += min(end, seq) - start
        return total

    def hole_at_or_after(self, seq: int, limit: int) -> tuple[int, int] | None:
        """The first un-SACKed range at or after ``seq`` that starts before ``limit`` (clipped to it)."""
        for start, end in self.ranges:
            if seq < start:
                break
            if seq < end:
                seq = end
        if seq >= limit:
            return None
        for start, _end in self.ranges:
            if start > seq:
                return seq, min(start, limit)
        return seq, limit

    def sacked_end_at(self, seq: int) -> int:
        """If ``seq`` is inside a SACKed range, that range's end; otherwise ``seq``."""
        for start, end in self.ranges:
            if start > seq:
                break
            if seq < end:
                return end
        return seq

    def next_start_after(self, seq: int) -> int | None:
        """Start of the first SACKed range beginning after ``seq``, if any."""
        for start, _end in self.ranges:
            if start > seq:
                return start
        return None
