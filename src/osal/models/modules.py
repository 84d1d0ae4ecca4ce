"""The two LightningModules of LfOSA: a K-way classifier and a K+1-way detector."""

from typing import Callable, Iterator, Optional, Union

import lightning as L
import torch
import torch.nn.functional as F
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score, MulticlassPrecision, MulticlassRecall

from osal import clustering
from osal.errors import DivergenceError
from osal.models.network import Network, OneVsAllNetwork

# factories a Hydra partial gives: network(num_outputs=...), optimizer(params), scheduler(optimizer)
NetworkFactory = Callable[..., Network]
OptimizerFactory = Callable[[Iterator[torch.nn.Parameter]], Optimizer]
SchedulerFactory = Callable[[Optimizer], LRScheduler]


class ClassifierModule(L.LightningModule):
    """K-way classifier trained with plain cross-entropy on the labeled set.

    Args:
        num_known: K, the number of known classes.
        network: factory `network(num_outputs=...) -> Network` (a Hydra partial).
        optimizer: factory `optimizer(params)`; scheduler: factory `scheduler(optimizer)` or None.
        temperature: logits are divided by it inside the loss only (1 = plain cross-entropy).
    """

    role = "classifier"

    def __init__(self, num_known: int, network: NetworkFactory, optimizer: OptimizerFactory,
                 scheduler: Optional[SchedulerFactory] = None, temperature: float = 1.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.num_known = int(num_known)
        self.temperature = float(temperature)
        self.net = network(num_outputs=self.num_outputs)
        self._optimizer, self._scheduler = optimizer, scheduler
        # accuracy, macro precision / recall / F1 over the K known classes only
        k = self.num_known
        self.test_metrics = MetricCollection({
            "accuracy": MulticlassAccuracy(k, average="micro"),
            "macro_precision": MulticlassPrecision(k, average="macro"),
            "macro_recall": MulticlassRecall(k, average="macro"),
            "macro_f1": MulticlassF1Score(k, average="macro"),
        }, prefix="test_")

    @property
    def num_outputs(self) -> int:
        return self.num_known

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits / self.temperature, targets)

    def batch_loss(self, x: torch.Tensor, y: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """The training loss of one batch (x, targets, global indices)."""
        return self.loss(self.net(x), y)

    def on_fit_start(self) -> None:
        # channels_last feeds tensor cores directly on CUDA; on CPUs it measured slower for training a ResNet18
        # but 1.5x faster for the small CNN (docs/benchmarks.md): model.channels_last decides, CUDA only by default
        wanted = getattr(self.net, "channels_last", None)
        channels_last = self.device.type == "cuda" if wanted is None else bool(wanted)
        self._memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.net.to(memory_format=self._memory_format)

    def on_train_epoch_start(self) -> None:
        self._loss_sum, self._loss_count = None, 0

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y, index = batch
        loss = self.batch_loss(x.contiguous(memory_format=self._memory_format), y, index)
        # The epoch's mean loss is summed on the device and read once per epoch: reading it every
        # step would make the CPU wait for the GPU, and self.log per step costs ~1 ms on a CPU.
        # A non-finite loss makes the sum non-finite, so divergence is still caught (at epoch end).
        weighted = loss.detach() * len(y)
        self._loss_sum = weighted if self._loss_sum is None else self._loss_sum + weighted
        self._loss_count += len(y)
        return loss

    def on_train_epoch_end(self) -> None:
        if self._loss_sum is None:
            return
        mean = self._loss_sum / self._loss_count
        if not torch.isfinite(mean):
            raise DivergenceError(f"the {self.role}'s training loss became {mean.item()} in epoch "
                                  f"{self.current_epoch}; lower optimizer.lr or check the data")
        self.log("train_loss", mean, prog_bar=True, sync_dist=True)  # DDP: the mean of the processes' means

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y, _ = batch
        # a detector's extra output is the unknown class: classify among the first K only
        predictions = self.net(x)[:, :self.num_known].argmax(dim=1)
        self.test_metrics.update(predictions, y)

    def on_test_epoch_end(self) -> None:
        self.log_dict(self.test_metrics.compute())
        self.test_metrics.reset()

    def configure_optimizers(self) -> Union[Optimizer, dict]:
        optimizer = self._optimizer(self.parameters())
        if not self._scheduler:  # scheduler=none composes to an empty node
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self._scheduler(optimizer), "interval": "epoch"}}


