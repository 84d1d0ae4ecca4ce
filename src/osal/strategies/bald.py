"""BALD with MC dropout (Gal, Islam & Ghahramani 2017): query where dropout samples disagree most."""

import numpy as np
import torch

from osal.errors import ConfigError
from osal.strategies.base import PoolOutputs, Strategy


class BALDStrategy(Strategy):
    """Mutual information between the prediction and the weights, estimated from MC dropout.

    score = H[mean_t p_t] - mean_t H[p_t] over `mc_samples` forward passes with dropout on
    and BatchNorm in eval mode (see Network.mc_dropout_logits). Choices: dropout sits on
    the penultimate features only (the encoder runs once per batch, so T samples cost T
    head evaluations, not T networks); its rate is `model.dropout`, set by BALD's config,
    and the classifier trains with it. The score is reduced batch by batch during inference
    (`reduce_mc_samples`), so memory grows with the pool, not with T x pool x C.
    """

    needs = ("mc_scores",)

    def __init__(self, mc_samples: int = 20) -> None:
        if int(mc_samples) < 2:
            raise ConfigError(f"strategy.selector.mc_samples={mc_samples}: BALD needs at least 2 dropout samples")
        self.mc_samples = int(mc_samples)

    def reduce_mc_samples(self, probabilities: torch.Tensor) -> torch.Tensor:
        """(T, B, C) dropout softmax outputs -> (B,) mutual information, in float64 where the device has it."""
        p = probabilities if probabilities.device.type == "mps" else probabilities.double()
        mean_entropy = torch.special.entr(p).sum(-1).mean(0)  # entr(0) = 0: one-hot rows give exactly 0
        return (torch.special.entr(p.mean(0)).sum(-1) - mean_entropy).clamp_min(0.0)  # >= 0 up to rounding

    def scores(self, outputs: PoolOutputs, rng: np.random.Generator) -> np.ndarray:
        if outputs.mc_scores is not None:
            return np.asarray(outputs.mc_scores, dtype=np.float64)
        # whole (T, n, C) samples handed over directly (tests, other callers): the same reduction at once
        return self.reduce_mc_samples(torch.as_tensor(np.asarray(outputs.mc_probabilities))).numpy()
