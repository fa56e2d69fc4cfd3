"""``pytcp-green compare``: one program over the Linux kernel and over the stack, side by side.

* :mod:`.runs` — the two runs (a lab each; the kernel's joined through :mod:`pytcp_green.lab.relay`);
* :mod:`.timed` — the wrapper that times the program itself in both runs;
* :mod:`.pcapstats` — what each run's capture shows (connections, bytes, retransmissions, resets,
  handshake options), read with tshark;
* :mod:`.report` — the comparison: same exit status and output or not, with medians over runs.
"""
