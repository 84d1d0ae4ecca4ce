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
    if role == "detector":
        detector = cfg.strategy.get("detector") or cfg.get("detector")
        return detector.module, bool(detector.train_on_invalid)
    replaced = cfg.strategy.get("classifier")
    if replaced:
        return replaced.module, bool(replaced.train_on_invalid)
    return cfg.classifier, False
