"""pytcp_green: a TCP/IP stack in Python on a TAP device, driven by gevent greenlets.

The protocol core (``pytcp_green.stack``) is sans-I/O; ``pytcp_green.green`` runs it on gevent;
``pytcp_green.link`` moves frames; ``pytcp_green.lab`` builds Linux-side peers in namespaces.
"""

__version__ = "0.1.0"
