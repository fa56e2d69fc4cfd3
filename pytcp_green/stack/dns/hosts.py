"""The hosts file (the format of hosts(5), after RFC 952's HOSTS.TXT), as a table in memory.

One entry a line: an address, its canonical name, then aliases; ``#`` starts a comment; a line
whose first field is not an address (an IPv6 zone ``%eth0`` is dropped) is skipped, as glibc
does.  Reading the file and noticing that it changed are the caller's business: this module
never touches the filesystem.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass
class HostsEntry:
    address: str
    canonical: str
    aliases: list[str]


def parse_hosts(lines: Iterable[str]) -> list[HostsEntry]:
    """The entries of a hosts file's ``lines``, in file order."""
    entries: list[HostsEntry] = []
    for line in lines:
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2:
            continue
        try:
            address = str(ipaddress.ip_address(fields[0].split("%", 1)[0]))
        except ValueError:
            continue
        entries.append(HostsEntry(address, fields[1], fields[2:]))
    return entries


class HostsTable:
    """Look-ups over the entries of one hosts file: names match without case or a final dot."""

    def __init__(self, entries: list[HostsEntry] | None = None) -> None:
        self.entries: list[HostsEntry] = entries or []

    def by_name(self, name: str) -> list[HostsEntry]:
        key = name.lower().rstrip(".")
        return [e for e in self.entries if e.canonical.lower() == key or key in (a.lower() for a in e.aliases)]

    def by_address(self, address: str) -> HostsEntry | None:
        for e in self.entries:
            if e.address == address:
                return e
        return None
