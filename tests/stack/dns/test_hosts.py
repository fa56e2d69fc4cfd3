"""The hosts-file table (hosts(5))."""

from __future__ import annotations

from pytcp_green.stack.dns import HostsEntry, HostsTable, parse_hosts

TEXT = """# a comment
127.0.0.1   localhost
198.18.7.7  files.test  Alias.test   # trailing comment
fe80::1%eth0 link.test
not-an-address bogus.test
198.18.7.8
198.18.7.8 two.test
198.18.7.9 two.test
"""


def test_parse_skips_comments_bad_addresses_and_lone_addresses() -> None:
    assert parse_hosts(TEXT.splitlines(keepends=True)) == [
        HostsEntry("127.0.0.1", "localhost", []),
        HostsEntry("198.18.7.7", "files.test", ["Alias.test"]),
        HostsEntry("fe80::1", "link.test", []),
        HostsEntry("198.18.7.8", "two.test", []),
        HostsEntry("198.18.7.9", "two.test", []),
    ]


def test_lookups_ignore_case_and_the_final_dot() -> None:
    table = HostsTable(parse_hosts(TEXT.splitlines()))
    assert [e.address for e in table.by_name("ALIAS.test.")] == ["198.18.7.7"]
    assert [e.address for e in table.by_name("two.test")] == ["198.18.7.8", "198.18.7.9"]
    assert table.by_name("nowhere.test") == []
    entry = table.by_address("198.18.7.8")
    assert entry is not None and entry.canonical == "two.test"
    assert table.by_address("192.0.2.1") is None
    assert HostsTable().by_name("localhost") == []
