"""Which `_target_`s osal instantiates: an allow-list, checked before anything is built.

A config names the classes Hydra builds (`_target_`), and a config may come from someone else: an
annotation project's config.yaml, a committed campaign's overrides. A `_target_` of `builtins.open`,
`shutil.copyfile` or `numpy.savetxt` would write any file the moment it is built, so every `_target_` must
resolve inside this list before anything is instantiated, whether it came from a file or the command line:

- osal's own building blocks: strategies, LightningModules and networks, image sources, the datamodule,
  its Hydra callbacks, and the few factory functions its configs name (OSAL_FUNCTIONS);
- what osal's config groups name from other packages, by family: torch optimisers and learning-rate
  schedulers, Lightning loggers and its Trainer, Hydra launchers and sweepers.

A name is resolved only once its prefix is one of the families' modules, and it must then resolve to a
class of the family's base (`osal.strategies.eoal.np.savetxt` starts like a strategy but is not one).
Logging configs' `()` factories (logging.config.dictConfig calls them) are refused on the command line too.

A person's own classes outside osal (a strategy of their own, a test's Hydra callback) are allowed by naming
them in the environment variable OSAL_EXTRA_TARGETS (comma-separated dotted names): the environment is the
person's, like the command line, and no file from others can set it.
"""

import importlib
import os
from typing import Any, Iterable, Optional

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, ListConfig

from osal.errors import ConfigError

# factory functions osal's configs instantiate (every other osal target is a class of a family below)
OSAL_FUNCTIONS = ("osal.data.split.split_open_set", "osal.models.network.build_network",
                  "osal.models.resnet.resnet18_encoder", "osal.models.frozen.frozen_features")
EXTRA_TARGETS = "OSAL_EXTRA_TARGETS"
TRAINERS = ("lightning.Trainer", "lightning.pytorch.Trainer", "pytorch_lightning.Trainer")
FIX = ("use one of osal's strategies, modules, sources or networks, a torch.optim optimiser or scheduler, a "
       "Lightning logger or a Hydra launcher (osal.targets lists what is allowed), or allow a class of your own "
       "by naming it in the environment variable OSAL_EXTRA_TARGETS")


def _osal_class(found: type) -> bool:
    import lightning.pytorch as pl
    import torch
    from hydra.experimental.callback import Callback

    from osal.strategies.base import Strategy
    if issubclass(found, (Strategy, pl.LightningModule, pl.LightningDataModule, torch.nn.Module, Callback)):
        return True
    # an image source (osal.data.sources.base.ImageSource is a Protocol: anything with load())
    return found.__module__.startswith("osal.data.sources.") and callable(getattr(found, "load", None))


def _scheduler(found: type) -> bool:
    from torch.optim import lr_scheduler
    base = getattr(lr_scheduler, "LRScheduler", None) or lr_scheduler._LRScheduler
    return issubclass(found, (base, lr_scheduler.ReduceLROnPlateau))


def _optimiser(found: type) -> bool:
    from torch.optim import Optimizer
    return issubclass(found, Optimizer)


def _logger(found: type) -> bool:
    from lightning.pytorch.loggers import Logger
    return issubclass(found, Logger)


def _hydra_plugin(found: type) -> bool:
    from hydra.plugins.launcher import Launcher
    from hydra.plugins.sweeper import Sweeper
    return issubclass(found, (Launcher, Sweeper))


# (module prefixes, what a class found there must be); the bases are imported only when a name needs them
FAMILIES = (
    (("osal.",), _osal_class),
    (("torch.optim.lr_scheduler.",), _scheduler),
    (("torch.optim.",), _optimiser),
    (("lightning.pytorch.loggers.", "lightning.loggers.", "pytorch_lightning.loggers."), _logger),
    (("hydra_plugins.", "hydra._internal.core_plugins."), _hydra_plugin),
)


