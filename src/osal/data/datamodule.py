"""The open-set LightningDataModule: one pool state over the training split, loaders derived from it."""

import logging

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from osal.data.batch_augment import BatchAugment
from osal.data.indexed_dataset import IndexedBatches, IndexedImageDataset, IndexedTargets, keep_batch
from osal.data.open_set import initial_labeled_set, num_known_classes, openness_subset
from osal.data.oracle import UNKNOWN, SimulatedOracle
from osal.data.pool import PoolState
from osal.data.transforms import test_transform, train_transform
from osal.errors import ConfigError

log = logging.getLogger(__name__)

NOT_ASKED = -2  # answer slot of an example the oracle has not been asked about


class OpenSetDataModule(L.LightningDataModule):
    """Labeled, invalid and unlabeled pools over one dataset, with the oracle that fills them.

    Args:
        source: an object whose `load()` returns `ImageArrays` (see osal.data.sources).
        mismatch: fraction of classes that are known; the first K in class order.
        init_percent: percentage of known-class training examples labeled at the start.
        mean, std: per-channel normalisation; None computes them from the training split.
        augment: kwargs of `train_transform` (crop_padding, hflip, rotation).
        pipeline: "batched" gathers and augments whole training batches as tensors after they reach
            the device (the image tensor moves to the GPU once); "per_sample" runs torchvision
            transforms per image in the loader (and its worker processes), the textbook data path.
        seed: seeds the initial labeled set and the loaders' shuffling.
        openness: None keeps the training split as it is; a value in [0, 1) keeps a seeded subset of it
            so that that fraction of the unlabeled pool is unknown (see `openness_subset`).
    """

    PIPELINES = ("batched", "per_sample")

    def __init__(self, source, mismatch: float, init_percent: float, init_stratified: bool = False,
                 mean=None, std=None, augment=None, batch_size: int = 128, inference_batch_size: int = 1024,
                 num_workers: int = 0, pin_memory: bool = False, pipeline: str = "batched", seed: int = 0,
                 openness=None):
        super().__init__()
        self.openness = openness
        self.source = source
        self.mismatch = mismatch
        self.init_percent = init_percent
        self.init_stratified = init_stratified
        self.mean, self.std = mean, std
        self.augment = dict(augment or {})
        self.batch_size = int(batch_size)
        self.inference_batch_size = int(inference_batch_size)
        self.num_workers = int(num_workers)
        self.pin_memory = bool(pin_memory)
        self.seed = int(seed)
        if pipeline not in self.PIPELINES:
            raise ConfigError(f"data.pipeline={pipeline!r} is not one of {', '.join(self.PIPELINES)}; "
                              "batched is the fast default, per_sample the per-image torchvision path")
        self.pipeline = pipeline
        self.augment_seed = self.seed
        self._augment_generator = None
        self._batch_augment = None
        self._device_images = None  # (device, the training images there): moved once, reused every batch
        self.train_with_invalid = False  # the detector trains on labeled + invalid, the classifier on labeled
        self.pool = None
        if self.batch_size < 1 or self.inference_batch_size < 1:
            raise ConfigError(f"data.batch_size={batch_size} and data.inference_batch_size={inference_batch_size} "
                              "must be at least 1")

    # -- set-up ----------------------------------------------------------------------
    def setup(self, stage=None) -> None:
        if self.pool is not None:  # Lightning calls setup for every fit/test; the data loads once
            return
        class_names = getattr(self.source, "class_names", None)
        if callable(class_names):  # a source that can name its classes cheaply: check them before decoding
            num_known_classes(self.mismatch, len(class_names()))
        arrays = self.source.load()
        self.class_names = arrays.class_names
        self.num_known = num_known_classes(self.mismatch, arrays.num_classes)
        self.image_size, self.channels = arrays.image_shape[0], arrays.image_shape[2]
        train_images, train_labels = arrays.train_images, arrays.train_labels
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 0]))
        initial = initial_labeled_set(train_labels, self.num_known, self.init_percent, rng, self.init_stratified)
        if self.openness is not None:
            keep = openness_subset(train_labels, self.num_known, initial, self.openness,
                                   np.random.default_rng(np.random.SeedSequence([self.seed, 3])))
            train_images, train_labels, initial = train_images[keep], train_labels[keep], np.searchsorted(keep, initial)
            unknown = int((train_labels >= self.num_known).sum())
            log.info("openness %s: %d of the %d unlabeled examples are unknown (%d of %d training examples kept)",
                     self.openness, unknown, len(keep) - len(initial), len(keep), len(arrays.train_labels))
        # NHWC -> NCHW in a writable copy (a cached source hands over read-only memory maps)
        self.train_images = torch.from_numpy(np.asarray(train_images).transpose(0, 3, 1, 2).copy())
        self.test_images = torch.from_numpy(np.asarray(arrays.test_images).transpose(0, 3, 1, 2).copy())
        self.test_labels = arrays.test_labels
        self.oracle = SimulatedOracle(train_labels, self.num_known)
        if self.mean is None or self.std is None:
            self.mean, self.std = channel_stats(train_images)
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ConfigError(f"dataset.mean/std have {len(self.mean)}/{len(self.std)} values but the images have "
                              f"{self.channels} channel(s); give one value per channel or null to compute them")
        self.known_test = np.flatnonzero(self.test_labels < self.num_known)
        untested = [self.class_names[c] for c in range(self.num_known)
                    if not (self.test_labels[self.known_test] == c).any()]
        if untested:
            # accuracy would silently cover the other known classes only
            raise ConfigError(f"known class(es) {', '.join(repr(n) for n in untested)} have no test images, so test "
                              f"accuracy could not cover them; add test images of every known class (the first "
                              f"{self.num_known} in class order)")

        self.pool = PoolState(len(train_labels))
        self.answers = np.full(len(self.pool), NOT_ASKED, dtype=np.int64)
        self.annotate(initial, round_index=0)
        self.n_known_total = int((train_labels < self.num_known).sum())
        self.n_known_initial_pool = self.n_known_total - len(initial)
        log.info("%d classes (%d known), %d training / %d known-class test examples, %d labeled at start",
                 arrays.num_classes, self.num_known, len(self.pool), len(self.known_test), len(initial))

    # -- the oracle ------------------------------------------------------------------
    def annotate(self, indices, round_index: int) -> dict:
        """Ask the oracle about `indices`: known ones join the labeled set, unknown ones the invalid set."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        answers = self.oracle.answer(indices)
        self.pool.mark(indices, answers != UNKNOWN, round_index)
        self.answers[indices] = answers
        return {"queried": int(len(indices)), "queried_known": int((answers != UNKNOWN).sum())}

    def state_dict(self) -> dict:
        return {**self.pool.state_dict(), "answers": self.answers.copy()}

    def load_state_dict(self, state: dict) -> None:
        self.pool.load_state_dict(state)
        answers = np.asarray(state["answers"], dtype=np.int64)
        if answers.shape != self.answers.shape:
            raise ValueError(f"answers have {answers.shape[0]} entries, this pool has {len(self.pool)}")
        self.answers = answers.copy()

    # -- loaders ---------------------------------------------------------------------
    def begin_fit(self, seed: int) -> None:
        """Seed the batched augmentation of the next fit (the loop calls it with each fit's own seed)."""
        self.augment_seed = int(seed)
        self._augment_generator = None

    def _train_loader(self, dataset) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed)
        # BatchNorm cannot train on a batch of one example: drop such a trailing batch
        drop_last = len(dataset) % self.batch_size == 1 and len(dataset) > 1
        if self.pipeline == "batched":  # the loader only shuffles indices: worker processes would cost more
            return DataLoader(dataset, batch_size=self.batch_size, shuffle=True, generator=generator,
                              drop_last=drop_last, collate_fn=keep_batch, pin_memory=self.pin_memory)
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=True, generator=generator,
                          drop_last=drop_last, num_workers=self.num_workers, pin_memory=self.pin_memory,
                          persistent_workers=self.num_workers > 0)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """Batched pipeline: gather the batch's images on its device and augment them there."""
        images, targets, indices = batch
        if images is not None:  # inference and test batches arrive transformed
            return batch
        device = targets.device
        if self._device_images is None or self._device_images[0] != device:
            self._device_images = (device, self.train_images.to(device))
        if self._augment_generator is None or self._augment_generator.device != device:
            seed = int(np.random.SeedSequence([self.augment_seed, 2]).generate_state(1)[0])
            self._augment_generator = torch.Generator(device=device).manual_seed(seed)
        x = self.batch_augment()(self._device_images[1][indices], self._augment_generator)
        return x, targets, indices

    def training_batches(self, device="cpu"):
        """(x, y, global index) training batches on `device`, ready for the network, outside a Trainer
        (what Lightning does with `train_dataloader` and this module's transfer hook)."""
        for images, targets, indices in self.train_dataloader():
            batch = (None if images is None else images.to(device, non_blocking=True),
                     targets.to(device, non_blocking=True), indices.to(device, non_blocking=True))
            yield self.on_after_batch_transfer(batch, 0)

    def batch_augment(self) -> BatchAugment:
        """The batched counterpart of `train_transform` (built once: it keeps its constants on the device)."""
        if self._batch_augment is None:
            self._batch_augment = BatchAugment(self.mean, self.std, **self.augment)
        return self._batch_augment

    def _inference_loader(self, images, targets, indices) -> DataLoader:
        """Index order, the test transform applied a whole batch at a time."""
        batches = IndexedBatches(images, targets, indices, self.test_transform(), self.inference_batch_size)
        return DataLoader(batches, batch_size=None, shuffle=False, num_workers=self.num_workers,
                          pin_memory=self.pin_memory)

    def train_transform(self):
        return train_transform(self.image_size, self.mean, self.std, **self.augment)

    def test_transform(self):
        return test_transform(self.mean, self.std)

    def train_dataloader(self) -> DataLoader:
        """Labeled examples with their class; with `train_with_invalid`, invalid ones too as class K."""
        indices = self.pool.labeled
        targets = self.answers[indices]
        if self.train_with_invalid:
            invalid = self.pool.invalid
            indices = np.concatenate([indices, invalid])
            targets = np.concatenate([targets, np.full(len(invalid), self.num_known)])
        if self.pipeline == "batched":
            return self._train_loader(IndexedTargets(targets, indices))
        return self._train_loader(IndexedImageDataset(self.train_images, targets, indices, self.train_transform()))

    def pool_dataloader(self) -> DataLoader:
        """The unlabeled pool in index order, with the test transform (never augmented)."""
        indices = self.pool.unlabeled
        return self._inference_loader(self.train_images, np.full(len(indices), -1), indices)

    def labeled_dataloader(self) -> DataLoader:
        """The labeled set with the test transform, in index order (for strategies that need it)."""
        indices = self.pool.labeled
        return self._inference_loader(self.train_images, self.answers[indices], indices)

    def test_dataloader(self) -> DataLoader:
        """The known-class part of the test split: accuracy is measured on it alone."""
        return self._inference_loader(self.test_images, self.test_labels[self.known_test], self.known_test)


def channel_stats(images: np.ndarray, chunk_rows: int = 1 << 22):
    """Per-channel mean and std in [0, 1] units of a uint8 (N, H, W, C) array, in bounded memory."""
    flat = images.reshape(-1, images.shape[-1])
    total = np.zeros(flat.shape[1])
    total_sq = np.zeros(flat.shape[1])
    for start in range(0, len(flat), chunk_rows):
        chunk = flat[start:start + chunk_rows].astype(np.float64) / 255.0
        total += chunk.sum(axis=0)
        total_sq += np.square(chunk).sum(axis=0)
    mean = total / len(flat)
    std = np.sqrt(np.maximum(total_sq / len(flat) - mean ** 2, 1e-12))
    return [float(m) for m in mean], [float(s) for s in std]
