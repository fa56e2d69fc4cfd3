"""``python -m pytcp_green``: the same command as ``pytcp-green``."""

import sys

from pytcp_green.cli import main

sys.exit(main())
