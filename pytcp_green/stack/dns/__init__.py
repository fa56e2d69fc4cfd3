"""Name resolution, sans-I/O: the stub resolver and the hosts file (RFC 1034 §5, RFC 1035 §7, RFC 1123 §6.1.3).

:mod:`.query` is one question asked of the servers in turn (deadlines, retries, TCP after a
truncated UDP reply), :mod:`.resolver` the search list, the cache and the reading of answers
around it, :mod:`.hosts` the hosts-file table.  The messages are :mod:`pytcp_green.stack.wire.dns`.
Nothing here touches a socket, a file or a clock: :mod:`pytcp_green.patches.dns` drives it over
the stack's sockets and gives it ``now``.
"""

from pytcp_green.stack.dns.hosts import HostsEntry, HostsTable, parse_hosts
from pytcp_green.stack.dns.query import Exchange, Failure, Query, Transport
from pytcp_green.stack.dns.resolver import Answer, Lookup, Resolver

__all__ = ["Answer", "Exchange", "Failure", "HostsEntry", "HostsTable", "Lookup", "Query", "Resolver", "Transport",
           "parse_hosts"]
