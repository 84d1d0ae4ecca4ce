"""BUAL's detector (Zong et al., ECCV 2024): an auxiliary K+1-way network and a negative-learning head, fit together.

The strategy (osal.strategies.bual) reads both through one query network, `BUALQueryNetwork`, whose logits are
the auxiliary network's K+1 logits followed by the sum, over the snapshots taken every `check_every` epochs, of
the negative-learning head's softmax: what the official code accumulates while it trains (its `query_prob`).
"""

import copy
from typing import Optional, Union

import lightning as L
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.optim import Optimizer

from osal.errors import DivergenceError
from osal.models.modules import NetworkFactory, OptimizerFactory, SchedulerFactory


def feature_dim(network: nn.Module) -> int:
    """The width of a Network's features (the input of its linear head)."""
    return int(network.head.in_features)


class NegativeLearningNetwork(nn.Module):
    """A network with a second K-way head on its features, trained by negative learning (the official ResNet's
    second output). The network's own head (the classifier's, when it continues from one) is left untouched."""

    def __init__(self, network: nn.Module, num_known: int) -> None:
        super().__init__()
        self.network = network
        self.head = nn.Linear(feature_dim(network), num_known)
        self.freeze_own_head()

    def freeze_own_head(self) -> None:
        """The network's own head gets no gradient from the negative-learning loss (as in the official code, where
        the optimizer skips it); marked frozen, it is not a parameter left unused by a step."""
        for parameter in self.network.head.parameters():
            parameter.requires_grad_(False)

    @property
    def channels_last(self) -> Optional[bool]:
        return getattr(self.network, "channels_last", None)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(features, negative-learning logits)."""
        features = self.network.forward_features(x)[0]
        return features, self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)[1]


class BUALQueryNetwork(nn.Module):
    """What the loop's inference runs for BUAL's query: logits = [the auxiliary network's K+1 logits (zeros when
    it was not trained: no unknown had been queried), the sum over the snapshots of softmax(negative-learning
    logits) (K columns)]; features are the last snapshot's (the auxiliary network's when there is none).

    The snapshots are registered submodules, so the loop's `.to(device)` moves them with the rest.
    """

    def __init__(self, aux: nn.Module, num_known: int) -> None:
        super().__init__()
        self.aux = aux
        self.num_known = int(num_known)
        self.snapshots = nn.ModuleList()
        self.aux_trained = True

    @property
    def channels_last(self) -> Optional[bool]:
        return getattr(self.aux, "channels_last", None)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k = self.num_known
        features = aux_logits = None
        if self.aux_trained or not len(self.snapshots):
            features, aux_logits = self.aux.forward_features(x)
        if not self.aux_trained:
            aux_logits = x.new_zeros((len(x), k + 1), dtype=torch.float32)
        total = x.new_zeros((len(x), k), dtype=torch.float32)
        for snapshot in self.snapshots:
            features, logits = snapshot.forward_features(x)
            total = total + torch.softmax(logits.float(), dim=1)
        return features, torch.cat([aux_logits.float(), total], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)[1]


def negative_learning_loss(logits: torch.Tensor, complementary: torch.Tensor) -> torch.Tensor:
    """Mean of -log(clamp(1 - p_c, 1e-5, 1)) over the rows, p_c the softmax probability of each row's
    complementary label c (a class the example is taken not to be): the official NLLLoss on log(1 - p)."""
    probability = F.softmax(logits, dim=1)
    return F.nll_loss(torch.log(torch.clamp(1.0 - probability, min=1e-5, max=1.0)), complementary)


class BUALDetectorModule(L.LightningModule):
    """BUAL's two query networks, trained in one fit with manual optimisation (two optimizers).

    * the auxiliary network, a fresh `network(num_outputs=K+1)`: cross-entropy on the rows with target >= 0
      (labeled as their class, queried unknowns as class K); trained only once the invalid set holds examples
      (the official code has no auxiliary network before the first unknown is queried);
    * the negative-learning network: the round's classifier network (`start_from`, a deep copy: the loop reads
      the classifier's pool logits afterwards) with a new K-way head on its features, trained with the
      negative-learning loss on the rows with target < K: the labeled ones (complementary label: a uniformly
      random class other than their own) and the unlabeled sample (target -1, complementary label uniform over
      the K classes, as the official random label plus a random non-zero offset). All its parameters are
      trained, backbone included. Without `start_from` (a unit test, an annotation project) it starts from a
      fresh `network(num_outputs=K)`.

    At the start of every epoch e with e % `check_every` == 0, and after the last epoch when the epoch count is a
    multiple of `check_every` (the official last check, at epoch nl_epochs), a CPU copy of the negative-learning
    network is kept: `self.net` (a BUALQueryNetwork) sums their softmax outputs at query time. The complementary
    labels come from a generator seeded from torch.initial_seed() when the fit starts (the loop seeds every fit).

    Args:
        num_known: K.
        network: factory `network(num_outputs=...)` (a Hydra partial).
        optimizer: factory `optimizer(params)`, called once per network; scheduler: factory or None, stepped
            once per epoch for each.
        check_every: epochs between two snapshots of the negative-learning head (the official 5).
    """

    role = "detector"
    relative_step_cost = 2.0  # two networks trained a step (osal.loop.protocol_estimate)

    @staticmethod
    def query_passes(epochs: int, check_every: int = 5) -> float:
        """Pool passes of a query: the auxiliary network and every snapshot (osal.loop.protocol_estimate)."""
        return 2.0 + epochs // int(check_every)  # snapshots at epochs 0, c, 2c, ... below E, and E when c divides it

    def __init__(self, num_known: int, network: NetworkFactory, optimizer: OptimizerFactory,
                 scheduler: Optional[SchedulerFactory] = None, check_every: int = 5) -> None:
        super().__init__()
        if int(check_every) < 1:
            raise ValueError(f"check_every must be at least 1, got {check_every}")
        self.automatic_optimization = False
        self.num_known = int(num_known)
        self.check_every = int(check_every)
        self.net = BUALQueryNetwork(network(num_outputs=self.num_known + 1), self.num_known)
        self.nl = NegativeLearningNetwork(network(num_outputs=self.num_known), self.num_known)
        self._optimizer, self._scheduler = optimizer, scheduler
        self.with_unknowns = True  # fit by fit, whether the invalid set holds any example (on_fit_start)
        self._generator: Optional[torch.Generator] = None
        self._seed = 0
        self._snapshot_epochs: list[int] = []
        self._memory_format = torch.contiguous_format

    @property
    def num_outputs(self) -> int:
        """The query network's columns: K+1 auxiliary logits, then K summed negative-learning probabilities."""
        return 2 * self.num_known + 1

    def start_from(self, network: nn.Module) -> None:
        """Continue the negative-learning network from a trained classifier network (copied, never changed)."""
        self.nl.network = copy.deepcopy(network)
        self.nl.freeze_own_head()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    # -- the fit -----------------------------------------------------------------------------
    def on_fit_start(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        self.with_unknowns = datamodule is None or len(datamodule.pool.invalid) > 0
        self.net.aux_trained = self.with_unknowns
        wanted = self.nl.channels_last
        channels_last = self.device.type == "cuda" if wanted is None else bool(wanted)
        self._memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.net.aux.to(memory_format=self._memory_format)
        self.nl.to(memory_format=self._memory_format)
        self._seed = torch.initial_seed()
        self._generator = None
        self.net.snapshots = nn.ModuleList()
        self._snapshot_epochs = []

    def complementary_labels(self, targets: torch.Tensor) -> torch.Tensor:
        """A class each row is taken not to be: (y + r) % K with r uniform in 1..K-1, y the row's class, or a
        uniformly random class for an unlabeled row (target -1), as the official NL_Dataset gives it."""
        if self._generator is None or self._generator.device != targets.device:
            self._generator = torch.Generator(device=targets.device).manual_seed(self._seed)
        k = self.num_known
        shape, device = targets.shape, targets.device
        random_class = torch.randint(0, k, shape, generator=self._generator, device=device)
        offset = torch.randint(1, max(k, 2), shape, generator=self._generator, device=device)
        base = torch.where(targets < 0, random_class, targets)
        return (base + offset) % k

    def snapshot(self, epoch: int) -> None:
        """Keep a CPU copy of the negative-learning network as it is at the start of `epoch`."""
        if epoch in self._snapshot_epochs:
            return
        copied = copy.deepcopy(self.nl).cpu().eval()
        for parameter in copied.parameters():
            parameter.requires_grad_(False)
        self.net.snapshots.append(copied)
        self._snapshot_epochs.append(epoch)

    def on_train_epoch_start(self) -> None:
        self._sums = {"nl": None, "aux": None}
        self._counts = {"nl": 0, "aux": 0}
        if self.current_epoch % self.check_every == 0:
            self.snapshot(self.current_epoch)

    def _add(self, name: str, loss: torch.Tensor, rows: int) -> None:
        # summed on the device, read once an epoch (as ClassifierModule: no CPU wait per step)
        weighted = loss.detach() * rows
        self._sums[name] = weighted if self._sums[name] is None else self._sums[name] + weighted
        self._counts[name] += rows

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y, _ = batch
        x = x.contiguous(memory_format=self._memory_format)
        optimizers = self.optimizers()
        aux_optimizer, nl_optimizer = optimizers
        k = self.num_known
        if self.with_unknowns:
            rows = y >= 0
            if rows.any():
                loss = F.cross_entropy(self.net.aux(x[rows]), y[rows])
                aux_optimizer.zero_grad()
                self.manual_backward(loss)
                aux_optimizer.step()
                self._add("aux", loss, int(rows.sum()))
        rows = y < k
        if rows.any():
            targets = y[rows]
            loss = negative_learning_loss(self.nl(x[rows]), self.complementary_labels(targets))
            nl_optimizer.zero_grad()
            self.manual_backward(loss)
            nl_optimizer.step()
            self._add("nl", loss, len(targets))

    def on_train_epoch_end(self) -> None:
        for name, metric in (("nl", "train_loss"), ("aux", "aux_loss")):
            if self._sums[name] is None:
                continue
            mean = self._sums[name] / self._counts[name]
            if not torch.isfinite(mean):
                which = "negative-learning" if name == "nl" else "auxiliary"
                raise DivergenceError(f"the detector's {which} training loss became {mean.item()} in epoch "
                                      f"{self.current_epoch}; lower optimizer.lr or check the data")
            self.log(metric, mean, prog_bar=name == "nl", sync_dist=True)
        schedulers = self.lr_schedulers()
        if schedulers is not None:
            aux_scheduler, nl_scheduler = schedulers
            if self.with_unknowns:  # an optimizer that never stepped keeps its schedule where it is
                aux_scheduler.step()
            nl_scheduler.step()

    def on_train_end(self) -> None:
        # before the query callback's on_fit_end: the official last check comes after the last epoch
        epochs = self.trainer.current_epoch
        if epochs % self.check_every == 0:
            self.snapshot(epochs)

    def configure_optimizers(self) -> Union[list[Optimizer], tuple[list, list]]:
        trained = [parameter for parameter in self.nl.parameters() if parameter.requires_grad]
        optimizers = [self._optimizer(self.net.aux.parameters()), self._optimizer(trained)]
        if not self._scheduler:  # scheduler=none composes to an empty node
            return optimizers
        return optimizers, [self._scheduler(optimizer) for optimizer in optimizers]
