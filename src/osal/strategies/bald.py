"""BALD with MC dropout (Gal, Islam & Ghahramani 2017): query where dropout samples disagree most."""

import numpy as np

from osal.errors import ConfigError
from osal.strategies.base import PoolOutputs, Strategy, entropy


class BALDStrategy(Strategy):
    """Mutual information between the prediction and the weights, estimated from MC dropout.

    score = H[mean_t p_t] - mean_t H[p_t] over `mc_samples` forward passes with dropout on
    and BatchNorm in eval mode (see Network.mc_dropout_logits). Choices: dropout sits on
    the penultimate features only (the encoder runs once per batch, so T samples cost T
    head evaluations, not T networks); its rate is `model.dropout`, set by BALD's config,
    and the classifier trains with it.
    """

    needs = ("mc_probabilities",)

    def __init__(self, mc_samples: int = 20):
        if int(mc_samples) < 2:
            raise ConfigError(f"strategy.selector.mc_samples={mc_samples}: BALD needs at least 2 dropout samples")
        self.mc_samples = int(mc_samples)

    def scores(self, outputs: PoolOutputs, rng: np.random.Generator) -> np.ndarray:
        samples = np.asarray(outputs.mc_probabilities, dtype=np.float64)  # (T, n, C)
        mean_entropy = entropy(samples).mean(axis=0)
        return np.maximum(entropy(samples.mean(axis=0)) - mean_entropy, 0.0)  # >= 0 up to rounding
