"""``host.faults``: add and remove faults on a running stack's link, from a test or a person.

    fault = host.faults.add("latency", delay="100ms", direction="in", port=8000)
    ...
    fault.remove()                      # or: with host.faults.add(...): ...
    with host.faults.link_down(): ...   # the link carries nothing, then comes back
    host.faults.change_address("198.18.0.9/24")

The engine is put in front of the link's impairment the first time a fault is added (the link's
device is wrapped in an :class:`~pytcp_green.link.impaired.ImpairedDevice` if it has none), so a
stack that never uses faults pays nothing on its frame path.  Every change kicks the runtime, which
re-arms its timer for the frames the faults now hold.
"""

from __future__ import annotations

import ipaddress
import logging
from types import TracebackType

from pytcp_green.faults.engine import ActiveFault, FaultEngine
from pytcp_green.faults.kinds import FaultSpec, make
from pytcp_green.faults.stage import FaultStage
from pytcp_green.green.runtime import Attachment, Runtime
from pytcp_green.link.impaired import ImpairedDevice
from pytcp_green.stack.interface import LinkKind
from pytcp_green.stack.wire.ethernet import ETH_HEADER_LEN

log = logging.getLogger("pytcp_green.faults")


class Fault:
    """A fault in force; :meth:`remove` (or leaving its ``with`` block) ends it."""

    def __init__(self, owner: Faults, active: ActiveFault) -> None:
        self._owner = owner
        self._active = active

    @property
    def id(self) -> int:
        return self._active.id

    @property
    def spec(self) -> FaultSpec:
        return self._active.spec

    @property
    def stats(self) -> dict[str, int]:
        """What it did so far: ``matched`` frames and, per kind, ``dropped``, ``sliced``, ``reset``..."""
        return dict(self._active.stats)

    def remove(self) -> None:
        self._owner.remove(self.id)

    def __enter__(self) -> Fault:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.id in self._owner.ids():
            self.remove()

    def __repr__(self) -> str:
        return f"<Fault {self.id}: {self.spec}>"


class Faults:
    """The faults of one attachment (a host's link), on top of its impairment."""

    def __init__(self, runtime: Runtime, attachment: Attachment, seed: int = 0) -> None:
        self.runtime = runtime
        self.attachment = attachment
        link_len = ETH_HEADER_LEN if attachment.iface.kind is LinkKind.ETHERNET else 0
        self.engine = FaultEngine(link_len, seed)
        self._installed = False

    def _install(self) -> None:
        """Put the engine in front of each direction's impairment (once: stages stay, holding frames)."""
        if self._installed:
            return
        att = self.attachment
        device = att.device
        if not isinstance(device, ImpairedDevice):
            device = ImpairedDevice(device)
            device.now = self.runtime.now()
            att.device = device  # the reader keeps its watcher: the wrapper polls the same fd
        device.outbound = FaultStage(self.engine, "out", device.outbound)
        device.inbound = FaultStage(self.engine, "in", device.inbound)
        self._installed = True

    def add(self, fault: str | FaultSpec, **params: object) -> Fault:
        """Start a fault: a :class:`FaultSpec`, words (``"latency delay=100ms port=80"``), or a kind
        name with keyword parameters (``add("bandwidth", rate="1mbit", direction="out")``)."""
        if isinstance(fault, FaultSpec):
            spec = fault
        elif params or " " not in fault.strip():
            spec = make(fault, **params)  # type: ignore[arg-type]  # make() checks every value itself
        else:
            spec = FaultSpec.parse(fault)
        self._install()
        active = self.engine.add(spec, self.runtime.now())
        log.info("fault %d added: %s", active.id, spec)
        self.runtime.kick()
        return Fault(self, active)

    def remove(self, fault_id: int) -> None:
        """End the fault with this id; KeyError if there is none."""
        for active in self.engine.faults:
            if active.id == fault_id:
                self.engine.remove(active)
                log.info("fault %d removed: %s (%s)", fault_id, active.spec, dict(active.stats))
                self.runtime.kick()
                return
        raise KeyError(f"no fault {fault_id}")

    def clear(self) -> int:
        """End every fault; returns how many there were."""
        ids = self.ids()
        for fault_id in ids:
            self.remove(fault_id)
        return len(ids)

    def ids(self) -> list[int]:
        return [active.id for active in self.engine.faults]

    def list(self) -> list[dict[str, object]]:
        """The faults in force, in the order they apply, with what each did so far."""
        return [active.as_dict() for active in self.engine.faults]

    def link_down(self) -> Fault:
        """The link goes down (no frame either way) until the returned fault is removed."""
        return self.add("down")

    def change_address(self, new: str, old: str | None = None) -> None:
        """Give the link ``new`` ("198.18.0.9/24") in place of ``old`` (default: its first IPv4
        address), as a renumbering would: the new one is announced first, then the old one goes,
        so connections bound to it stop working while new ones use the new address."""
        iface = self.attachment.iface
        stack = self.runtime.stack
        new_addr = ipaddress.IPv4Interface(new)
        old_addr = ipaddress.IPv4Interface(old) if old is not None else (iface.ip4[0] if iface.ip4 else None)
        if old_addr is not None and old_addr not in iface.ip4:
            raise ValueError(f"{old_addr} is not an address of {iface.name}")
        stack.add_ip4(iface, new_addr, now=self.runtime.now())
        if old_addr is not None and old_addr != new_addr:
            stack.ip4.remove_address(iface, old_addr)
        log.info("address of %s changed: %s -> %s", iface.name, old_addr, new_addr)
        self.runtime.kick()
