"""`deadline=<Unix time>`: no round starts that would not end before it (docs/design.md, "Deadlines and campaigns").

Two checks. A deadline already past when the command started was given stale (or in the wrong unit): nothing
is run, before the data is read. A deadline that passes later stops the run at a round boundary once its
earlier rounds say the next one would not end in time (osal.loop.round_estimate); a run with no timed round
yet starts its round 0, since the campaign starts runs close to their deadline and start-up takes seconds.
"""

import os
import time
from typing import Optional

from omegaconf import DictConfig

from osal.folders import shown
from osal.loop.round_estimate import fit_schedule, next_round_seconds

_IMPORTED = time.time()


def command_started() -> float:
    """Unix time at which this process started: the kernel's record of it (Linux /proc), since a run started by
    the campaign spends seconds importing and composing before its own code runs; elsewhere, the time osal.loop
    was first imported."""
    try:
        with open("/proc/self/stat") as f:
            # the fields after the command name (which may hold spaces and parentheses); starttime is the 22nd
            # field, in clock ticks since boot, as is the clock of /proc/uptime
            fields = f.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        running = uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return _IMPORTED
    return time.time() - max(running, 0.0)


def passed_before_start(cfg: DictConfig, output_dir: str, kept: Optional[int]) -> Optional[str]:
    """Why no round is run when `deadline` had passed before this command started, or None; `kept` is the
    run's last completed round (None: none)."""
    deadline = cfg.get("deadline")
    if deadline is None or float(deadline) > command_started():
        return None
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(deadline)))
    holds = f"keeps rounds 0..{kept}" if kept is not None else "has no round yet"
    return (f"deadline: deadline={deadline} ({when}) had already passed when this command started, so no round "
            f"was run; the run in {shown(output_dir)} {holds}: give a later deadline (a Unix time, e.g. "
            "$(date -d '+2 hours' +%s)) to continue it")


def too_late_for(cfg: DictConfig, round_index: int, rows: list, with_detector: bool) -> Optional[str]:
    """Why round `round_index` would not end before `deadline`, from the run's earlier `rows`, or None."""
    deadline = cfg.get("deadline")
    if deadline is None or not rows:
        return None
    needed = next_round_seconds(rows, int(cfg.al.rounds), int(cfg.al.query_size), fit_schedule(cfg), with_detector)
    left = float(deadline) - time.time()
    if needed is None or needed <= left:
        return None
    return (f"deadline: round {round_index} would need about {needed:.0f} s and {max(left, 0):.0f} s are left; "
            f"stopped after round {round_index - 1}, the same command continues it")
