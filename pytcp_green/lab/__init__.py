"""The lab: network namespaces with a TAP/TUN link to the Linux kernel, for demos, tests and comparisons.

See :mod:`pytcp_green.lab.netns` for how a lab is built and torn down.
"""

from pytcp_green.lab.netns import (
    Lab,
    LabError,
    LabUnavailable,
    cleanup_stale,
    lab_unavailable_reason,
    needs_lab,
)

__all__ = ["Lab", "LabError", "LabUnavailable", "cleanup_stale", "lab_unavailable_reason", "needs_lab"]
