"""Query strategies: one file each, all behind the contract in `base.py`.

The Hydra config group `conf/strategy/` is the registry: `strategy=<name>` picks the
file `conf/strategy/<name>.yaml`, whose `selector` is instantiated.
"""

from osal.strategies.base import PoolOutputs, Strategy

__all__ = ["PoolOutputs", "Strategy"]
