"""MQNet (Park et al., NeurIPS 2022): a meta-network that weighs informativeness against purity, learned from
the answers to its own queries."""

from typing import Optional

import numpy as np
import torch

from osal.errors import ConfigError
from osal.strategies.base import PoolOutputs, Selection, Strategy, checked_budget, softmax

UNKNOWN = -1  # the oracle's answer for an example of no known class (osal.data.oracle)


class QueryNet(torch.nn.Module):
    """The official QueryNet (nets/querynet.py): sigmoid(X relu(W1) + b1) relu(W2) + b2, 2 -> 64 -> 1, its
    weights kept non-negative through relu so that the score never falls as either input rises; every parameter
    starts uniform on [0, 1)."""

    def __init__(self, inputs: int = 2, hidden: int = 64, generator: Optional[torch.Generator] = None) -> None:
        super().__init__()

        def uniform(*shape: int) -> torch.nn.Parameter:
            return torch.nn.Parameter(torch.rand(shape, generator=generator, dtype=torch.float64))
        self.W1, self.W2, self.b1, self.b2 = uniform(inputs, hidden), uniform(hidden, 1), uniform(hidden), uniform(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = torch.sigmoid(x @ torch.relu(self.W1) + self.b1)
        return hidden @ torch.relu(self.W2) + self.b2


def standardized_exp(values: np.ndarray) -> np.ndarray:
    """exp((v - mean) / std), the population std (the official `standardize`); a constant gives exp(0) = 1 (the
    official divides by zero)."""
    values = np.asarray(values, dtype=np.float64)
    std = values.std()
    return np.exp((values - values.mean()) / std) if std > 0 else np.ones_like(values)


def purity(features: np.ndarray, labeled_features: np.ndarray, rows: int = 4096) -> np.ndarray:
    """Each pool example's highest cosine similarity to a labeled (known) example (the official get_CSI_score:
    torch's CosineSimilarity, norms floored at 1e-8), a block of rows at a time."""
    reference = np.asarray(labeled_features, dtype=np.float64)
    reference = reference / np.maximum(np.linalg.norm(reference, axis=1, keepdims=True), 1e-8)
    out = np.empty(len(features))
    for start in range(0, len(features), rows):
        block = np.asarray(features[start:start + rows], dtype=np.float64)
        block = block / np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-8)
        out[start:start + rows] = (block @ reference.T).max(axis=1)
    return out


def informativeness(classifier_logits: np.ndarray) -> np.ndarray:
    """The official CONF mode: 1 - the classifier's top softmax probability."""
    return 1.0 - softmax(np.asarray(classifier_logits, dtype=np.float64), axis=1).max(axis=1)


