"""OpenMax (Bendale & Boult, CVPR 2016) as a query strategy: the least likely unknown first."""

import warnings
from typing import Union

import numpy as np
from scipy import special
from scipy.stats import weibull_min

from osal.errors import ConfigError
from osal.strategies.base import ROWS, PoolOutputs, Strategy, by_rows, softmax


class OpenMaxStrategy(Strategy):
    """Recalibrate the classifier's K activations into K+1 probabilities and query low P(unknown).

    Following the paper: per class, the mean activation vector (MAV) of the correctly
    classified labeled examples; a Weibull fit to the `tail_size` largest distances of
    those examples to their MAV (libMR's FitHigh); at query time the top `alpha_rank`
    classes of an example have their activations scaled by 1 - w_j * WeibullCDF(distance),
    w_j = (alpha - j) / alpha for rank j = 0..alpha-1; the removed mass is the unknown
    class's activation; softmax over K+1 gives P(unknown).

    Choices: activation vectors are the K logits; Euclidean distance (the paper's
    experiments used a Euclidean-cosine mix); the Weibull is fit with scipy with its
    location fixed at 0; a class with no correctly classified labeled example uses all of
    its labeled examples; a class with fewer than 3 of them gets a step CDF (0 up to its
    largest labeled distance, 1 beyond).
    """

    needs = ("logits", "labeled_logits")

    def __init__(self, tail_size: int = 20, alpha_rank: int = 10, chunk_size: int = ROWS) -> None:
        if int(tail_size) < 3 or int(alpha_rank) < 1:
            raise ConfigError(f"strategy.selector.tail_size={tail_size} must be >= 3 and alpha_rank={alpha_rank} "
                              ">= 1")
        self.tail_size, self.alpha_rank, self.chunk_size = int(tail_size), int(alpha_rank), max(int(chunk_size), 1)

    def fit(self, logits: np.ndarray, targets: np.ndarray,
            num_known: int) -> tuple[np.ndarray, list[tuple[str, Union[float, tuple[float, float]]]]]:
        """Per-class MAVs (K x K) and Weibull parameters (shape, scale) or a step threshold."""
        logits = np.asarray(logits, dtype=np.float64)[:, :num_known]
        targets = np.asarray(targets)
        correct = logits.argmax(axis=1) == targets
        means = np.zeros((num_known, num_known))
        models = []
        for c in range(num_known):
            members = logits[(targets == c) & correct]
            if len(members) == 0:
                members = logits[targets == c]
            if len(members) == 0:  # no labeled example of c at all: never claims anything
                means[c] = np.inf
                models.append(("step", 0.0))
                continue
            means[c] = members.mean(axis=0)
            tail = np.sort(np.linalg.norm(members - means[c], axis=1))[-self.tail_size:]
            if len(tail) < 3 or np.ptp(tail) == 0:
                models.append(("step", float(tail.max())))
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                shape, _, scale = weibull_min.fit(tail, floc=0.0)
            models.append(("weibull", (shape, scale)))
        return means, models

    def unknown_probability(self, outputs: PoolOutputs) -> np.ndarray:
        k = outputs.num_known
        means, models = self.fit(outputs.labeled_logits, outputs.labeled_targets, k)
        # per class: Weibull (shape, scale), or a step threshold (shape NaN); looked up per row, so the CDF is one
        # array expression per rank, not one scipy call per class
        step = np.array([kind == "step" for kind, _ in models])
        shape = np.array([np.nan if kind == "step" else params[0] for kind, params in models])
        scale = np.array([np.nan if kind == "step" else params[1] for kind, params in models])
        threshold = np.array([params if kind == "step" else np.nan for kind, params in models])
        # O(chunk x K) working memory, whatever the pool
        return by_rows(lambda block: self.recalibrated_unknown(block[:, :k], means, step, shape, scale, threshold),
                       outputs.logits, rows=self.chunk_size)

    def recalibrated_unknown(self, activations: np.ndarray, means: np.ndarray, step: np.ndarray, shape: np.ndarray,
                             scale: np.ndarray, threshold: np.ndarray) -> np.ndarray:
        """P(unknown) of each row: its top `alpha_rank` activations scaled by 1 - w_j * CDF(distance to the MAV)."""
        k = activations.shape[1]
        alpha = min(self.alpha_rank, k)
        # the top alpha classes in descending order: a partition, then a sort of those alpha only
        top = np.argpartition(-activations, alpha - 1, axis=1)[:, :alpha] if alpha < k else \
            np.broadcast_to(np.arange(k), activations.shape).copy()
        rows = np.arange(len(activations))[:, None]
        ranked = np.take_along_axis(top, np.argsort(-activations[rows, top], axis=1, kind="stable"), axis=1)
        omega = np.ones_like(activations)
        flat = rows[:, 0]
        for j in range(alpha):
            c = ranked[:, j]
            distance = np.linalg.norm(activations - means[c], axis=1)
            with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
                # scipy's weibull_min.cdf with loc 0, written out as scipy computes it: -expm1(-(d / scale) ** shape)
                cdf = np.where(step[c], (distance > threshold[c]).astype(float),
                               -special.expm1(-np.power(distance / scale[c], shape[c])))
            cdf = np.nan_to_num(cdf, nan=1.0)
            omega[flat, c] = 1.0 - (alpha - j) / alpha * cdf
        recalibrated = activations * omega
        unknown = (activations - recalibrated).sum(axis=1, keepdims=True)
        return softmax(np.hstack([recalibrated, unknown]))[:, k]

    def scores(self, outputs: PoolOutputs, rng: np.random.Generator) -> np.ndarray:
        return 1.0 - self.unknown_probability(outputs)
