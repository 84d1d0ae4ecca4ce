"""BUAL (Zong et al., ECCV 2024): bidirectional uncertainty of a positive and a negative classifier, with an
auxiliary network that screens out the pool examples it takes for unknown."""

import numpy as np

from osal.errors import ConfigError
from osal.strategies.base import PoolOutputs, Selection, Strategy, checked_budget, fill_up, softmax

UNCERTAINTIES = ("least_confidence", "margin", "entropy")


def minmax(values: np.ndarray) -> np.ndarray:
    """(v - min) / (max - min); 0 everywhere for a constant vector (the official code divides by zero there)."""
    if len(values) == 0:
        return values
    low, high = values.min(), values.max()
    if high == low:
        return np.zeros_like(values)
    return (values - low) / (high - low)


def uncertainty(probabilities: np.ndarray, kind: str) -> np.ndarray:
    """The official per-row value whose lowest are queried first: the top probability (least confidence), the
    gap between the two largest (margin), or sum p log(p + 1e-10) (entropy, negated)."""
    if kind == "least_confidence":
        return probabilities.max(axis=1)
    if kind == "margin":
        if probabilities.shape[1] < 2:
            return probabilities[:, 0]
        top_two = np.partition(probabilities, -2, axis=1)[:, -2:]
        return np.abs(top_two[:, 1] - top_two[:, 0])
    return np.sum(probabilities * np.log(probabilities + 1e-10), axis=1)


