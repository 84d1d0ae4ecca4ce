"""Score a pool once per query: one place, in batches, under inference mode."""

import numpy as np
import torch

from osal.strategies.base import PoolOutputs


@torch.inference_mode()
def score_pool(network: torch.nn.Module, loader, num_known: int, needs, device: torch.device) -> PoolOutputs:
    """Run `network.forward_features` over `loader` ((x, _, global index) batches) and gather what `needs` lists."""
    network.eval().to(device)
    want_features = "features" in needs
    indices, logits, features = [], [], []
    for x, _, index in loader:
        feats, out = network.forward_features(x.to(device, non_blocking=True))
        indices.append(index)
        logits.append(out.float().cpu())
        if want_features:
            features.append(feats.float().cpu())
    if not indices:
        return PoolOutputs(np.zeros(0, dtype=np.int64), num_known, logits=np.zeros((0, 0), dtype=np.float32))
    return PoolOutputs(indices=torch.cat(indices).numpy(), num_known=num_known,
                       logits=torch.cat(logits).numpy(),
                       features=torch.cat(features).numpy() if want_features else None)
