"""Entry point: `python src/annotate.py COMMAND ...` annotates a folder of images with a person as the oracle.

Commands init, next, import, status, export, predict; `--help` lists them (see docs/annotation.md).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # run from a fresh clone without installing

from osal.interrupt import leave_quietly_on_ctrl_c  # noqa: E402

leave_quietly_on_ctrl_c("interrupted before the command started; nothing was changed")

from osal.annotate.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