def allowed(target: Any) -> bool:
    """Whether osal may instantiate `target` (a dotted name)."""
    if not isinstance(target, str) or not target or target != target.strip():
        return False
    if target in OSAL_FUNCTIONS or target in TRAINERS or target in extra_targets():
        return True
    for prefixes, belongs in FAMILIES:
        if target.startswith(prefixes):
            found = _locate(target)
            # a class of the family, defined in the family's own package (not a class imported into it)
            return (isinstance(found, type) and found.__module__.split(".")[0] == target.split(".")[0]
                    and belongs(found))
    return False


def extra_targets() -> set:
    """The dotted names the person allows besides osal's own (OSAL_EXTRA_TARGETS, comma-separated)."""
    return {name.strip() for name in os.environ.get(EXTRA_TARGETS, "").split(",") if name.strip()}


def _locate(target: str) -> Optional[object]:
    """The object a dotted name names, importing only its module (under an allowed prefix), or None."""
    parts = target.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attribute in parts[split:]:
            found = getattr(found, attribute, None)
        return found
    return None


def check_target(target: Any, source: str, key: str) -> None:
    """Raise ConfigError (one sentence naming `source` and `key`) unless `target` is on the allow-list."""
    if not allowed(target):
        raise ConfigError(f"{source} sets {key}={target}, which is not one of the things osal builds (a config may "
                          "come from someone else, so nothing outside osal's allow-list is instantiated); " + FIX)


def check_config_targets(cfg: Any, source: str, prefix: str = "") -> None:
    """Every `_target_` in a config (a DictConfig, ListConfig or plain dict/list), resolved, against the list;
    `source` names where the config came from, `prefix` the key of `cfg` in it."""
    for key, target in _targets(cfg, prefix):
        check_target(target, source, key)


def _targets(node: Any, prefix: str) -> Iterable[tuple[str, Any]]:
    if isinstance(node, (DictConfig, dict)):
        keys = list(node.keys())
        for key in keys:
            name = f"{prefix}{key}"
            if key == "_target_" or key == "()":
                yield name, _value(node, key)
            else:  # interpolations too, resolved: a resolver (oc.create) can make a node with a _target_
                yield from _targets(_value(node, key), name + ".")
    elif isinstance(node, (ListConfig, list, tuple)):
        for i in range(len(node)):
            yield from _targets(_value(node, i), f"{prefix}{i}.")


def _value(node: Any, key: Any) -> Any:
    try:
        return node[key]
    except Exception:  # noqa: BLE001  an interpolation that does not resolve: no target can come of it here
        return None


# the options of a Hydra app's command line that take a value (everything else not starting with "-" is an override)
HYDRA_OPTIONS_WITH_VALUES = ("-cp", "--config-path", "-cn", "--config-name", "-cd", "--config-dir",
                             "--experimental-rerun", "-p", "--package")


def command_line_overrides(argv: Iterable[str]) -> list[str]:
    """The overrides of a Hydra app's command line (its options and their values left out)."""
    overrides, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg.startswith("-"):
            skip = arg in HYDRA_OPTIONS_WITH_VALUES
        else:
            overrides.append(arg)
    return overrides


def check_overrides(overrides: Iterable[str], where: str = "the command line") -> None:
    """Every `_target_` (or logging `()` factory) set by overrides, checked before Hydra composes them (Hydra
    builds its callbacks and launcher before any osal code runs). A malformed override is Hydra's to report."""
    parser = OverridesParser.create()
    for text in overrides:
        try:
            override = parser.parse_override(text)
            values = list(override.sweep_iterator()) if override.is_sweep_override() else [override.value()]
        except Exception:  # noqa: BLE001  Hydra refuses it with its own message when it composes
            continue
        key = override.key_or_group
        for value in values:
            if key.split(".")[-1] in ("_target_", "()"):
                check_target(value, where, key)
            else:
                check_config_targets(value, where, prefix=key + ".")
