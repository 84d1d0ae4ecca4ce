"""osal: active learning under open-set annotation (LfOSA and baselines)."""

__version__ = "0.1.0"
