"""`hydra.utils.instantiate` that lets osal's own errors through unwrapped.

Every `_target_` is checked against osal's allow-list first (osal.targets). Hydra wraps whatever a
constructor raises in an InstantiationException, which would turn
a one-sentence ConfigError into a traceback; the original OsalError is raised instead.
"""

from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from osal.errors import OsalError
from osal.targets import check_config_targets


def build(config: DictConfig, *args: Any, **kwargs: Any) -> Any:
    check_config_targets(config, "building")  # the allow-list, again here, for a config no check saw whole
    try:
        return instantiate(config, *args, **kwargs)
    except InstantiationException as error:
        cause = error.__cause__
        while cause is not None and not isinstance(cause, OsalError):
            cause = cause.__cause__
        if cause is not None:
            raise cause from None
        raise
