"""Deterministic simulation: several stacks on impaired links under a virtual clock (see :mod:`.network`)."""

from pytcp_green.sim.network import Direction, Link, SimInterface, SimStack, Simulation

__all__ = ["Direction", "Link", "SimInterface", "SimStack", "Simulation"]
