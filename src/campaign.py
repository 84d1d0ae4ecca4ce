"""Entry point: `python src/campaign.py run|status DIR [overrides]` advances a grid of runs a window at a time.

The command line and its help are osal/campaign/cli.py; see docs/cluster.md.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # run from a fresh clone without installing

from osal.interrupt import leave_quietly_on_ctrl_c  # noqa: E402

leave_quietly_on_ctrl_c("interrupted; every run keeps its completed rounds: run the same command again to continue")

from osal.campaign.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
