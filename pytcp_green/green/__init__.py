"""The gevent runtime: device readers, the core's timer, and blocking sockets over core sockets."""
