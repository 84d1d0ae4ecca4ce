"""The LightningDataModule: loaders over an ActivePool's images, and nothing else.

What the pool holds (labels, answers, the oracle) lives in osal.data.active_pool; where the images come
from is the caller's business (the research loop's OpenSetSplit, an annotation project's decoded folder).
"""

import logging
from typing import Any, Callable, Iterator, Mapping, Optional, Protocol, Sequence, Union

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from osal.data.active_pool import ActivePool
from osal.data.batch_augment import BatchAugment
from osal.data.image_rows import ImageRows, physical_memory
from osal.data.indexed_dataset import IndexedBatches, IndexedImageDataset, IndexedRows, IndexedTargets, keep_batch
from osal.data.shares import contiguous_share
from osal.data.transforms import test_transform, train_transform
from osal.errors import ConfigError
from osal.knobs import batch_per_process


class Embedder(Protocol):
    """What turns images into frozen features (osal.models.frozen.FrozenFeatures is one)."""

    def embed(self, images: np.ndarray, mean: Sequence[float], std: Sequence[float], what: str) -> np.ndarray: ...

log = logging.getLogger(__name__)

Images = Union[np.ndarray, Callable[[], np.ndarray]]
# (images, targets, global indices); images is None until the batched pipeline gathers them after transfer
Batch = tuple[Optional[torch.Tensor], torch.Tensor, torch.Tensor]


