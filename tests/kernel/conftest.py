"""A stack attached to a lab namespace whose far side is the Linux kernel, shared by a test module."""

from __future__ import annotations

from collections.abc import Iterator

import gevent
import pytest
from lab.helpers import KernelPeer, lab_skip_reason

from pytcp_green.green.services import start_services
from pytcp_green.host import Host, StackOptions


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KernelPeer]:
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    pcap = tmp_path_factory.mktemp("pcap") / "stack.pcap"
    with Host(StackOptions(lab=True, pcap=str(pcap))) as host:
        services = start_services(host.runtime)
        gevent.sleep(0)  # let the services bind before the first test talks to them
        try:
            yield KernelPeer(host, pcap)
        finally:
            gevent.killall(services)