def ranking_loss(predicted: torch.Tensor, target: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """The official LossPredLoss (Yoo & Kweon's loss-prediction ranking loss): the batch paired with itself
    reversed, the first half of the pairs scored by a hinge on the predicted difference, signed by the target's."""
    half = len(predicted) // 2
    predicted = (predicted - predicted.flip(0))[:half]
    target = (target - target.flip(0))[:half].detach()
    sign = 2 * torch.sign(torch.clamp(target, min=0)) - 1
    return torch.clamp(margin - sign * predicted, min=0).sum() / half


class MQNetStrategy(Strategy):
    """Query the pool examples the meta-network scores highest from two inputs: informativeness (1 - the
    classifier's top probability) and purity (the highest cosine similarity of its CSI features to a labeled
    example's: how much it looks known).

    Written from the paper and the official code (github kaist-dmlab/MQNet at 77b4b5c, methods/mqnet.py,
    methods/methods_utils/mqnet_util.py, utils.py meta_train), mode CONF, with its defaults:

    * the query model is MQNet's CSI network (osal.models.csi.ContrastiveShiftModule), trained once per run
      without labels on every training image (`detector.fit_once`);
    * a random subset of at most `subset` pool examples is scored (the official np.random.choice; 50,000, i.e.
      all of CIFAR's pool); both inputs are standardised over it and passed through exp;
    * at the first query there is no meta-network yet: the score is informativeness + exp(standardised purity)
      (informativeness itself not standardised, as the official code);
    * after every query (`learn`) a fresh meta-network (QueryNet) is trained on the queried examples alone:
      inputs standardised over them, target the classifier's cross-entropy at the oracle's class for a known
      example and 0 for an unknown one, the ranking loss with margin 1, SGD lr 1e-3 for `epochs` epochs of at
      least `steps_per_epoch` steps of `batch_size` in random order, the learning rate divided by 10 halfway;
      the next query is scored by it.

    Departures (docs/design.md): the pool and the queried examples are read with the test transform (the
    official reads them through the training augmentation, and trains its meta-network with the training
    network's loss on augmented images); the cross-entropy targets are those of the classifier that made the
    query, at query time (as the official, whose network is the same one); a batch of one queried example is
    skipped (its ranking loss is 0 / 0 in the official code, which turns every weight into NaN); ties in score
    fall in the subset's random order (the official too); the examples outside the subset get scores below
    every scored one.
    """

    query_model = "detector"
    needs = ("features", "labeled_features", "classifier_logits")

    def __init__(self, subset: int = 50_000, hidden: int = 64, epochs: int = 100, steps_per_epoch: int = 100,
                 batch_size: int = 32, lr: float = 1e-3, margin: float = 1.0) -> None:
        for name, value, low in (("subset", subset, 1), ("hidden", hidden, 1), ("epochs", epochs, 1),
                                 ("steps_per_epoch", steps_per_epoch, 1), ("batch_size", batch_size, 2)):
            if int(value) < low:
                raise ConfigError(f"strategy.selector.{name}={value} must be at least {low}")
        if float(lr) <= 0:
            raise ConfigError(f"strategy.selector.lr={lr} must be positive")
        self.subset, self.hidden, self.epochs = int(subset), int(hidden), int(epochs)
        self.steps_per_epoch, self.batch_size = int(steps_per_epoch), int(batch_size)
        self.lr, self.margin = float(lr), float(margin)
        self.meta: Optional[QueryNet] = None
        self._asked = None  # what `learn` needs of the last query: its indices, inputs and classifier logits

    # -- the scores ---------------------------------------------------------------------------
    def inputs(self, outputs: PoolOutputs, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(informativeness, purity) of the pool rows at `positions`."""
        if outputs.labeled_features is None or len(outputs.labeled_features) == 0:
            raise ValueError("MQNet's purity compares the pool with the labeled examples, and none was given")
        return (informativeness(np.asarray(outputs.classifier_logits)[positions]),
                purity(np.asarray(outputs.features)[positions], outputs.labeled_features))

    def score_subset(self, info: np.ndarray, pure: np.ndarray) -> np.ndarray:
        if self.meta is None:  # the first query: no answers to learn from yet
            return info + standardized_exp(pure)
        meta_input = torch.from_numpy(np.stack([standardized_exp(info), standardized_exp(pure)], axis=1))
        with torch.no_grad():
            return self.meta(meta_input).reshape(-1).numpy()

    def scored(self, outputs: PoolOutputs, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, tuple]:
        """(the subset's pool positions in the order drawn, their scores, their inputs)."""
        positions = rng.permutation(len(outputs))[:self.subset]
        info, pure = self.inputs(outputs, positions)
        return positions, self.score_subset(info, pure), (info, pure)

    @staticmethod
    def every_score(n: int, positions: np.ndarray, subset_scores: np.ndarray) -> np.ndarray:
        scores = np.full(n, (subset_scores.min() if len(subset_scores) else 0.0) - 1.0)
        scores[positions] = subset_scores
        return scores

    def scores(self, outputs: PoolOutputs, rng: np.random.Generator) -> np.ndarray:
        if len(outputs) == 0:
            return np.zeros(0)
        positions, subset_scores, _ = self.scored(outputs, rng)
        return self.every_score(len(outputs), positions, subset_scores)

    def query(self, outputs: PoolOutputs, budget: int, rng: np.random.Generator) -> Selection:
        budget = checked_budget(outputs, budget)
        if len(outputs) == 0:
            return Selection(outputs.indices[:0], np.zeros(0))
        positions, subset_scores, (info, pure) = self.scored(outputs, rng)
        top = np.argsort(-subset_scores)[:budget]  # the official order: numpy's default sort, ties in subset order
        chosen = positions[top]
        self._asked = {"indices": outputs.indices[chosen], "informativeness": info[top], "purity": pure[top],
                       "logits": np.asarray(outputs.classifier_logits, dtype=np.float64)[chosen],
                       "seed": int(rng.integers(2 ** 63))}
        return Selection(outputs.indices[chosen], self.every_score(len(outputs), positions, subset_scores))

    # -- the meta-network, learned from each query's answers --------------------------------
    def learn(self, indices: np.ndarray, answers: np.ndarray) -> None:
        asked, self._asked = self._asked, None
        if asked is None or len(indices) == 0:  # not the process that chose (DDP), or nothing was asked
            return
        if not np.array_equal(asked["indices"], np.asarray(indices)):
            raise ValueError("MQNet was told the answers to another query than the one it asked")
        self.meta = self.train_meta(asked["informativeness"], asked["purity"], asked["logits"],
                                    np.asarray(answers, dtype=np.int64), asked["seed"])

    def train_meta(self, info: np.ndarray, pure: np.ndarray, logits: np.ndarray, answers: np.ndarray,
                   seed: int) -> QueryNet:
        """A fresh QueryNet trained on one query's examples (the official meta_train and mqnet_train)."""
        generator = torch.Generator().manual_seed(seed)
        meta = QueryNet(2, self.hidden, generator)
        inputs = torch.from_numpy(np.stack([standardized_exp(info), standardized_exp(pure)], axis=1))
        known = answers != UNKNOWN
        # the classifier's cross-entropy at the oracle's class; 0 for an unknown example
        log_probabilities = torch.log_softmax(torch.from_numpy(np.asarray(logits, dtype=np.float64)), dim=1)
        target = torch.zeros(len(answers), dtype=torch.float64)
        rows = torch.from_numpy(np.flatnonzero(known))
        target[rows] = -log_probabilities[rows, torch.from_numpy(answers[known])]
        optimizer = torch.optim.SGD(meta.parameters(), lr=self.lr)
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[self.epochs // 2])
        for _ in range(self.epochs):
            steps = 0
            while steps < self.steps_per_epoch:  # whole passes over the queried examples, as the official loop
                order = torch.randperm(len(answers), generator=generator)
                for batch in order.split(self.batch_size):
                    steps += 1
                    if len(batch) < 2:  # one example has no pair to rank against (official: 0 / 0)
                        continue
                    optimizer.zero_grad()
                    loss = ranking_loss(meta(inputs[batch]), target[batch, None], self.margin)
                    loss.backward()
                    optimizer.step()
            scheduler.step()
        return meta.eval()

    # -- state across queries ----------------------------------------------------------------
    def state_dict(self) -> dict:
        if self.meta is None:
            return {"meta": None}
        return {"meta": {name: value.detach().reshape(-1).tolist() for name, value in self.meta.state_dict().items()}}

    def load_state_dict(self, state: dict) -> None:
        weights = state.get("meta")
        if weights is None:
            self.meta = None
            return
        meta = QueryNet(2, self.hidden)
        shapes = {name: value.shape for name, value in meta.state_dict().items()}
        if set(weights) != set(shapes):
            raise ValueError(f"MQNet's saved meta-network has {sorted(weights)}, expected {sorted(shapes)}")
        meta.load_state_dict({name: torch.tensor(weights[name], dtype=torch.float64).reshape(shapes[name])
                              for name in shapes})
        self.meta = meta.eval()