class PoolDataModule(L.LightningDataModule):
    """Training, pool, labeled-set and test loaders over one pool of images.

    Args:
        images: the pool's uint8 (N, H, W, C) images, row i = global index i, or a zero-argument callable
            returning them (called on the first `setup`: importing answers never decodes images).
        pool: the ActivePool over those images (its labels decide what a fit trains on).
        test_images, test_labels: the test split (every class; only the known ones are tested), or None
            when there is none (an annotation project).
        mean, std: per-channel normalisation; None computes them from `images`.
        augment: kwargs of `train_transform` (crop_padding, hflip, rotation).
        pipeline: "batched" gathers and augments whole training batches as tensors after they reach
            the device (the image tensor moves to the GPU once); "per_sample" runs torchvision
            transforms per image in the loader (and its worker processes), the textbook data path.
        seed: seeds the loaders' shuffling.
        memory_budget: bytes of decoded images a split may occupy in memory (None: half of this machine's
            RAM). A larger split is read a batch at a time (osal.data.image_rows), from the decode cache's
            file without its pages staying resident, the batched pipeline gathering each training batch in
            the loader (its `num_workers` read ahead) instead of from one tensor on the device.
        features: a frozen backbone (osal.models.frozen, `model.freeze=true`): the images are embedded through
            it once at setup and the loaders hand out (B, D) features, neither augmented nor normalised again.

    Under DDP (a Trainer with several processes) each process trains on its DistributedSampler share with
    batch_size / processes examples a step, so a step still sees `batch_size` examples as on one device, and
    tests its contiguous share of the test split; inference loaders take the share they are asked for (`part`).
    """

    PIPELINES = ("batched", "per_sample")

    def __init__(self, images: Images, pool: ActivePool, test_images: Optional[np.ndarray] = None,
                 test_labels: Optional[np.ndarray] = None, mean: Optional[Sequence[float]] = None,
                 std: Optional[Sequence[float]] = None, augment: Optional[Mapping[str, Any]] = None,
                 batch_size: int = 128, inference_batch_size: int = 1024, num_workers: int = 0,
                 pin_memory: bool = False, pipeline: str = "batched", seed: int = 0,
                 memory_budget: Optional[float] = None, features: Optional[Embedder] = None) -> None:
        super().__init__()
        if pipeline not in self.PIPELINES:
            raise ConfigError(f"data.pipeline={pipeline!r} is not one of {', '.join(self.PIPELINES)}; "
                              "batched is the fast default, per_sample the per-image torchvision path")
        if int(batch_size) < 1 or int(inference_batch_size) < 1:
            raise ConfigError(f"data.batch_size={batch_size} and data.inference_batch_size={inference_batch_size} "
                              "must be at least 1")
        self._images = images
        self.pool = pool
        self.num_known = pool.num_known
        self._test = (test_images, test_labels)
        self.mean, self.std = mean, std
        self.augment = dict(augment or {})
        self.batch_size = int(batch_size)
        self.inference_batch_size = int(inference_batch_size)
        self.num_workers = int(num_workers)
        self.pin_memory = bool(pin_memory)
        self.seed = int(seed)
        self.pipeline = pipeline
        self.memory_budget = int(memory_budget) if memory_budget is not None else physical_memory() // 2
        self.augment_seed = self.seed
        self.with_invalid = False  # what the current fit trains on: set by `begin_fit`
        self.unlabeled = 0
        self._augment_generator = None
        self._batch_augment = None
        self._device_images = None  # (device, the training images there): moved once, reused every batch
        self.train_images = None
        self.test_images = self.test_labels = self.known_test = None
        self.features = features

    # -- set-up ----------------------------------------------------------------------
    def setup(self, stage: Optional[str] = None) -> None:
        if self.train_images is not None:  # Lightning calls setup for every fit/test; the images load once
            return
        images = self._images() if callable(self._images) else self._images
        images = np.asarray(images)
        if images.ndim != 4 or len(images) != len(self.pool):
            raise ValueError(f"the pool has {len(self.pool)} entries but the images array has shape {images.shape}")
        self.image_size, self.channels = images.shape[1], images.shape[3]
        held = self._held("pool", images) if self.features is None else images
        if self.mean is None or self.std is None:  # read through `held` beyond the budget: no pages kept resident
            self.mean, self.std = channel_stats(held if isinstance(held, (np.ndarray, ImageRows)) else images)
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ConfigError(f"dataset.mean/std have {len(self.mean)}/{len(self.std)} values but the images have "
                              f"{self.channels} channel(s); give one value per channel or null to compute them")
        self.train_images = held if self.features is None else self._embedded("pool", images)
        self._images = None  # the tensor is the one copy kept
        test_images, test_labels = self._test
        if test_images is not None:
            self.test_images = (self._held("test", np.asarray(test_images)) if self.features is None else
                                self._embedded("test", np.asarray(test_images)))
            self.test_labels = np.asarray(test_labels)
            self.known_test = np.flatnonzero(self.test_labels < self.num_known)
            self._test = None

    def _held(self, split: str, images: np.ndarray) -> Union[torch.Tensor, ImageRows]:
        """Within the memory budget, an NCHW tensor (a writable copy: a cached source hands over read-only
        memory maps); beyond it, rows read a batch at a time."""
        if images.nbytes <= self.memory_budget:
            return torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
        rows = ImageRows(images)
        where = "read from its decode cache file" if rows.from_file else "indexed where it lies"
        log.info("the %s images (%.2f GB decoded) exceed data.memory_budget (%.2f GB): %s a batch at a time",
                 split, images.nbytes / 1e9, self.memory_budget / 1e9, where)
        return rows

    def _embedded(self, split: str, images: np.ndarray) -> torch.Tensor:
        """The frozen backbone's (N, D) features of a split's images (read from the cache when it has them)."""
        return torch.from_numpy(self.features.embed(images, self.mean, self.std, f"{split} images"))

    @property
    def frozen(self) -> bool:
        """Whether the loaders hand out frozen features instead of images."""
        return self.features is not None

    @property
    def images_in_memory(self) -> bool:
        """Whether the pool's images are one in-memory tensor (else ImageRows, read a batch at a time)."""
        return torch.is_tensor(self.train_images)

    # -- loaders ---------------------------------------------------------------------
    def begin_fit(self, seed: int, with_invalid: bool, unlabeled: int = 0) -> None:
        """Prepare the next fit: its own seed for the batched augmentation, whether it trains on the
        invalid set as class K (the detector) or on the labeled set alone (the classifier), and how many
        unlabeled examples it also trains on as target -1 (-1: all; ActivePool.training_set)."""
        self.augment_seed = int(seed)
        self.with_invalid = bool(with_invalid)
        self.unlabeled = int(unlabeled)
        self._augment_generator = None

    def processes(self) -> tuple[int, int]:
        """(this process's rank, processes) of the Trainer running this datamodule; (0, 1) outside DDP."""
        trainer = getattr(self, "trainer", None)
        world = int(getattr(trainer, "world_size", 1) or 1) if trainer is not None else 1
        return (int(trainer.global_rank), world) if world > 1 else (0, 1)

    def _train_loader(self, dataset: Dataset) -> DataLoader:
        rank, world = self.processes()
        batch_size = batch_per_process(self.batch_size, world)
        if world > 1:  # an equal share per process (padded by repetition, as DDP needs); Lightning sets its epoch
            sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=self.seed)
            order = dict(sampler=sampler)
            examples = len(sampler)
        else:
            order = dict(shuffle=True, generator=torch.Generator().manual_seed(self.seed))
            examples = len(dataset)
        # BatchNorm cannot train on a batch of one example: drop such a trailing batch
        drop_last = examples % batch_size == 1 and examples > 1
        if self.pipeline == "batched":
            # in memory the loader only shuffles indices (worker processes would cost more); read a batch at a
            # time, its workers read the next batches ahead
            workers = 0 if self.images_in_memory else self.num_workers
            return DataLoader(dataset, batch_size=batch_size, drop_last=drop_last, collate_fn=keep_batch,
                              pin_memory=self.pin_memory, num_workers=workers, persistent_workers=False, **order)
        return DataLoader(dataset, batch_size=batch_size, drop_last=drop_last, num_workers=self.num_workers,
                          pin_memory=self.pin_memory, persistent_workers=self.num_workers > 0, **order)

    def on_after_batch_transfer(self, batch: Batch, dataloader_idx: int) -> Batch:
        """Batched pipeline: gather the batch's images on its device and augment them there."""
        images, targets, indices = batch
        if images is not None and images.dtype != torch.uint8:  # inference and test batches arrive transformed
            return batch
        device = targets.device
        if images is None:  # in memory: gathered from the tensor moved to the device once
            if self._device_images is None or self._device_images[0] != device:
                self._device_images = (device, self.train_images.to(device))
            images = self._device_images[1][indices]
        if self._augment_generator is None or self._augment_generator.device != device:
            rank, world = self.processes()  # every DDP process draws its own augmentations
            entropy = [self.augment_seed, 2] if world == 1 else [self.augment_seed, 2, rank]
            seed = int(np.random.SeedSequence(entropy).generate_state(1)[0])
            self._augment_generator = torch.Generator(device=device).manual_seed(seed)
        x = self.batch_augment()(images, self._augment_generator)
        return x, targets, indices

    def training_batches(self, device: Union[str, torch.device] = "cpu") -> Iterator[Batch]:
        """(x, y, global index) training batches on `device`, ready for the network, outside a Trainer
        (what Lightning does with `train_dataloader` and this module's transfer hook)."""
        for images, targets, indices in self.train_dataloader():
            batch = (None if images is None else images.to(device, non_blocking=True),
                     targets.to(device, non_blocking=True), indices.to(device, non_blocking=True))
            yield self.on_after_batch_transfer(batch, 0)

    def batch_augment(self) -> BatchAugment:
        """The batched counterpart of `train_transform` (built once: it keeps its constants on the device)."""
        if self._batch_augment is None:
            self._batch_augment = unchanged if self.frozen else BatchAugment(self.mean, self.std, **self.augment)
        return self._batch_augment

    def _inference_loader(self, images: torch.Tensor, targets: np.ndarray, indices: np.ndarray) -> DataLoader:
        """Index order, the test transform applied a whole batch at a time."""
        batches = IndexedBatches(images, targets, indices, self.test_transform(), self.inference_batch_size)
        return DataLoader(batches, batch_size=None, shuffle=False, num_workers=self.num_workers,
                          pin_memory=self.pin_memory)

    def train_transform(self) -> Callable[[torch.Tensor], torch.Tensor]:
        return unchanged if self.frozen else train_transform(self.image_size, self.mean, self.std, **self.augment)

    def test_transform(self) -> Callable[[torch.Tensor], torch.Tensor]:
        return unchanged if self.frozen else test_transform(self.mean, self.std)

    def train_dataloader(self) -> DataLoader:
        """Labeled examples with their class; for a fit `begin_fit` set `with_invalid`, invalid ones as class K,
        and `unlabeled`, unlabeled ones as -1."""
        indices, targets = self.pool.training_set(self.with_invalid, self.unlabeled, self.augment_seed)
        if self.pipeline == "batched" and self.images_in_memory:
            return self._train_loader(IndexedTargets(targets, indices))
        if self.pipeline == "batched":  # the loader gathers each batch's raw images, augmented after transfer
            return self._train_loader(IndexedRows(self.train_images, targets, indices))
        return self._train_loader(IndexedImageDataset(self.train_images, targets, indices, self.train_transform()))

    def pool_dataloader(self, part: Optional[tuple[int, int]] = None) -> DataLoader:
        """The unlabeled pool in index order, with the test transform (never augmented); `part` = (share,
        shares): that contiguous share of it alone (one DDP process's)."""
        indices = share_of(self.pool.unlabeled, part)
        return self._inference_loader(self.train_images, np.full(len(indices), -1), indices)

    def labeled_dataloader(self, part: Optional[tuple[int, int]] = None) -> DataLoader:
        """The labeled set with the test transform, in index order (for strategies that need it)."""
        indices = share_of(self.pool.labeled, part)
        return self._inference_loader(self.train_images, self.pool.answers[indices], indices)

    def invalid_dataloader(self, part: Optional[tuple[int, int]] = None) -> DataLoader:
        """The invalid set (queried unknowns) with the test transform, in index order, as class K."""
        indices = share_of(self.pool.invalid, part)
        return self._inference_loader(self.train_images, np.full(len(indices), self.num_known), indices)

    def test_dataloader(self) -> DataLoader:
        """The known-class part of the test split: accuracy is measured on it alone (under DDP, each process
        on its contiguous share; the test metrics add up the shares' counts)."""
        if self.known_test is None:
            raise ConfigError("this pool has no test split (an annotation project); measure the exported models "
                              "on data of your own")
        known = share_of(self.known_test, self.processes())
        return self._inference_loader(self.test_images, self.test_labels[known], known)


