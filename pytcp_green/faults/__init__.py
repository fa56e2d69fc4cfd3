"""Live faults on a running stack's link: what Toxiproxy's toxics do to a proxied connection, done to
frames between the stack and its device, changeable while a program runs.

* :mod:`.kinds` — the fault kinds and their parameters, the direction and flow match, and the
  words that write them (``latency delay=100ms direction=in port=8000``);
* :mod:`.segment` — TCP segments inside frames: field offsets, a segment re-cut, a RST made
  (RFC 9293 §3.1, §3.5.2; IPv4 RFC 791, IPv6 RFC 8200);
* :mod:`.engine` — the sans-I/O engine: frames in, faulted frames (and injected RSTs) out;
* :mod:`.stage` — one direction of the engine in front of the link's impairment, as the runtime
  drives it;
* :mod:`.control` — ``host.faults``: add, remove, context managers, link down, address change.
"""
