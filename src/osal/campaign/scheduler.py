"""The packing scheduler: a campaign's runs on a few slots (runs at once per GPU) until a deadline.

Each run is its own `src/train.py` process that resumes from its directory and is told the
deadline (`deadline=<Unix time>`), so it never starts a round it cannot finish and stops at a round
boundary. A slot takes the next run, in priority order, whose next round still fits; at the hard
end of the window every run still going gets Ctrl-C (it keeps its completed rounds), then a kill.
"""

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional, Union

from omegaconf import DictConfig

from osal.campaign.grid import Run
from osal.campaign.progress import read_progress, run_dir
from osal.folders import shown
from osal.interrupt import Interrupted, ctrl_c_interrupts
from osal.loop.processes import die_with_parent, quoted

TRAIN = Path(__file__).resolve().parents[2] / "train.py"
REPOSITORY = TRAIN.parents[1]  # where the runs start: the paths they are told are relative to it when inside


@dataclass
class Launch:
    run: object  # grid.Run
    slot: int
    process: subprocess.Popen
    started: float
    rounds_before: int


class Scheduler:
    """Runs `runs` (grid.Run, in priority order) on `slots` (one CUDA device index per slot, or None for the
    CPU) for at most `window_seconds`.

    Args:
        configs: {run name: its composed config}, for the estimates.
        overrides: the campaign's own overrides (the experiment and anything common), before each run's own.
        extra: overrides that do not change what a run computes (data_dir=...), after them.
        reserve_seconds: the runs' deadline is this long before the window's end: time to stop and to copy
            the campaign back.
        startup_seconds: what a process needs before its first round (imports, reading the data).
    """

    def __init__(self, campaign_dir: Union[str, os.PathLike], runs: Iterable[Run], configs: dict[str, DictConfig],
                 overrides: Iterable[str], slots: Iterable[Optional[str]], window_seconds: float,
                 extra: Iterable[str] = (), reserve_seconds: float = 60.0, startup_seconds: float = 30.0,
                 say: Callable[[str], None] = print):
        self.campaign_dir, self.runs, self.configs = str(campaign_dir), list(runs), configs
        self.overrides, self.extra, self.slots = list(overrides), list(extra), list(slots)
        self.window_seconds, self.reserve, self.startup = float(window_seconds), float(reserve_seconds), \
            float(startup_seconds)
        self.say = say
        self.outcomes = {}  # run name -> (rounds before, rounds after, what happened)
        self.active = {}  # slot -> Launch

    def command(self, run: Run, deadline: float) -> list:
        return [sys.executable, str(TRAIN), *self.overrides, *run.overrides, *self.extra,
                f"hydra.run.dir={quoted(shown(run_dir(self.campaign_dir, run.name), base=str(REPOSITORY)))}",
                f"deadline={deadline:.0f}",
                "logger=none",
                "trainer.enable_progress_bar=false"]

    def fits(self, run: Run, seconds_left: float) -> bool:
        """Whether the run's next round (or, before any, its start) can end in `seconds_left`."""
        progress = read_progress(self.campaign_dir, run.name, self.configs[run.name])
        if progress.finished:
            return False
        need = progress.next_round_seconds
        return seconds_left > self.startup + (need if need is not None else self.startup)

    def start(self, run: Run, slot: int, deadline: float) -> Launch:
        directory = run_dir(self.campaign_dir, run.name)
        os.makedirs(directory, exist_ok=True)
        env = dict(os.environ)
        if self.slots[slot] is not None:
            env["CUDA_VISIBLE_DEVICES"] = str(self.slots[slot])
        console = open(os.path.join(directory, "console.log"), "a")
        console.write(f"--- window started {time.strftime('%Y-%m-%d %H:%M:%S')}, slot {slot}\n")
        console.flush()
        # a session of its own, so that Ctrl-C reaches the scheduler alone, which stops the runs at a round's end;
        # and a parent-death signal, so that a scheduler killed outright leaves no run training on (nor holding
        # its folder's lock) unseen
        process = subprocess.Popen(self.command(run, deadline), stdout=console, stderr=subprocess.STDOUT, env=env,
                                   cwd=str(REPOSITORY), start_new_session=True, preexec_fn=die_with_parent)
        console.close()
        before = read_progress(self.campaign_dir, run.name, self.configs[run.name]).rounds_done
        self.say(f"start {run.name} (slot {slot}, {before} rounds done)")
        return Launch(run, slot, process, time.time(), before)

    def finish(self, launch: Launch, note: Optional[str] = None) -> None:
        progress = read_progress(self.campaign_dir, launch.run.name, self.configs[launch.run.name])
        code = launch.process.returncode
        what = note or ("finished" if progress.finished else ("stopped at the deadline" if code == 0
                                                               else f"failed (exit {code}, see console.log)"))
        self.outcomes[launch.run.name] = (launch.rounds_before, progress.rounds_done, what)
        self.say(f"{what}: {launch.run.name}, rounds {launch.rounds_before} -> {progress.rounds_done} "
                 f"in {time.time() - launch.started:.0f} s")

    def run(self) -> dict:
        """Advance the campaign until the window ends or nothing fits; returns {run name: outcome}.

        Ctrl-C stops every run as the window's end does (each keeps its completed rounds).
        """
        try:
            with ctrl_c_interrupts():
                return self._run()
        except Interrupted:
            self.stop_all(self.active)
            raise

    def _run(self) -> dict:
        begin = time.time()
        end = begin + self.window_seconds
        deadline = end - self.reserve
        queue = [run for run in self.runs if not read_progress(self.campaign_dir, run.name,
                                                               self.configs[run.name]).finished]
        waiting = len(queue)
        if not waiting:
            self.say("every run of the campaign has finished")
        active = self.active
        while True:
            now = time.time()
            for slot in range(len(self.slots)):
                if slot in active or now >= deadline:
                    continue
                while queue:
                    run = queue.pop(0)
                    if self.fits(run, deadline - now):
                        active[slot] = self.start(run, slot, deadline)
                        break
            for slot, launch in list(active.items()):
                if launch.process.poll() is not None:
                    self.finish(launch)
                    del active[slot]
            if not active and (not queue or time.time() >= deadline):
                if waiting and not self.outcomes:
                    self.say(f"no run started: none has its next round fit in the {deadline - begin:.0f} s before "
                             f"the runs' deadline (--seconds {self.window_seconds:g} less --reserve {self.reserve:g}), "
                             f"counting --startup {self.startup:g} s for a run's start (and for its first round, "
                             "before any is timed); give a longer window, or a shorter --startup")
                break
            if time.time() >= end - min(10.0, self.reserve / 2):
                self.stop_all(active)
                break
            time.sleep(0.2)
        return self.outcomes

    def stop_all(self, active: dict) -> None:
        """The window is ending: Ctrl-C to every run still going (its completed rounds are kept), then a kill."""
        for launch in active.values():
            os.killpg(launch.process.pid, signal.SIGINT)
        give_up = time.time() + 5.0
        for launch in active.values():
            try:
                launch.process.wait(timeout=max(give_up - time.time(), 0.1))
            except subprocess.TimeoutExpired:
                os.killpg(launch.process.pid, signal.SIGKILL)
                launch.process.wait()
            self.finish(launch, note="interrupted at the end of the window")
        active.clear()

