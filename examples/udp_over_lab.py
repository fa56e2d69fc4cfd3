"""Use the stack as a library: start it in a lab, talk UDP to the Linux kernel, print the counters.

    sudo .venv/bin/python examples/udp_over_lab.py

The kernel side runs `nc -u -l` on 198.18.0.1:9000 and prints what it receives; the stack sends
three datagrams from its own UDP socket.  Every frame goes through pytcp_green, none through the
host's kernel stack.
"""

from __future__ import annotations

import subprocess

from pytcp_green.cli import in_thread
from pytcp_green.green.sockets import GreenSocket
from pytcp_green.host import Host, StackOptions
from pytcp_green.stack.sockbase import AF_INET
from pytcp_green.stack.stack import SOCK_DGRAM


def main() -> None:
    with Host(StackOptions(lab=True)) as host:
        assert host.lab is not None
        listener = host.lab.popen(["timeout", "3", "nc", "-u", "-l", "-W", "3", "198.18.0.1", "9000"],
                                  stdout=subprocess.PIPE, text=True)
        sock = GreenSocket(host.runtime, host.stack.socket(AF_INET, SOCK_DGRAM), timeout=5)
        for i in range(3):
            sock.sendto(f"datagram {i} from pytcp_green\n".encode(), ("198.18.0.1", 9000))
        out, _ = in_thread(listener.communicate)
        print("the kernel received:\n" + out)
        print(host.stack.stats.report())


if __name__ == "__main__":
    main()
