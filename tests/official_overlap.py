"""osal's selections on the cases of scripts/official_regimes.py, and their overlap with the official ones that
scripts/official_checks.py stored as fixtures (tests/fixtures/official/)."""

import os
import sys

import numpy as np

SCRIPTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts")
sys.path.insert(0, SCRIPTS)

import official_regimes as regimes  # noqa: E402
from osal.strategies.base import PoolOutputs  # noqa: E402
from osal.strategies.bual import BUALStrategy  # noqa: E402
from osal.strategies.eaoa import EAOAStrategy  # noqa: E402
from osal.strategies.eoal import EOALStrategy  # noqa: E402
from osal.strategies.lfosa import LfOSA  # noqa: E402
from osal.strategies.mqnet import MQNetStrategy, informativeness, purity  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "official")


def outputs(method: str, case: regimes.Case) -> PoolOutputs:
    """What osal's strategy reads in this case (the pool in its global order, rows = indices)."""
    n = len(case.targets)
    if method == "lfosa":
        return PoolOutputs(np.arange(n), case.num_known, logits=case.logits)
    if method == "eoal":
        return PoolOutputs(np.arange(n), case.num_known,
                           logits=np.concatenate([case.logits, case.extra["one_vs_all"]], axis=1),
                           features=case.features, invalid_features=case.invalid_features)
    if method == "bual":
        return PoolOutputs(np.arange(n), case.num_known, logits=np.concatenate([case.logits, case.extra["nl_sums"]], 1),
                           classifier_logits=case.extra["classifier_logits"])
    if method == "mqnet":
        return PoolOutputs(np.arange(n), case.num_known, features=case.features,
                           classifier_logits=case.extra["classifier_logits"],
                           labeled_features=case.extra["labeled_features"])
    return PoolOutputs(np.arange(n), case.num_known, logits=case.logits, features=case.features,
                       classifier_logits=case.extra["classifier_logits"],
                       labeled_features=case.extra["labeled_features"],
                       labeled_targets=case.extra["labeled_targets"], invalid_features=case.invalid_features)


def selection(method: str, case: regimes.Case, strategy=None, k1: int = 5) -> np.ndarray:
    """osal's selection in `case`, with `strategy` (its default config when None); `k1`: EAOA's candidate-set size,
    or BUAL's official uncertainty type."""
    if method == "bual":
        strategy = strategy or BUALStrategy(regimes.BUAL_TYPES[k1])
        strategy.load_state_dict({"ratio": case.extra["ratio"], "unknowns_seen": not case.first_round})
    if strategy is None:
        strategy = {"eoal": EOALStrategy, "lfosa": LfOSA, "mqnet": lambda: MQNetStrategy(
            epochs=regimes.MQNET_EPOCHS, steps_per_epoch=regimes.MQNET_STEPS)}.get(
            method, lambda: EAOAStrategy(k_initial=k1))()
    rng = regimes.order_generator(case.seed)
    if method == "mqnet" and not case.first_round:  # the meta-network learned from the previous query
        delta = case.extra
        strategy.meta = strategy.train_meta(
            informativeness(delta["delta_logits"]), purity(delta["delta_features"], delta["labeled_features"]),
            delta["delta_logits"], delta["delta_answers"], seed=int(rng.integers(2 ** 63)))
    return strategy.query(outputs(method, case), case.budget, rng).indices


def overlaps(method: str, fixture, make_strategy=None, only: tuple = regimes.REGIMES) -> dict:
    """Per regime (those in `only`), the overlap of osal's selection with the official one, every stored case."""
    found = {regime: [] for regime in only}
    for key in fixture.files:
        if key == "commit":
            continue
        parts = key.split("/")
        regime, seed = parts[0], int(parts[1])
        if regime not in only:
            continue
        k1 = int(parts[2][1:]) if len(parts) > 2 else 5
        strategy = make_strategy(k1) if make_strategy else None
        case = regimes.case(method, regime, seed)
        found[regime].append(regimes.overlap(selection(method, case, strategy, k1), fixture[key]))
    return found