class DetectorModule(ClassifierModule):
    """K+1-way detector: the extra output is the unknown class (the invalid set).

    Trained with cross-entropy on logits / T (T = 0.5 in the paper); T appears in
    the loss only, the query reads the raw logits.
    """

    role = "detector"

    def __init__(self, num_known: int, network: NetworkFactory, optimizer: OptimizerFactory,
                 scheduler: Optional[SchedulerFactory] = None, temperature: float = 0.5) -> None:
        super().__init__(num_known, network, optimizer, scheduler, temperature)

    @property
    def num_outputs(self) -> int:
        return self.num_known + 1


class BinaryDetectorModule(ClassifierModule):
    """Two outputs, known (0) and unknown (1): the "Dichotomies" ablation's detector.

    It is fed the detector's data (labeled with classes 0..K-1, invalid as K) and turns
    the targets into known / unknown; T divides the logits in the loss as for LfOSA's detector.
    """

    role = "detector"

    def __init__(self, num_known: int, network: NetworkFactory, optimizer: OptimizerFactory,
                 scheduler: Optional[SchedulerFactory] = None, temperature: float = 0.5) -> None:
        super().__init__(num_known, network, optimizer, scheduler, temperature)

    @property
    def num_outputs(self) -> int:
        return 2

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return super().loss(logits, (targets >= self.num_known).long())


class EnergyDetectorModule(DetectorModule):
    """EAOA's K+1-way detector: cross-entropy plus a squared-hinge margin on the energy of the K known outputs.

    E(x) = -logsumexp(z_1..z_K) (the unknown output left out) is pushed below `margin_in` on labeled
    (known) examples and above `margin_out` on invalid (unknown) ones, with weight `energy_weight`
    (official defaults: -25, -7, 0.01; temperature 1). As the official code, before any unknown was queried
    (an empty invalid set) the detector is trained with cross-entropy alone (its train_model_ID). A batch
    without knowns or without unknowns simply lacks that term (the official code's empty mean gives NaN there).
    """

    def __init__(self, num_known: int, network: NetworkFactory, optimizer: OptimizerFactory,
                 scheduler: Optional[SchedulerFactory] = None, temperature: float = 1.0,
                 energy_weight: float = 0.01, margin_in: float = -25.0, margin_out: float = -7.0) -> None:
        super().__init__(num_known, network, optimizer, scheduler, temperature)
        if energy_weight < 0:
            raise ValueError(f"energy_weight must be non-negative, got {energy_weight}")
        self.energy_weight, self.margin_in, self.margin_out = float(energy_weight), float(margin_in), float(margin_out)
        self.with_unknowns = True  # fit by fit, whether the invalid set holds any example (on_fit_start)

    def on_fit_start(self) -> None:
        super().on_fit_start()
        datamodule = getattr(self.trainer, "datamodule", None)
        self.with_unknowns = datamodule is None or len(datamodule.pool.invalid) > 0

    def energy_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        energy = -torch.logsumexp(logits[:, :self.num_known], dim=1)
        known = targets < self.num_known
        loss = logits.new_zeros(())
        if known.any():
            loss = loss + F.relu(energy[known] - self.margin_in).pow(2).mean()
        if (~known).any():
            loss = loss + F.relu(self.margin_out - energy[~known]).pow(2).mean()
        return loss

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if not self.with_unknowns:
            return super().loss(logits, targets)
        return super().loss(logits, targets) + self.energy_weight * self.energy_loss(logits, targets)


