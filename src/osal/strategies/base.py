"""The strategy contract: predictions in; a Selection out (global indices, highest priority first, and the
per-example scores they were ranked by)."""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional, Sequence

import numpy as np

from osal.errors import ConfigError

if TYPE_CHECKING:  # only BALD-like strategies need torch at run time
    import torch


@dataclass
class PoolOutputs:
    """What inference produced, row i of every pool array belonging to global index `indices[i]`.

    Pool arrays: `logits` (the query model's raw outputs: K for the classifier, K+1 for
    the detector, whose last column is the unknown class), `features` (penultimate
    activations), `mc_probabilities` (T x n x C softmax outputs with dropout active),
    `mc_scores` (one number per example: the strategy's `reduce_mc_samples` of its T dropout
    samples, computed batch by batch during inference so T x n x C is never held at once),
    `classifier_logits` (a detector-based strategy's view of the pool through the classifier
    trained on the same labels: EAOA's aleatoric score).
    Labeled-set arrays (for strategies that compare the pool with what is labeled):
    `labeled_features`, `labeled_logits` and `labeled_targets`; `invalid_features` of the
    queried unknowns. A strategy reads only what it lists in `needs`.
    """

    indices: np.ndarray
    num_known: int
    logits: Optional[np.ndarray] = None
    features: Optional[np.ndarray] = None
    mc_probabilities: Optional[np.ndarray] = None
    mc_scores: Optional[np.ndarray] = None
    labeled_features: Optional[np.ndarray] = None
    labeled_logits: Optional[np.ndarray] = None
    labeled_targets: Optional[np.ndarray] = None
    classifier_logits: Optional[np.ndarray] = None
    invalid_features: Optional[np.ndarray] = None
    scored_by_rank: Optional[list] = None  # under DDP, how many pool rows each process scored (bookkeeping)

    def __post_init__(self) -> None:
        self.indices = np.asarray(self.indices, dtype=np.int64)
        for name in ("logits", "features", "mc_scores", "classifier_logits"):
            value = getattr(self, name)
            if value is not None and len(value) != len(self.indices):
                raise ValueError(f"{name} has {len(value)} rows for {len(self.indices)} pool indices")
        if self.mc_probabilities is not None and self.mc_probabilities.shape[1] != len(self.indices):
            raise ValueError(f"mc_probabilities has {self.mc_probabilities.shape[1]} examples for "
                             f"{len(self.indices)} pool indices")

    def __len__(self) -> int:
        return len(self.indices)


@dataclass
class Selection:
    """What a strategy chose and why (in the spirit of scikit-activeml's `query(..., return_utilities=True)`).

    `indices`: global indices of the chosen examples, highest priority first.
    `scores`: one number per pool example (row i belongs to `outputs.indices[i]`): what the strategy ranked
    by, larger first (for Coreset, each example's distance to the labeled set before the first pick).
    `known_probability`: per pool example, for strategies that estimate how likely an example is of a known
    class (LfOSA); None for the others.
    """

    indices: np.ndarray
    scores: np.ndarray
    known_probability: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        self.indices = np.asarray(self.indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)


# what a strategy may list in `needs`
POOL_NEEDS = {"logits", "features", "mc_probabilities", "mc_scores", "classifier_logits"}
LABELED_NEEDS = {"labeled_features", "labeled_logits", "invalid_features"}


QUERY_MODELS = ("detector", "classifier")


def check_query_model(query_model: object, where: str = "strategy.selector.query_model") -> None:
    """A strategy queries the detector's or the classifier's outputs; anything else is a ConfigError."""
    if query_model not in QUERY_MODELS:
        raise ConfigError(f"{where}={query_model!r} must be 'detector' or 'classifier'")


