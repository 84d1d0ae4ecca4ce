"""Checks of the run's knobs before any data is read or any model trained."""

from omegaconf import DictConfig

from osal.data.open_set import check_init_percent, check_mismatch, check_openness, num_known_classes
from osal.data.split import OpenSetSplit
from osal.errors import ConfigError
from osal.knobs import check_config
from osal.models.frozen import check_pretrained
from osal.strategies.base import Strategy, check_query_model


def validate_config(cfg: DictConfig) -> None:
    """Raise ConfigError with one sentence naming the value and the fix: every knob's own range
    (osal.knobs), then the protocol's knobs that depend on one another."""
    check_config(cfg)
    check_mismatch(cfg.mismatch)
    if cfg.dataset.get("num_classes"):
        num_known_classes(cfg.mismatch, int(cfg.dataset.num_classes))
    check_openness(cfg.get("openness"))
    check_init_percent(cfg.al.init_percent)
    model = cfg.get("model") or {}
    check_pretrained(model.get("pretrained"), bool(model.get("freeze")))


def validate_against_data(cfg: DictConfig, split: OpenSetSplit) -> None:
    """Checks that need the loaded data (pool size, class count) of an OpenSetSplit."""
    expected = cfg.dataset.get("num_classes")
    found = len(split.class_names)
    if expected and int(expected) != found:
        raise ConfigError(f"dataset={cfg.dataset.name} expects {expected} classes but data_dir={cfg.data_dir} "
                          f"holds {found}; point data_dir at a copy of {cfg.dataset.name}")
    pool = len(split.pool.unlabeled)
    if int(cfg.al.query_size) > pool:
        raise ConfigError(f"al.query_size={cfg.al.query_size} is larger than the unlabeled pool ({pool} examples); "
                          f"lower al.query_size to at most {pool}")


def validate_strategy(cfg: DictConfig, strategy: Strategy) -> None:
    """The strategy's query model must exist in its config."""
    check_query_model(strategy.query_model, f"strategy {cfg.strategy.name}'s query_model")
    if strategy.query_model == "detector" and not cfg.strategy.get("detector"):
        raise ConfigError(f"strategy {cfg.strategy.name} queries with a detector but strategy.detector is not "
                          "configured; add it (see conf/strategy/lfosa.yaml) or query with the classifier")
