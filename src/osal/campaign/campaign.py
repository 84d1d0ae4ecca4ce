"""A campaign directory: which grid it holds (campaign.yaml), its runs, and the checks before a window starts.

    <campaign>/campaign.yaml     the overrides that define the grid (the experiment and anything common),
                                 and its runs in priority order; written by the first window
    <campaign>/campaign.log      one block per window: machine, slots, each run's rounds before -> after
    <campaign>/runs/<run>/       each run's own directory: metrics.csv, state.npz, pool_round_XX.npz,
                                 .hydra/ (the resolved config), train.log, console.log, summary.json

The directory is committed and cloned, so all of it is read back as anyone's: campaign.yaml here, the rest in
directory.py, the grid's overrides in overrides.py.
"""

import os
import time
from typing import Optional, Sequence, Union

import yaml
from omegaconf import DictConfig, OmegaConf

from osal.atomic import atomic_write_text
from osal.campaign.directory import CAMPAIGN_FILE, LOG_FILE, check_before_writing, check_layout
from osal.campaign.grid import Run, check_experiment, compose_experiment, expand
from osal.campaign.overrides import check_overrides
from osal.campaign.progress import fill_unknown, protocol, read_progress, run_dir
from osal.errors import ConfigError
from osal.records.run_state import load_state
from osal.records.settings import differences_that_matter
from osal.stored import read_yaml_text

CAMPAIGN_KEYS = ("overrides", "runs")  # runs: written for people (the priority order); the grid makes the runs
WRITTEN_AS = "overrides: [experiment=<name>, key=value, ...]"


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
        check_layout(self.directory)
        saved = read_overrides(os.path.join(self.directory, CAMPAIGN_FILE))
        if overrides is None:
            if saved is None:
                raise ConfigError(f"{self.directory} is not a campaign yet (no {CAMPAIGN_FILE}); start it with its "
                                  "experiment, e.g. `python src/campaign.py run DIR experiment=reproduce_cifar10`")
            overrides = saved
        else:
            check_overrides(overrides, "the campaign's overrides")
            if saved is not None and list(overrides) != saved:
                raise ConfigError(f"{self.directory} holds the campaign {' '.join(saved)}, not "
                                  f"{' '.join(overrides)}; give this grid its own campaign directory, or repeat the "
                                  "campaign's own overrides")
        check_experiment(overrides)
        self.overrides, self.extra = list(overrides), list(extra)
        self.runs = expand(compose_experiment(self.overrides))
        self.configs = {run.name: self.compose(run) for run in self.runs}

    def compose(self, run: Run) -> DictConfig:
        """The run's config as train.py composes it (Hydra's own part removed)."""
        cfg = compose_experiment([*self.overrides, *run.overrides, *self.extra], with_hydra=False)
        return OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))

    def check_before_window(self) -> None:
        """Everything a window will write to, and the records of every run, checked before it writes anything or
        starts any run: one sentence for the first thing wrong."""
        check_before_writing(self.directory, [run.name for run in self.runs])
        self.refuse_changed_runs()

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


def read_overrides(path: str) -> Optional[list[str]]:
    """The overrides a campaign.yaml holds (None when there is none), each checked (`check_overrides`); ConfigError
    for a file that is not the `overrides: [...]` mapping src/campaign.py writes."""
    if not os.path.exists(path):
        return None
    try:
        content = yaml.safe_load(read_yaml_text(path))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path} is not valid YAML ({getattr(error, 'problem', None) or 'unreadable'}{where}); "
                          f"restore it from the repository's history, or write it as {WRITTEN_AS}") from None
    if content is None:
        raise ConfigError(f"{path} is empty; restore it from the repository's history, or write it as {WRITTEN_AS}")
    if not isinstance(content, dict):
        raise ConfigError(f"{path} is not the mapping src/campaign.py writes; write it as {WRITTEN_AS}")
    unknown = [str(key) for key in content if key not in CAMPAIGN_KEYS]
    if unknown:
        raise ConfigError(f"{path} holds {', '.join(unknown)}, which a campaign file does not; it holds overrides (and "
                          "runs, listed for people): remove the rest")
    overrides = content.get("overrides")
    if not overrides:
        raise ConfigError(f"{path} has no overrides, so it names no grid; write them as {WRITTEN_AS}")
    if not isinstance(overrides, list):
        raise ConfigError(f"{path}: overrides is {overrides!r}, not a list; write them as a list, one override each: "
                          f"{WRITTEN_AS}")
    for item in overrides:
        if not isinstance(item, str):
            raise ConfigError(f"{path}: overrides holds {item!r}, which is not an override; write each as one string "
                              f"key=value: {WRITTEN_AS}")
    check_overrides(overrides, path)
    return overrides
