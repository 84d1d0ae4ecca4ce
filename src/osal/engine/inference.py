"""Inference for a query: one place, in batches, under inference mode, on the test transform.

Under DDP each process scores its contiguous share of every set (no example twice, none padded in) and the
main process gathers the shares in rank order, which is index order: it gets exactly the arrays one process
would have computed; the others get None.
"""

from typing import Callable, Optional, Union

import numpy as np
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from osal.data.datamodule import PoolDataModule
from osal.engine import distributed
from osal.strategies.base import LABELED_NEEDS, POOL_NEEDS, PoolOutputs, Strategy


def prepare_for_inference(network: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    # eval(): BatchNorm uses its running statistics, also during MC dropout;
    # channels_last: about 1.5x faster convolutions on CPU (oneDNN) and tensor-core GPUs alike
    return network.eval().to(device, memory_format=torch.channels_last)


def inference_batch(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A batch on `device` as the network reads it: images channels_last, frozen features (B, D) as they are."""
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x.contiguous()


@torch.inference_mode()
def run_network(network: torch.nn.Module, loader: DataLoader, device: torch.device, want_features: bool = False,
                mc_samples: int = 0, mc_reduce: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> dict:
    """Logits (and features, MC-dropout probabilities) of every batch of `loader` ((x, y, global index)).

    With `mc_reduce`, each batch's (T, B, C) dropout probabilities are reduced to (B,) `mc_scores`
    right away instead of being kept.
    """
    network = prepare_for_inference(network, device)
    parts = {"indices": [], "targets": [], "logits": [], "features": [], "mc_probabilities": [], "mc_scores": []}
    for x, y, index in loader:
        x = inference_batch(x, device)
        features, logits = network.forward_features(x)
        parts["indices"].append(index)
        parts["targets"].append(y)
        parts["logits"].append(logits.float().cpu())
        if want_features:
            parts["features"].append(features.float().cpu())
        if mc_samples:
            probabilities = torch.softmax(network.mc_dropout_logits(x, mc_samples).float(), dim=-1)  # (T, B, C)
            if mc_reduce is not None:
                parts["mc_scores"].append(mc_reduce(probabilities).cpu())
            else:
                parts["mc_probabilities"].append(probabilities.cpu())
    out = {}
    for key, chunks in parts.items():
        if chunks:
            out[key] = torch.cat(chunks, dim=1 if key == "mc_probabilities" else 0).numpy()
    return out


class LogitsOnly:
    """What `collect_outputs` needs to return the pool's logits alone (no strategy involved)."""

    needs = ("logits",)
    mc_samples = 0


LOGITS_ONLY = LogitsOnly()


def inference_device(trainer_cfg: DictConfig) -> torch.device:
    """Where inference outside a Trainer runs: the GPU when the trainer config would train on one."""
    wants_gpu = str(trainer_cfg.get("accelerator", "auto")) in ("auto", "gpu", "cuda")
    return torch.device("cuda" if wants_gpu and torch.cuda.is_available() else "cpu")


def scored_by_all(network: torch.nn.Module, loader_of: Callable[[Optional[tuple]], DataLoader],
                  device: torch.device, **options) -> Optional[dict]:
    """`run_network` over this process's share of a set (the whole set in one process), gathered on the main
    process in rank order; None on the others. `loader_of(part)` builds the loader of share `part`."""
    if not distributed.active():
        return run_network(network, loader_of(None), device, **options)
    mine = run_network(network, loader_of((distributed.rank(), distributed.world_size())), device, **options)
    parts = distributed.gather_to_main(mine)
    if parts is None:
        return None
    joined = distributed.concatenate_parts(parts)
    joined["scored_by_rank"] = [len(part.get("indices", ())) for part in parts]
    return joined


def collect_outputs(network: torch.nn.Module, datamodule: PoolDataModule, strategy: Union[Strategy, LogitsOnly],
                    device: torch.device, classifier: Optional[torch.nn.Module] = None) -> Optional[PoolOutputs]:
    """Everything `strategy.needs` from the unlabeled pool (and the labeled and invalid sets), as numpy arrays.

    `network` is the query model; `classifier`, for a strategy that needs "classifier_logits", the
    classifier trained on the same labels. Under DDP every process calls this together and only the
    main process gets the outputs (None elsewhere).
    """
    needs = set(strategy.needs)
    unknown = needs - POOL_NEEDS - LABELED_NEEDS
    if unknown:
        raise ValueError(f"strategy needs {sorted(unknown)}, which inference cannot produce")
    num_known = datamodule.num_known
    if not needs:
        return PoolOutputs(datamodule.pool.unlabeled, num_known) if distributed.is_main() else None
    if "classifier_logits" in needs and classifier is None:
        raise ValueError("the strategy needs the classifier's logits but no classifier was given")
    wants_mc = bool(needs & {"mc_probabilities", "mc_scores"})
    # every process runs the same calls in the same order: each is a collective under DDP
    pool = scored_by_all(network, datamodule.pool_dataloader, device, want_features="features" in needs,
                         mc_samples=strategy.mc_samples if wants_mc else 0,
                         mc_reduce=strategy.reduce_mc_samples if "mc_scores" in needs else None)
    labeled, invalid, classified = {}, {}, {}
    if needs & {"labeled_features", "labeled_logits"}:
        labeled = scored_by_all(network, datamodule.labeled_dataloader, device,
                                want_features="labeled_features" in needs)
    if "invalid_features" in needs and len(datamodule.pool.invalid):
        invalid = scored_by_all(network, datamodule.invalid_dataloader, device, want_features=True)
    if "classifier_logits" in needs:
        classified = scored_by_all(classifier, datamodule.pool_dataloader, device)
    if pool is None:  # not the main process
        return None
    if "indices" not in pool:  # an empty pool
        return PoolOutputs(np.zeros(0, dtype=np.int64), num_known, logits=np.zeros((0, 0), dtype=np.float32))
    return PoolOutputs(indices=pool["indices"], num_known=num_known, logits=pool["logits"],
                       features=pool.get("features"), mc_probabilities=pool.get("mc_probabilities"),
                       mc_scores=pool.get("mc_scores"),
                       labeled_features=labeled.get("features"), labeled_logits=labeled.get("logits"),
                       labeled_targets=labeled.get("targets"), classifier_logits=classified.get("logits"),
                       invalid_features=invalid.get("features"), scored_by_rank=pool.get("scored_by_rank"))
