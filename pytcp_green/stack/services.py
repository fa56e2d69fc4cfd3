"""The shared machinery of one stack, handed to every layer by the composition root (:class:`~.stack.Stack`).

A layer that needs the clock-free timer heap, the counters, the tunables or the stack's random
source gets them here, never by reaching back into the Stack: :class:`Services` is the whole of
what the layers share without being a protocol themselves.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from pytcp_green.stack.stats import Stats
from pytcp_green.stack.sysctl import Sysctl
from pytcp_green.stack.timers import Timers


@dataclass(frozen=True, slots=True, eq=False)
class Services:
    """The timers, counters, tunables and random source every layer of one stack uses."""

    timers: Timers
    stats: Stats
    sysctl: Sysctl
    rng: random.Random
