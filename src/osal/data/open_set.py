"""Turning a closed-set dataset into the open-set protocol of the paper."""

import math

import numpy as np

from osal.errors import ConfigError


def check_mismatch(mismatch: object) -> None:
    """The paper's mismatch ratio: a number strictly between 0 and 1, else a ConfigError."""
    if not isinstance(mismatch, (int, float)) or isinstance(mismatch, bool) or not 0.0 < float(mismatch) < 1.0:
        raise ConfigError(f"mismatch={mismatch!r} must lie strictly between 0 and 1 (the fraction of classes "
                          "that are known); use e.g. mismatch=0.2")


def check_init_percent(percent: object) -> None:
    """The initial labeled share in percent: in (0, 100], else a ConfigError."""
    if isinstance(percent, bool) or not isinstance(percent, (int, float)) or not 0.0 < float(percent) <= 100.0:
        raise ConfigError(f"al.init_percent={percent} must lie in (0, 100]; it is the percentage of known-class "
                          "training examples labeled before the first query")


def num_known_classes(mismatch: float, num_classes: int) -> int:
    """K = round(mismatch x C): the paper's mismatch ratio is the fraction of known classes."""
    check_mismatch(mismatch)
    if num_classes < 3:
        raise ConfigError(f"the dataset has {num_classes} class(es); open-set active learning needs at least 3 "
                          "(two or more known classes and one or more unknown), so add classes to the data")
    k = int(math.floor(mismatch * num_classes + 0.5))  # round half up, not Python's banker's rounding
    if k < 2 or k >= num_classes:
        raise ConfigError(f"mismatch={mismatch} gives {k} known class(es) out of {num_classes}; choose a mismatch "
                          f"that leaves at least two known classes and one unknown class: from "
                          f"{math.ceil(1500 / num_classes) / 1000:.3f} up to {(num_classes - 0.5) / num_classes:.3f} "
                          f"(excluded) for {num_classes} classes")
    return k


def initial_labeled_set(labels: np.ndarray, num_known: int, percent: float, rng: np.random.Generator,
                        stratified: bool = False) -> np.ndarray:
    """Global indices of the initial labeled set: `percent` % of the known-class training examples.

    Not stratified by default, as in the authors' code; `stratified=True` draws the same
    percentage from each known class.
    """
    check_init_percent(percent)
    labels = np.asarray(labels)
    known = np.flatnonzero(labels < num_known)
    groups = [known[labels[known] == c] for c in range(num_known)] if stratified else [known]
    chosen = []
    for group in groups:
        n = int(round(len(group) * percent / 100.0))
        chosen.append(rng.choice(group, size=n, replace=False))
    chosen = np.sort(np.concatenate(chosen)).astype(np.int64)
    if len(chosen) == 0:
        raise ConfigError(f"al.init_percent={percent} of {len(known)} known-class examples labels no example; "
                          "raise al.init_percent")
    missing = sorted(set(range(num_known)) - set(labels[chosen].tolist()))
    if missing:
        # a class without a labeled example can never be learned, and its examples never be recognised
        raise ConfigError(f"al.init_percent={percent} labels no example of known class {missing[0]} "
                          f"({len(missing)} known class(es) empty); raise al.init_percent or set "
                          "al.init_stratified=true")
    return chosen


def check_openness(openness: object) -> None:
    """None, or a number in [0, 1); anything else is a ConfigError."""
    if openness is not None and (isinstance(openness, bool) or not isinstance(openness, (int, float))
                                 or not 0.0 <= float(openness) < 1.0):
        raise ConfigError(f"openness={openness!r} must lie in [0, 1): the fraction of the unlabeled pool that is "
                          "unknown (0 = closed-set); use e.g. openness=0.5, or null for the data as it is")


def openness_subset(labels: np.ndarray, num_known: int, initial: np.ndarray, openness: float,
                    rng: np.random.Generator) -> np.ndarray:
    """Sorted global indices of the training examples kept so that a fraction `openness` of the unlabeled pool
    is unknown (the paper's Fig. 7: 0 is closed-set).

    The initial labeled set is always kept. Below the data's own fraction, a seeded random subset of the
    unknown examples is kept (every unknown class may stay, with fewer examples); above it, every unknown
    example stays and a seeded subset of the known pool examples is kept.
    """
    check_openness(openness)
    labels = np.asarray(labels)
    unknown = np.flatnonzero(labels >= num_known)
    known_pool = np.setdiff1d(np.flatnonzero(labels < num_known), initial)
    natural = len(unknown) / max(len(unknown) + len(known_pool), 1)
    if openness <= natural:
        keep_unknown = int(round(openness * len(known_pool) / (1.0 - openness)))
        unknown = rng.choice(unknown, size=min(keep_unknown, len(unknown)), replace=False)
    else:
        keep_known = int(round(len(unknown) * (1.0 - openness) / openness))
        known_pool = rng.choice(known_pool, size=min(keep_known, len(known_pool)), replace=False)
    if len(unknown) + len(known_pool) == 0:
        raise ConfigError(f"openness={openness} leaves no unlabeled example; choose another openness")
    return np.sort(np.concatenate([np.asarray(initial), known_pool, unknown]).astype(np.int64))