class Strategy:
    """Base of every strategy.

    Attributes:
        query_model: "detector" (a K+1-way net fit on labeled + invalid just for the query)
            or "classifier" (the model tested in the round) - whose outputs `select` reads.
        needs: a subset of POOL_NEEDS | LABELED_NEEDS; empty means no inference at all.
        mc_samples: forward passes with dropout active, when "mc_probabilities" or "mc_scores" is needed.

    A strategy that learns from the answers to its queries (EAOA's candidate-set size) overrides
    `observe`, `state_dict` and `load_state_dict`: the loop calls `observe` after every answered
    query and keeps the state with the run's, so a resumed run continues where it stopped.
    """

    query_model = "classifier"
    needs: tuple = ("logits",)
    mc_samples = 0

    def observe(self, queried: int, queried_known: int) -> None:
        """What the oracle said of the last query (how many were asked, how many were known)."""

    def learn(self, indices: np.ndarray, answers: np.ndarray) -> None:
        """The oracle's answer to each queried example (global `indices`; a known class, or -1 for unknown), after
        `observe`: a strategy that trains on its own queries (MQNet's meta-network) learns here. Under DDP it is
        called in every process, and the next query is chosen by the main process alone."""

    def state_dict(self) -> dict:
        """What `observe` and `learn` learned so far, as JSON-serialisable values."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Take back a `state_dict`."""

    def scores(self, outputs: PoolOutputs, rng: np.random.Generator) -> np.ndarray:
        """One finite priority per pool example: larger is queried first."""
        raise NotImplementedError

    def reduce_mc_samples(self, probabilities: "torch.Tensor") -> "torch.Tensor":
        """For "mc_scores": a torch (T, B, C) batch of dropout softmax outputs -> (B,) scores, on its device."""
        raise NotImplementedError

    def query(self, outputs: PoolOutputs, budget: int, rng: np.random.Generator) -> Selection:
        """min(budget, len(outputs)) distinct pool examples, highest priority first, and every example's score.

        The default ranks by `scores` (exact ties in the seeded generator's order); a strategy that does
        more than sort (Coreset's greedy k-center) overrides this.
        """
        scores = self.scores(outputs, rng)
        return Selection(take_top(outputs, rank_descending([scores], rng), budget), scores)

    def select(self, outputs: PoolOutputs, budget: int, rng: np.random.Generator) -> np.ndarray:
        """The global indices of `query`: what the loop hands to the oracle."""
        return self.query(outputs, budget, rng).indices


def rank_descending(keys: Sequence[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Positions sorted by `keys` (first key most significant), largest first; exact ties broken by `rng`."""
    tiebreak = rng.random(len(keys[0]))
    # np.lexsort sorts by its last key first and ascending: reverse the keys and negate them
    return np.lexsort([-tiebreak] + [-np.asarray(k, dtype=np.float64) for k in reversed(keys)])


def checked_budget(outputs: PoolOutputs, budget: int) -> int:
    """min(budget, pool size); a negative budget is a ValueError."""
    if int(budget) < 0:
        raise ValueError(f"budget must be non-negative, got {budget}")
    return min(int(budget), len(outputs))


def fill_up(chosen: np.ndarray, ranking: np.ndarray, budget: int) -> np.ndarray:
    """`chosen` pool positions, then the first of `ranking` not among them, until there are `budget`."""
    chosen = np.asarray(chosen, dtype=np.int64)
    if len(chosen) >= budget:
        return chosen
    rest = ranking[~np.isin(ranking, chosen)]
    return np.concatenate([chosen, rest[:budget - len(chosen)]]).astype(np.int64)


def take_top(outputs: PoolOutputs, order: np.ndarray, budget: int) -> np.ndarray:
    if budget < 0:
        raise ValueError(f"budget must be non-negative, got {budget}")
    return outputs.indices[order[:budget]]


ROWS = 65536  # pool rows a row-wise score handles at a time


def by_rows(function: Callable[..., np.ndarray], *arrays: np.ndarray, rows: int = ROWS) -> np.ndarray:
    """`function` of float64 blocks of `rows` rows of each array, concatenated: a row-wise score of a 10-million-row
    pool without a float64 copy of the whole pool (8 GB for 10 million x 100 logits)."""
    n = len(arrays[0])
    blocks = [function(*(np.asarray(a[start:start + rows], dtype=np.float64) for a in arrays))
              for start in range(0, n, rows)] or [function(*(np.asarray(a, dtype=np.float64) for a in arrays))]
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks)


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    shifted = logits - logits.max(axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=axis, keepdims=True)


def entropy(probabilities: np.ndarray, axis: int = -1) -> np.ndarray:
    """Shannon entropy in nats; 0 log 0 = 0, so one-hot rows give exactly 0 (no NaN)."""
    p = np.asarray(probabilities, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return -terms.sum(axis=axis)
