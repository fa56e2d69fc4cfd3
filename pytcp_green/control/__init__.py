"""The control socket of a running stack, and ``pytcp-green ctl`` that talks to it.

* :mod:`.commands` — what a request can ask: faults (add, remove, list, clear), address,
  ss, stats, sysctl; each answers a JSON-able value or raises with a message and an errno;
* :mod:`.server` — a Unix stream socket in the stack's process (a gevent greenlet per client),
  one JSON request per line, one JSON answer per line;
* :mod:`.client` — finds the socket (``--socket``, ``$PYTCP_GREEN_CTL``, or the one running
  stack), sends a request and prints the answer.
"""
