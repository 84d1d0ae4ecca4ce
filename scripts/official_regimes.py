"""Seeded synthetic network outputs in named regimes, on which osal's query functions are checked against the
official ones (scripts/official_checks.py writes the official selections as fixtures under tests/; the tests
regenerate these outputs from the same seeds and compare osal's selections with them).

Every case is a pool of `POOL` examples of K known classes and unknown ones, 128-dimensional features (the
official networks' width), the outputs a query function reads, and the order in which the official pool loader
(a SubsetRandomSampler) presents the pool. Regimes:

* soft:      features in loose class clusters, logits of moderate size;
* sharp:     the same clusters, logits five times larger (confident networks);
* tight:     tight feature clusters (FINCH's hierarchy and its 0.1.9 early stop matter most);
* scarce:    few examples look known (the detector calls most of the pool unknown; EAOA's classes run short);
* saturated: scores in two tight, far-apart modes, so that float32 posteriors (EAOA's GMMs) and EOAL's
             one-vs-all probabilities are exactly 0 or 1 for much of the pool: the order among ties decides.

Odd seeds are later rounds (unknowns were queried: an invalid set), even seeds the first round.
"""

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

REGIMES = ("soft", "sharp", "tight", "scarce", "saturated")
METHODS = ("eoal", "eaoa", "lfosa", "mqnet", "bual")
SEEDS = 20
POOL, KNOWN, DIM, BUDGET = 600, 6, 128, 60
INVALID = 150  # FINCH 0.1.9 (EOAL's) raises where the invalid set's first partition has fewer than K clusters
FINCH_SIZES = (300, 1500)  # points of the FINCH checks (tests/fixtures/official/finch-0.1.9.npz)
# MQNet's meta-network in the checks: the official 100 epochs, 10 steps each (the official default is 100 steps;
# fewer keep the 200 official trainings of a check run within minutes on a CPU); QueryNet's inputs are standardised
MQNET_EPOCHS, MQNET_STEPS = 100, 10


@dataclass
class Case:
    """One synthetic round: what the official query function and osal's read."""
    regime: str
    seed: int
    num_known: int
    budget: int
    targets: np.ndarray        # pool labels: 0..K-1 known, K unknown
    features: np.ndarray       # pool features (n, DIM), float32
    logits: np.ndarray         # the detector's K+1 logits, float32
    extra: dict = field(default_factory=dict)  # per method: one-vs-all logits, classifier logits, labeled set ...
    invalid_features: Optional[np.ndarray] = None
    order: Optional[np.ndarray] = None  # the official loader's order of the pool rows

    @property
    def first_round(self) -> bool:
        return self.invalid_features is None


def case(method: str, regime: str, seed: int) -> Case:
    """The seeded case of `method` in `regime`: the same arrays on every machine (numpy's PCG64 and its normal
    and integer draws are platform-independent)."""
    if method not in METHODS or regime not in REGIMES:
        raise ValueError(f"no case for method={method!r}, regime={regime!r}: methods {METHODS}, regimes {REGIMES}")
    rng = np.random.default_rng([METHODS.index(method), REGIMES.index(regime), seed])
    k, n = KNOWN, POOL
    spread = {"tight": 0.15, "soft": 0.8, "sharp": 0.8, "scarce": 0.8, "saturated": 0.15}[regime]
    scale = {"soft": 1.0, "sharp": 5.0, "tight": 1.0, "scarce": 1.0, "saturated": 1.0}[regime]
    unknown_classes = 4
    centres = rng.normal(size=(k + unknown_classes, DIM))
    classes = rng.integers(0, k + unknown_classes, n)
    features = (centres[classes] + spread * rng.normal(size=(n, DIM))).astype(np.float32)
    targets = np.minimum(classes, k)
    # logits: similarity to the known centres (with noise), the unknown column high for unknown-looking rows
    weights = centres[:k] / np.linalg.norm(centres[:k], axis=1, keepdims=True)
    known_logits = features @ weights.T / np.sqrt(DIM) + 0.5 * rng.normal(size=(n, k))
    unknown_logit = 0.8 * (classes >= k) + 0.6 * rng.normal(size=n) + (1.5 if regime == "scarce" else 0.0)
    if regime == "saturated":  # two tight, far-apart modes: the GMMs' posteriors round to exactly 0 and 1
        known_logits = 0.2 * rng.normal(size=(n, k)) + 8.0 * (np.arange(k)[None, :] == classes[:, None])
        unknown_logit = np.where(classes >= k, 8.0, -8.0) + 0.2 * rng.normal(size=n)
    logits = (scale * np.column_stack([known_logits, unknown_logit])).astype(np.float32)
    result = Case(regime, seed, k, BUDGET, targets, features, logits, order=order_generator(seed).permutation(n))
    if seed % 2:  # a later round: the unknowns queried so far
        invalid = rng.integers(k, k + unknown_classes, INVALID)
        result.invalid_features = (centres[invalid] + spread * rng.normal(size=(INVALID, DIM))).astype(np.float32)
    if method == "lfosa":  # the detector's logits alone
        return result
    if method == "mqnet":
        return mqnet_case(result, rng, centres, spread, scale, known_logits, unknown_classes)
    if method == "bual":
        return bual_case(result, rng, scale, known_logits)
    if method == "eoal":
        positive = (3.0 if regime == "saturated" else scale) * (known_logits - known_logits.mean(axis=1, keepdims=True))
        result.extra["one_vs_all"] = np.concatenate([np.zeros((n, k)), positive], axis=1).astype(np.float32)
    else:
        classifier = scale * (known_logits + 0.3 * rng.normal(size=(n, k)))
        if regime == "saturated":  # half the pool confidently one class, half undecided
            classifier = 0.2 * rng.normal(size=(n, k)) + 8.0 * (rng.random(n) < 0.5)[:, None] * (
                np.arange(k)[None, :] == rng.integers(0, k, n)[:, None])
        result.extra["classifier_logits"] = classifier.astype(np.float32)
        labeled = rng.integers(0, k, 60)
        labeled[:k] = np.arange(k)  # every known class has labeled examples
        result.extra["labeled_targets"] = labeled
        result.extra["labeled_features"] = (centres[labeled] + spread * rng.normal(size=(60, DIM))).astype(
            np.float32)
    return result


