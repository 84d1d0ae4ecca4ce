"""The two models of a round, detector and classifier: which config builds each, and each fit's seed.

Shared by the research loop (osal.loop.experiment) and annotation projects (osal.annotate).
"""

import numpy as np
from omegaconf import DictConfig

ROLES = {"classifier": 0, "detector": 1}


def fit_seed(seed: int, round_index: int, role: str) -> int:
    """A seed per (run seed, round, model): a round's weights do not depend on how earlier rounds ran."""
    return int(np.random.SeedSequence([int(seed), round_index, ROLES[role]]).generate_state(1)[0] % (2 ** 31))


def role_config(cfg: DictConfig, role: str) -> tuple[DictConfig, bool]:
    """(module factory config, whether it trains on the invalid set) of the detector or the classifier.

    The detector is the strategy's own (LfOSA and its variants), else a top-level `detector` when the
    config has one (annotation projects); a strategy may replace the classifier (the w/o-classifier
    ablation tests its K+1-way detector).
    """
    node = role_node(cfg, role)
    if role == "classifier" and not node:
        return cfg.classifier, False
    return node.module, bool(node.train_on_invalid)


def role_node(cfg: DictConfig, role: str) -> DictConfig:
    """The config node of a role (the strategy's `detector`, a top-level `detector`, a replaced classifier)."""
    if role == "detector":
        return cfg.strategy.get("detector") or cfg.get("detector")
    return cfg.strategy.get("classifier") or {}


def unlabeled_examples(cfg: DictConfig, role: str) -> int:
    """How many unlabeled examples a role's fit also trains on, as target -1: `train_on_unlabeled` (0 by
    default; "all": every one, -1 for ActivePool.training_set)."""
    value = role_node(cfg, role).get("train_on_unlabeled", 0) or 0
    return -1 if value == "all" else int(value)


def fits_once(cfg: DictConfig, role: str) -> bool:
    """Whether a role's module is fit once per run (`fit_once`: MQNet's self-supervised network), not every round."""
    return bool(role_node(cfg, role).get("fit_once", False))
