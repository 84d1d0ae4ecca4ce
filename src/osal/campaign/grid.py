"""A campaign's runs, in priority order, from a Hydra experiment config.

An experiment lists its runs as `campaign.stages`: each stage is a sweep (`key: "a,b,c"` or a single
value), expanded in the order its keys are written; stages run in the order listed, so the runs that
matter most come first. An experiment without stages is one stage, its `hydra.sweeper.params`. Every run's
overrides pass `overrides.check_overrides`, as the campaign's own do.
"""

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from osal.campaign.overrides import check_overrides
from osal.errors import ConfigError

CONF_DIR = Path(__file__).resolve().parents[3] / "conf"


@dataclass
class Run:
    """One run of a campaign: its directory name and the overrides that make it."""
    name: str
    overrides: list = field(default_factory=list)


def compose_experiment(overrides: Sequence[str], with_hydra: bool = True) -> DictConfig:
    """conf/train.yaml with `overrides` (which name the experiment), with Hydra's own config or without."""
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose("train", overrides=list(overrides), return_hydra_config=with_hydra)
    except (HydraException, OmegaConfBaseException) as error:
        raise ConfigError(f"the campaign's overrides {' '.join(overrides)} do not compose "
                          f"({str(error).splitlines()[0]}); correct or leave out the override it names") from None


def stages(cfg: DictConfig) -> list:
    """[{key: [values]}] of the experiment, in order."""
    listed = OmegaConf.select(cfg, "campaign.stages")
    if listed is None:
        params = OmegaConf.select(cfg, "hydra.sweeper.params")
        if not params:
            raise ConfigError("the experiment defines neither campaign.stages nor hydra.sweeper.params: a campaign "
                              "needs runs; add campaign.stages to the experiment (see conf/experiment/"
                              "reproduce_cifar10.yaml)")
        listed = [params]
    def values(given: Any) -> list:  # a list of values, or one value or a comma-separated sweep
        return [str(v) for v in given] if isinstance(given, list) else [v.strip() for v in str(given).split(",")]

    return [{str(k): values(v) for k, v in stage.items()} for stage in OmegaConf.to_container(listed, resolve=True)]


def run_name(pairs: Iterable[tuple[str, str]]) -> str:
    """A directory name from (key, value) pairs: dataset_mismatch0.2_strategy_seed1[_key=value...]."""
    given = dict(pairs)
    parts = [given.pop("dataset", "data"), f"mismatch{given.pop('mismatch', '')}", given.pop("strategy", "lfosa"),
             f"seed{given.pop('seed', '1')}"]
    parts += [f"{key}={value}" for key, value in given.items()]
    return re.sub(r"[^A-Za-z0-9_.=,+-]", "-", "_".join(parts))


def expand(cfg: DictConfig) -> list:
    """Every run of the experiment once, stage by stage."""
    runs, seen = [], set()
    for stage in stages(cfg):
        keys = list(stage)
        for values in itertools.product(*(stage[k] for k in keys)):
            pairs = list(zip(keys, values))
            name = run_name(pairs)
            if name not in seen:
                seen.add(name)
                runs.append(Run(name, [f"{k}={v}" for k, v in pairs]))
                check_overrides(runs[-1].overrides, "the experiment's campaign.stages")
    return runs


def experiment_names() -> list:
    folder = CONF_DIR / "experiment"
    return sorted(path.relative_to(folder).with_suffix("").as_posix() for path in folder.rglob("*.yaml"))


def check_experiment(overrides: Sequence[str]) -> None:
    """Raise ConfigError unless the campaign's overrides name one experiment of conf/experiment/ (Hydra composes
    an unknown one as none, since the group is optional)."""
    parser = OverridesParser.create()
    named = [o for o in parser.parse_overrides(list(overrides)) if o.key_or_group == "experiment"]
    known = experiment_names()
    value = named[-1].value() if named else None
    if isinstance(value, str) and value in known:
        return
    given = f"experiment={named[-1].get_value_element_as_str()} names no experiment of conf/experiment/" if named \
        else f"the campaign's overrides ({' '.join(overrides) or 'none'}) name no experiment"
    raise ConfigError(f"{given}; a campaign is an experiment's grid: give experiment=<name>, one of "
                      f"{', '.join(known)}")