class BUALStrategy(Strategy):
    """Query the examples both the positive and the negative classifier are least sure of, weighted by how
    unknown an auxiliary network finds them.

    Written from the paper and the official code (github chenchenzong/BUAL at 347a4d1, ECCV2024_BUAL_code/main.py),
    with its defaults. The query model is BUAL's detector (osal.models.negative_learning.BUALDetectorModule),
    whose outputs at query time are the auxiliary network's K+1 logits followed by the sum over its snapshots
    (every 5 epochs and after the last) of the negative-learning head's softmax; the classifier's pool logits
    give the positive classifier's softmax P:

    * once an unknown was queried (`unknowns_seen`: the auxiliary network was trained on labeled + queried
      unknowns as class K), the examples it predicts as class K are left out; for the others, a = its
      probability of class K;
    * u_NL, u_P: the chosen `uncertainty` (least confidence: the top probability; margin: the gap between the
      top two; entropy: sum p log(p + 1e-10), on the raw negative-learning sums as the official code) of the
      negative-learning sums and of P; t1, t2, t3 = minmax of u_NL, u_P, a over the candidates;
    * temp = t3 t1 + ratio (1 - t3) t2 once unknowns were seen, else t1 + ratio t2, `ratio` being the
      precision of the previous query (0 before the first); the `budget` lowest temp are queried, in the
      order of numpy's default argsort over the pool in index order (the official tie order).

    Departures (docs/design.md):

    * the official code stops the negative-learning epochs early once the number of true knowns among the
      1500 it would select is unchanged for 5 checks: that reads the ground truth of unqueried examples (an
      oracle peek), so here every check runs and the query uses the last;
    * the 5000 unlabeled examples of the negative-learning set are drawn uniformly from the pool (the official
      code draws knowns and unknowns in the pool's proportions using the true labels: the same in expectation);
    * the auxiliary and the negative-learning networks are trained in the same epochs from one loader (labeled,
      queried unknowns and the unlabeled sample; each network takes its rows) instead of one after the other
      (the same epoch counts);
    * the project's optimizer, scheduler and epochs (official: SGD lr 0.01, momentum 0.9, weight decay 1e-4,
      100 epochs, batch 128);
    * P is osal's classifier trained on the same labels (official: the last checkpoint of the positive-learning
      phase of the same network), and the negative-learning network continues from a copy of it;
    * the negative-learning sums are accumulated in float32 on the device (official: Python floats);
    * a batch short of the budget (fewer candidates) is filled with the predicted unknowns of lowest auxiliary
      unknown probability; minmax of a constant vector is 0 (the official code divides by zero);
    * the pool is scored with the test transform (official: the training transform).

    The scores returned are -temp for the candidates and, below all of them, the predicted unknowns by
    ascending auxiliary unknown probability.
    """

    query_model = "detector"
    needs = ("logits", "classifier_logits")

    def __init__(self, uncertainty: str = "least_confidence") -> None:
        if uncertainty not in UNCERTAINTIES:
            raise ConfigError(f"strategy.selector.uncertainty={uncertainty!r} must be one of "
                              f"{', '.join(UNCERTAINTIES)}")
        self.uncertainty = uncertainty
        self.ratio = 0.0
        self.unknowns_seen = False

    # -- state across queries ------------------------------------------------------------
    def observe(self, queried: int, queried_known: int) -> None:
        """The last query's precision weighs the classifier's term in the next (official main.py `ratio`)."""
        if queried == 0:
            return
        self.ratio = queried_known / queried
        self.unknowns_seen = self.unknowns_seen or queried_known < queried

    def state_dict(self) -> dict:
        return {"ratio": float(self.ratio), "unknowns_seen": bool(self.unknowns_seen)}

    def load_state_dict(self, state: dict) -> None:
        self.ratio = float(state.get("ratio", self.ratio))
        self.unknowns_seen = bool(state.get("unknowns_seen", self.unknowns_seen))

    # -- scores ----------------------------------------------------------------------------
    def parts(self, outputs: PoolOutputs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(candidate mask, temp of the candidates (in pool order), auxiliary unknown probability of every row)."""
        k = outputs.num_known
        logits = np.asarray(outputs.logits)
        if logits.ndim != 2 or logits.shape[1] != 2 * k + 1:
            raise ValueError(f"BUAL reads the K+1 auxiliary logits and the K negative-learning sums ({2 * k + 1} "
                             f"columns), got {logits.shape[1] if logits.ndim == 2 else logits.shape}: use BUAL's "
                             "detector (strategy=bual)")
        n = len(outputs)
        if self.unknowns_seen:
            aux = softmax(logits[:, :k + 1].astype(np.float64), axis=1)
            candidates = logits[:, :k + 1].argmax(axis=1) != k
            unknown_probability = aux[:, k]
        else:
            candidates = np.ones(n, dtype=bool)
            unknown_probability = np.zeros(n)
        negative = logits[candidates, k + 1:].astype(np.float64)
        positive = softmax(np.asarray(outputs.classifier_logits)[candidates, :k].astype(np.float64), axis=1)
        t1 = minmax(uncertainty(negative, self.uncertainty))
        t2 = minmax(uncertainty(positive, self.uncertainty))
        if self.unknowns_seen:
            t3 = minmax(unknown_probability[candidates])
            temp = t3 * t1 + self.ratio * (1.0 - t3) * t2
        else:
            temp = t1 + self.ratio * t2
        return candidates, temp, unknown_probability

    def _scored(self, outputs: PoolOutputs) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(pool order by index, candidate positions, their temp, every row's score), in the pool's own rows."""
        by_index = np.argsort(outputs.indices, kind="stable")  # the loop gives index order; a test may not
        ordered = PoolOutputs(outputs.indices[by_index], outputs.num_known, logits=np.asarray(outputs.logits)[by_index],
                              classifier_logits=np.asarray(outputs.classifier_logits)[by_index])
        candidates, temp, unknown_probability = self.parts(ordered)
        scores = np.empty(len(outputs))
        chosen_rows = by_index[candidates]
        scores[chosen_rows] = -temp
        floor = float(-temp.max()) if len(temp) else 0.0
        scores[by_index[~candidates]] = floor - 1.0 - unknown_probability[~candidates]
        unknown_rows = by_index[~candidates][np.argsort(unknown_probability[~candidates], kind="stable")]
        return chosen_rows, temp, scores, unknown_rows

    def scores(self, outputs: PoolOutputs, rng: np.random.Generator) -> np.ndarray:
        if len(outputs) == 0:
            return np.zeros(0)
        return self._scored(outputs)[2]

    def query(self, outputs: PoolOutputs, budget: int, rng: np.random.Generator) -> Selection:
        budget = checked_budget(outputs, budget)
        if len(outputs) == 0:
            return Selection(outputs.indices[:0], np.zeros(0))
        candidate_rows, temp, scores, unknown_rows = self._scored(outputs)
        chosen = candidate_rows[np.argsort(temp)[:budget]]  # numpy's default sort: the official tie order
        chosen = fill_up(chosen, unknown_rows, budget)
        return Selection(outputs.indices[chosen], scores)