def mqnet_case(result: Case, rng: np.random.Generator, centres: np.ndarray, spread: float, scale: float,
               known_logits: np.ndarray, unknown_classes: int) -> Case:
    """MQNet's case: `features` are the CSI network's SimCLR projections, the classifier's logits, the labeled
    (known) examples' projections and, in a later round, the previous query (`delta_*`: its projections, the
    classifier's logits and the oracle's answers, -1 for unknown) that the meta-network learns from."""
    k, n = result.num_known, len(result.targets)
    classifier = scale * (known_logits + 0.3 * rng.normal(size=(n, k)))
    if result.regime == "saturated":  # half the pool confidently one class, half undecided
        classifier = 0.2 * rng.normal(size=(n, k)) + 8.0 * (rng.random(n) < 0.5)[:, None] * (
            np.arange(k)[None, :] == rng.integers(0, k, n)[:, None])
    result.extra["classifier_logits"] = classifier.astype(np.float32)
    labeled = rng.integers(0, k, 60)
    result.extra["labeled_features"] = (centres[labeled] + spread * rng.normal(size=(60, DIM))).astype(np.float32)
    if not result.first_round:
        classes = rng.integers(0, k + unknown_classes, BUDGET)
        result.extra["delta_features"] = (centres[classes] + spread * rng.normal(size=(BUDGET, DIM))).astype(
            np.float32)
        weights = centres[:k] / np.linalg.norm(centres[:k], axis=1, keepdims=True)
        logits = result.extra["delta_features"] @ weights.T / np.sqrt(DIM) + 0.5 * rng.normal(size=(BUDGET, k))
        result.extra["delta_logits"] = (scale * logits).astype(np.float32)
        result.extra["delta_answers"] = np.where(classes < k, classes, -1)
    return result


def bual_case(result: Case, rng: np.random.Generator, scale: float, known_logits: np.ndarray) -> Case:
    """BUAL's case: `logits` are the auxiliary network's K+1 logits, `nl_sums` the sum of the negative-learning
    head's softmax over its 21 snapshots (float32, as osal's query network adds them), the classifier's logits,
    and the previous query's precision `ratio` (0 in a first round, where no unknown was queried yet: no
    auxiliary network)."""
    k, n = result.num_known, len(result.targets)
    snapshots = []
    for step in range(21):  # the snapshots sharpen as negative learning goes on
        logits = (0.1 + step / 10) * scale * known_logits + 0.5 * rng.normal(size=(n, k))
        snapshots.append(np.exp(logits - logits.max(axis=1, keepdims=True)))
    result.extra["nl_sums"] = sum(s / s.sum(axis=1, keepdims=True) for s in snapshots).astype(np.float32)
    classifier = scale * (known_logits + 0.3 * rng.normal(size=(n, k)))
    if result.regime == "saturated":
        classifier = 0.2 * rng.normal(size=(n, k)) + 8.0 * (rng.random(n) < 0.5)[:, None] * (
            np.arange(k)[None, :] == rng.integers(0, k, n)[:, None])
    result.extra["classifier_logits"] = classifier.astype(np.float32)
    result.extra["ratio"] = 0.0 if result.first_round else float(rng.uniform(0.1, 0.9))
    return result


BUAL_TYPES = {1: "least_confidence", 2: "margin", 3: "entropy"}  # the official --type and osal's uncertainty


def order_generator(seed: int) -> np.random.Generator:
    """The generator whose first draw, a permutation of the pool, is the official loader's order; osal's
    strategies get a generator seeded alike, so where they draw the same order (EAOA's ties) they can agree."""
    return np.random.default_rng([7, seed])


def gmm_seed(seed: int) -> int:
    """The seed of the global numpy generator the official EAOA's GMMs draw from: the one osal's EAOA seeds its
    GMMs' generator with (its second draw, after the loader order), so that both fit from the same starts."""
    generator = order_generator(seed)
    generator.permutation(POOL)
    return int(generator.integers(0, 2 ** 31 - 1))


def finch_points(regime: str, seed: int, n: int) -> np.ndarray:
    """Features for the FINCH hierarchy checks: 10 groups at the regime's spread, or unstructured."""
    rng = np.random.default_rng([9, REGIMES.index(regime), seed, n])
    if regime == "scarce":  # no structure at all: the deepest hierarchies
        return rng.normal(size=(n, DIM)).astype(np.float32)
    spread = {"tight": 0.1, "soft": 0.6, "sharp": 0.3, "saturated": 1.5}[regime]
    centres = rng.normal(size=(10, DIM))
    return (centres[rng.integers(0, 10, n)] + spread * rng.normal(size=(n, DIM))).astype(np.float32)


def overlap(ours: np.ndarray, official: np.ndarray) -> float:
    """The share of the official selection that osal's selection holds too."""
    official = np.asarray(official)
    return len(np.intersect1d(ours, official)) / max(len(official), 1)