def unchanged(x: torch.Tensor, *_: Any) -> torch.Tensor:
    """Frozen features need no transform and no augmentation."""
    return x


def share_of(indices: np.ndarray, part: Optional[tuple[int, int]]) -> np.ndarray:
    return indices if part is None else contiguous_share(indices, *part)


def channel_stats(images: Union[np.ndarray, ImageRows], chunk_rows: int = 1 << 22) -> tuple[list[float], list[float]]:
    """Per-channel mean and std in [0, 1] units of uint8 (N, H, W, C) images (an array, or ImageRows read
    from their file in the same chunks, so both give the same numbers), in bounded memory."""
    if isinstance(images, ImageRows):
        channels, pixels = images.row_shape[-1], len(images) * images.row_bytes // images.row_shape[-1]
        read = images.pixels
    else:
        flat = images.reshape(-1, images.shape[-1])
        channels, pixels = flat.shape[1], len(flat)

        def read(start: int, stop: int) -> np.ndarray:
            return flat[start:stop]
    total = np.zeros(channels)
    total_sq = np.zeros(channels)
    for start in range(0, pixels, chunk_rows):
        chunk = read(start, start + chunk_rows).astype(np.float64) / 255.0
        total += chunk.sum(axis=0)
        total_sq += np.square(chunk).sum(axis=0)
    mean = total / pixels
    std = np.sqrt(np.maximum(total_sq / pixels - mean ** 2, 1e-12))
    return [float(m) for m in mean], [float(s) for s in std]
