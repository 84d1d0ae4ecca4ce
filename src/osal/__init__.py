"""osal: active learning under open-set annotation (LfOSA and baselines)."""

from osal.resolvers import register as _register_resolvers

__version__ = "0.1.0"

_register_resolvers()
