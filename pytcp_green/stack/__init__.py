"""The sans-I/O protocol core: state machines fed with frames and ``now``, never touching a clock or an fd."""
