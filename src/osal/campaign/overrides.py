"""What a campaign's grid may say.

The campaign's overrides (campaign.yaml, the command line) and each run's own (the experiment's
campaign.stages) end up on the command line of every `train.py` the campaign starts, and campaign.yaml is
whoever committed it last. `check_overrides` is the one place all of them are checked, before anything is
composed or started.
"""

from typing import Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException

from osal.errors import ConfigError, brief
from osal.targets import check_overrides as check_targets

# keys the campaign sets for every run itself, and why a grid may not: what a window keeps depends on them
CAMPAIGN_OWN = {
    "fresh": "the campaign would keep it and start every run again in every window, so it would never advance; "
             "leave fresh out (to start again, give the campaign a new directory)",
    "deadline": "each window gives its runs the window's own end as their deadline; leave deadline out "
                "(--seconds sets the window)",
    "hydra.run.dir": "each run writes to its own folder under runs/ of the campaign; leave hydra.run.dir out",
}
# where the machine that runs a window keeps its data: a path in a committed campaign.yaml would send every machine's
# reads, downloads and decode caches there
MACHINES_OWN = ("data_dir", "cache_dir", "dataset.source.root", "dataset.source.cache_dir")
EXAMPLE = "experiment=campaign_demo al.rounds=5"


def is_hydras_own(name: str) -> bool:
    """Whether a key, config group or package names Hydra's own config (hydra.*, hydra/launcher, @hydra...)."""
    name = name[len("_global_."):] if name.startswith("_global_.") else name
    return name == "hydra" or name.startswith(("hydra.", "hydra/"))


def check_overrides(overrides: Sequence[str], where: str) -> None:
    """Raise ConfigError, one sentence naming the override and `where` it came from (a file, the command line,
    the experiment's campaign.stages), for an override a campaign's grid may not hold: one Hydra cannot read,
    one of Hydra's own config (hydra.*, which the campaign sets for its runs), a key the campaign sets itself
    (fresh, deadline, hydra.run.dir), a path of the machine's (data_dir, cache_dir, ...) or a `_target_` outside
    osal's allow-list (osal.targets)."""
    parser = OverridesParser.create()
    for text in overrides:
        try:
            parsed = parser.parse_override(text)
        except HydraException as error:
            raise ConfigError(f"{text} in {where} is not an override Hydra can read ({brief(error)}); write each as "
                              f"key=value, e.g. {EXAMPLE}") from None
        key, package = parsed.key_or_group, parsed.package or ""
        if key in CAMPAIGN_OWN:
            raise ConfigError(f"{text} in {where} is refused: {CAMPAIGN_OWN[key]}")
        if key in MACHINES_OWN:
            raise ConfigError(f"{text} in {where} is refused: where a machine keeps its data is not part of the grid "
                              "(campaign.yaml is committed, and would send every machine there); give it to each "
                              "window with --data-dir (and OSAL_CACHE_DIR for the decode cache)")
        if is_hydras_own(key) or is_hydras_own(package):
            raise ConfigError(f"{text} in {where} is refused: Hydra's own config (hydra.*) is the campaign's to set "
                              "for its runs, not the grid's; leave it out (a grid's overrides say what its runs "
                              f"compute, e.g. {EXAMPLE})")
    check_targets(overrides, where)  # a _target_ outside osal's allow-list