class OneVsAllDetectorModule(DetectorModule):
    """EOAL's detector (Safaei et al., AAAI 2024; official code github bardisafa/EOAL at baadd13, main.py and
    utils.py): the K+1-way detector with a one-vs-all head on its features, trained with

    * cross-entropy on logits / T (T = 0.5);
    * the entropic one-vs-all loss: before any unknown was queried, OVANet's 0.5 [-log p+_y + max_k!=y -log p-_k];
      afterwards that term is weighted by 1 - alpha on known rows, and on unknown rows every head is pushed
      toward p = 1/2, weighted alpha / K (alpha = `pareto_alpha` = 0.8);
    * once unknowns were queried, `cluster_weight` x (`intra_weight` x the distance of each unknown to the centre
      of its cluster + `inter_weight` x log(1 + sum_j exp(d_own - d_j))): the queried unknowns are clustered
      (FINCH, K clusters) at the start of every epoch from their current features; `finch` names the
      finch-clust release whose FINCH is reproduced (osal.clustering.hierarchy; the official code pins 0.1.9).

    Departures (docs/design.md): the unknowns' features for the clustering are computed with the test transform
    (the official code reads them through the training augmentation); the number of epochs and the optimiser
    are the trainer's and optimizer's configs (the official code trains 300 epochs, the one-vs-all head without
    learning-rate decay); a batch without known (or unknown) rows simply lacks those terms.
    """

    def __init__(self, num_known: int, network: NetworkFactory, optimizer: OptimizerFactory,
                 scheduler: Optional[SchedulerFactory] = None, temperature: float = 0.5, pareto_alpha: float = 0.8,
                 cluster_weight: float = 0.1, intra_weight: float = 0.1, inter_weight: float = 1.0,
                 finch: str = clustering.DEFAULT_FINCH) -> None:
        super().__init__(num_known, network, optimizer, scheduler, temperature)
        self.finch = clustering.checked_finch(finch)
        if not 0.0 <= pareto_alpha < 1.0:
            raise ValueError(f"pareto_alpha must lie in [0, 1), got {pareto_alpha}")
        self.net = OneVsAllNetwork(self.net, self.num_known)
        self.pareto_alpha, self.cluster_weight = float(pareto_alpha), float(cluster_weight)
        self.intra_weight, self.inter_weight = float(intra_weight), float(inter_weight)
        self.with_unknowns = False
        self._cluster_of = self._centres = None

    # -- the unknowns' clusters ------------------------------------------------------------
    def on_fit_start(self) -> None:
        super().on_fit_start()
        datamodule = getattr(self.trainer, "datamodule", None)
        self.with_unknowns = datamodule is not None and len(datamodule.pool.invalid) > 0

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        if self.with_unknowns:
            self.cluster_unknowns(self.trainer.datamodule.invalid_dataloader())

    def cluster_unknowns(self, loader: "torch.utils.data.DataLoader") -> None:
        """FINCH clusters (K of them, fewer if FINCH's first partition has fewer) of the invalid set's features."""
        was_training = self.net.training
        self.net.eval()
        features, indices = [], []
        with torch.no_grad():
            for x, _, index in loader:
                x = x.to(self.device).contiguous(memory_format=self._memory_format)
                features.append(self.net.network.forward_features(x)[0].float().cpu())
                indices.append(index)
        self.net.train(was_training)
        features, indices = torch.cat(features).numpy(), torch.cat(indices).numpy()
        labels = clustering.clusters(features, self.num_known, self.finch)
        lookup = torch.full((int(indices.max()) + 1,), -1, dtype=torch.long)
        lookup[torch.from_numpy(indices)] = torch.from_numpy(labels).long()
        self._cluster_of = lookup.to(self.device)
        self._centres = torch.as_tensor(clustering.centres(features, labels), dtype=torch.float32, device=self.device)

    # -- the loss ----------------------------------------------------------------------------
    def batch_loss(self, x: torch.Tensor, y: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        features, logits, one_vs_all = self.net.heads(x)
        loss = self.loss(logits, y) + self.one_vs_all_loss(one_vs_all, y)
        if self.with_unknowns and self._centres is not None:
            loss = loss + self.cluster_weight * self.cluster_loss(features, y, index)
        return loss

    def one_vs_all_loss(self, one_vs_all: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        k = self.num_known
        p = F.softmax(one_vs_all.view(len(y), 2, k), dim=1)  # [:, 0] "not class k", [:, 1] "class k"
        nll_negative, nll_positive = -torch.log(p[:, 0] + 1e-8), -torch.log(p[:, 1] + 1e-8)
        known = y < k
        target = F.one_hot(y.clamp(max=k - 1), k).float() * known[:, None]
        scale = 1.0 - self.pareto_alpha if self.with_unknowns else 1.0
        loss = one_vs_all.new_zeros(())
        if known.any():
            positive = (nll_positive[known] * target[known]).sum(dim=1).mean()
            negative = (nll_negative[known] * (1.0 - target[known])).max(dim=1).values.mean()
            loss = loss + 0.5 * scale * (positive + negative)
        if self.with_unknowns and (~known).any():
            weight = self.pareto_alpha / k
            toward_half = nll_positive[~known].sum(dim=1).mean() + nll_negative[~known].sum(dim=1).mean()
            loss = loss + 0.5 * weight * toward_half
        return loss

    def cluster_loss(self, features: torch.Tensor, y: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        unknown = y >= self.num_known
        if not unknown.any():
            return features.new_zeros(())
        distances = torch.cdist(features[unknown].float(), self._centres)
        own = self._cluster_of[index[unknown]]
        true = distances.gather(1, own[:, None])
        others = torch.ones_like(distances, dtype=torch.bool).scatter_(1, own[:, None], False)
        margins = torch.where(others, torch.exp(true - distances), torch.zeros_like(distances)).sum(dim=1)
        return self.intra_weight * true.mean() + self.inter_weight * torch.log1p(margins).mean()
