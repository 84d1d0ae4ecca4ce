"""A campaign directory: which grid it holds (campaign.yaml), its runs, and the checks before a window starts.

    <campaign>/campaign.yaml     the overrides that define the grid (the experiment and anything common),
                                 and its runs in priority order; written by the first window
    <campaign>/campaign.log      one block per window: machine, slots, each run's rounds before -> after
    <campaign>/runs/<run>/       each run's own directory: metrics.csv, state.npz, pool_round_XX.npz,
                                 .hydra/ (the resolved config), train.log, console.log, summary.json
"""

import os
import time
from typing import Optional, Sequence, Union

from omegaconf import DictConfig, OmegaConf

from osal.atomic import atomic_write_text
from osal.campaign.grid import Run, compose_experiment, expand
from osal.campaign.progress import fill_unknown, protocol, read_progress, run_dir
from osal.errors import ConfigError
from osal.records.run_state import load_state
from osal.records.settings import differences_that_matter

CAMPAIGN_FILE, LOG_FILE = "campaign.yaml", "campaign.log"


class Campaign:
    """The grid of a campaign directory, its runs and their composed configs.

    Args:
        directory: the campaign directory (created on first use).
        overrides: the overrides that define the grid, e.g. ["experiment=reproduce_cifar10"]; None reads them
            from the directory's campaign.yaml. A directory made with other overrides is refused.
        extra: overrides that change nothing a run computes (data_dir=...), added to every run.
    """

    def __init__(self, directory: Union[str, os.PathLike], overrides: Optional[Sequence[str]] = None,
                 extra: Sequence[str] = ()):
        self.directory = os.path.abspath(str(directory))
        saved = self.saved_overrides()
        if overrides is None:
            if saved is None:
                raise ConfigError(f"{self.directory} is not a campaign yet (no {CAMPAIGN_FILE}); start it with its "
                                  "experiment, e.g. `python src/campaign.py run DIR experiment=reproduce_cifar10`")
            overrides = saved
        elif saved is not None and list(overrides) != saved:
            raise ConfigError(f"{self.directory} holds the campaign {' '.join(saved)}, not {' '.join(overrides)}; "
                              "give this grid its own campaign directory, or repeat the campaign's own overrides")
        self.overrides, self.extra = list(overrides), list(extra)
        self.runs = expand(compose_experiment(self.overrides))
        self.configs = {run.name: self.compose(run) for run in self.runs}

    def saved_overrides(self) -> Optional[list[str]]:
        path = os.path.join(self.directory, CAMPAIGN_FILE)
        return [str(o) for o in OmegaConf.load(path).overrides] if os.path.exists(path) else None

    def compose(self, run: Run) -> DictConfig:
        """The run's config as train.py composes it (Hydra's own part removed)."""
        cfg = compose_experiment([*self.overrides, *run.overrides, *self.extra], with_hydra=False)
        return OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))

    def save(self) -> None:
        os.makedirs(self.directory, exist_ok=True)
        text = OmegaConf.to_yaml({"overrides": self.overrides, "runs": [run.name for run in self.runs]})
        header = "# written by src/campaign.py: the grid of this campaign, its runs in priority order\n"
        atomic_write_text(os.path.join(self.directory, CAMPAIGN_FILE), header + text)

    def refuse_changed_runs(self) -> None:
        """A run directory whose saved run has another config than the grid gives it now: refused before any
        window starts, every such run named (a resumed train.py would refuse it alone, mid-window)."""
        changed = []
        for run in self.runs:
            saved = load_state(run_dir(self.directory, run.name))
            if saved is not None:
                diffs = differences_that_matter(saved.config, OmegaConf.to_container(self.configs[run.name]))
                if diffs:
                    changed.append(f"{run.name} ({', '.join(diffs[:3])})")
        if changed:
            raise ConfigError(f"{len(changed)} run(s) of {self.directory} were started with another config than the "
                              f"grid gives them now: {'; '.join(changed[:3])}; keep the campaign's configs as they "
                              "were, or start a new campaign directory")

    def progress(self) -> list:
        progress = [read_progress(self.directory, run.name, self.configs[run.name]) for run in self.runs]
        fill_unknown(progress, [protocol(self.configs[run.name]) for run in self.runs])
        return progress

    def log_window(self, device: str, slots: int, seconds: float, outcomes: dict) -> None:
        lines = [f"window {time.strftime('%Y-%m-%d %H:%M:%S')}: {device}, {slots} run(s) at a time, "
                 f"{seconds:.0f} s"]
        lines += [f"  {name}: rounds {before} -> {after}, {what}" for name, (before, after, what) in outcomes.items()]
        with open(os.path.join(self.directory, LOG_FILE), "a") as f:
            f.write("\n".join(lines) + "\n")
