"""The two LightningModules of LfOSA: a K-way classifier and a K+1-way detector."""

from typing import Callable, Iterator, Optional, Union

import lightning as L
import torch
import torch.nn.functional as F
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score, MulticlassPrecision, MulticlassRecall

from osal.errors import DivergenceError
from osal.models.network import Network

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

    def on_fit_start(self) -> None:
        # channels_last feeds tensor cores directly on CUDA; on CPUs it measured slower for
        # training a ResNet18 (docs/benchmarks.md), so it is used there at inference only
        self._memory_format = torch.channels_last if self.device.type == "cuda" else torch.contiguous_format
        self.net.to(memory_format=self._memory_format)

    def on_train_epoch_start(self) -> None:
        self._loss_sum, self._loss_count = None, 0

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y, _ = batch
        loss = self.loss(self.net(x.contiguous(memory_format=self._memory_format)), y)
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
        self.log("train_loss", mean, prog_bar=True)

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
    (official defaults: -25, -7, 0.01; temperature 1). A batch without knowns or without unknowns
    simply lacks that term (the official code's empty mean gives NaN there).
    """

    def __init__(self, num_known: int, network: NetworkFactory, optimizer: OptimizerFactory,
                 scheduler: Optional[SchedulerFactory] = None, temperature: float = 1.0,
                 energy_weight: float = 0.01, margin_in: float = -25.0, margin_out: float = -7.0) -> None:
        super().__init__(num_known, network, optimizer, scheduler, temperature)
        if energy_weight < 0:
            raise ValueError(f"energy_weight must be non-negative, got {energy_weight}")
        self.energy_weight, self.margin_in, self.margin_out = float(energy_weight), float(margin_in), float(margin_out)

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
        return super().loss(logits, targets) + self.energy_weight * self.energy_loss(logits, targets)
