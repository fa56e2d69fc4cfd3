"""DHCPv4 client (RFC 2131) with options (RFC 2132) and client identifiers (RFC 4361, RFC 6842).

:mod:`.wire` is the message codec, :mod:`.client` the sans-I/O client state machine running on
the stack's timers over a core UDP socket bound to port 68.
"""

from pytcp_green.stack.ipv4.dhcp.client import Dhcp4Client, Dhcp4State, Lease

__all__ = ["Dhcp4Client", "Dhcp4State", "Lease"]
