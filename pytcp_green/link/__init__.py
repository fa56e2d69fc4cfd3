"""Devices that move frames between the stack and the world (TAP/TUN, loopback, in-memory pair), the middleware
between them and the stack (impairment, pcap), and the drive loop the runtime and the simulator share (drive)."""
