"""A run's .hydra/config.yaml and .hydra/overrides.yaml, read as files that may come from others.

A report folder may hold runs copied from colleagues or from Git, or folders of other Hydra programs: each
reader here refuses what an osal run would not hold with an `UnusableRun` sentence naming the file and the
fix, and the report leaves that run out instead of stopping at a traceback.
"""

import io
import math
import os
from typing import Union

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from osal.errors import OsalError, brief
from osal.report.duplicates import blank_result_neutral
from osal.stored import read_yaml_text


class UnusableRun(OsalError):
    """A run folder whose files the report cannot use; the report lists it with this sentence."""


# what the report reads of a run's config: key -> (check, what the value must be)
FIELDS = {"dataset.name": (lambda v: isinstance(v, str) and v != "", "a name"),
          "mismatch": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
                       "a number"),
          "strategy.name": (lambda v: isinstance(v, str) and v != "", "a name"),
          "seed": (lambda v: isinstance(v, int) and not isinstance(v, bool), "a whole number"),
          "al.rounds": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "a whole number")}
_ABSENT = object()


def load_yaml(path: Union[str, os.PathLike], fix: str) -> Union[DictConfig, ListConfig]:
    text = read_yaml_text(path)  # an LFS pointer or merge-conflict markers get their own sentence
    try:
        return OmegaConf.load(io.StringIO(text))
    except (yaml.YAMLError, OmegaConfBaseException, OSError, ValueError) as error:
        # OmegaConf.load says OSError for YAML that is not a mapping or a list
        raise UnusableRun(f"{path} is not valid YAML ({_yaml_problem(error)}); {fix}") from None


def _yaml_problem(error: Exception) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None)
    if problem and mark is not None:
        return f"{problem} on line {mark.line + 1}"
    return brief(error)


def run_config(path: Union[str, os.PathLike], fix: str) -> tuple[dict, dict]:
    """(the FIELDS' values, the whole config resolved, settings that change no result blanked) of a run's
    .hydra/config.yaml.

    UnusableRun when the file is not valid YAML, lacks a field (a folder of another Hydra program), does not
    resolve, or holds a field of the wrong kind (a seed that is text).
    """
    config = load_yaml(path, fix)
    plain = OmegaConf.to_container(config) if isinstance(config, DictConfig) else {}
    missing = [key for key in FIELDS if _get(plain, key) is _ABSENT]
    if missing:
        raise UnusableRun(f"{path} is not an osal run's config (it lacks {', '.join(missing)}); {fix}")
    try:
        resolved = OmegaConf.to_container(OmegaConf.create(blank_result_neutral(plain)), resolve=True)
    except OmegaConfBaseException as error:
        # OmegaConf's own lines after the first say where, which full_key says shorter
        problem = str(error).splitlines()[0] if str(error).strip() else type(error).__name__
        raise UnusableRun(f"{path} does not resolve ({problem}, at {error.full_key}); {fix}") from None
    fields = {key: _get(resolved, key) for key in FIELDS}
    for key, (fits, kind) in FIELDS.items():
        if not fits(fields[key]):
            raise UnusableRun(f"{path}: {key} is {fields[key]!r}, not {kind}; {fix}")
    return fields, resolved


def _get(config: dict, dotted: str):
    for key in dotted.split("."):
        if not isinstance(config, dict) or key not in config:
            return _ABSENT
        config = config[key]
    return config


def command_line(directory: Union[str, os.PathLike], fix: str) -> dict:
    """{key: value} of the overrides the run was started with (.hydra/overrides.yaml), hydra.* left out."""
    path = os.path.join(directory, ".hydra", "overrides.yaml")
    if not os.path.exists(path):
        return {}
    loaded = load_yaml(path, fix)
    overrides = OmegaConf.to_container(loaded) if isinstance(loaded, ListConfig) else None  # as written, unresolved
    if overrides is None or not all(isinstance(item, str) for item in overrides):
        raise UnusableRun(f"{path} is not the list of overrides Hydra writes; {fix}")
    pairs = [str(item).split("=", 1) for item in overrides]
    return {key.lstrip("+~"): value for key, value in (p for p in pairs if len(p) == 2)
            if not key.lstrip("+~").startswith("hydra")}
