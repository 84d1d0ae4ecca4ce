"""OmegaConf resolvers the configs use (registered on `import osal`)."""

from typing import Optional

from omegaconf import OmegaConf

from osal.records.settings import directory_name_exclusions


def _suffix(text: Optional[str]) -> str:
    """'_' + text, or nothing for empty text: run directory names without a dangling separator."""
    text = str(text or "")
    return f"_{text}" if text else ""


def register() -> None:
    OmegaConf.register_new_resolver("osal_suffix", _suffix, replace=True)
    # conf/hydra/default.yaml: the overrides left out of run directory names, from the one list in osal.records
    OmegaConf.register_new_resolver("osal_exclude_keys", directory_name_exclusions, replace=True)
