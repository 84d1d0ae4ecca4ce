"""Turning a closed-set dataset into the open-set protocol of the paper."""

import math

import numpy as np

from osal.errors import ConfigError


def num_known_classes(mismatch: float, num_classes: int) -> int:
    """K = round(mismatch x C): the paper's mismatch ratio is the fraction of known classes."""
    if not isinstance(mismatch, (int, float)) or not 0.0 < float(mismatch) < 1.0:
        raise ConfigError(f"mismatch={mismatch!r} must lie strictly between 0 and 1 (the fraction of classes "
                          "that are known); use e.g. mismatch=0.2")
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
    if not 0.0 < float(percent) <= 100.0:
        raise ConfigError(f"al.init_percent={percent} must lie in (0, 100]; it is the percentage of known-class "
                          "training examples labeled before the first query")
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
