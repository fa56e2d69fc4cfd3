"""TCP (RFC 9293 and the RFCs named in each module): :class:`TcpLayer` is what a stack instantiates,
:class:`TcpSocket` what its runtime drives."""

from pytcp_green.stack.tcp.layer import TcpLayer
from pytcp_green.stack.tcp.socket import TcpSocket

__all__ = ["TcpLayer", "TcpSocket"]
