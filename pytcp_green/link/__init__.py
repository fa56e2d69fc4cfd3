"""Devices that move frames between the stack and the world: TAP/TUN, loopback, in-memory pair, impairment, pcap."""
