"""The datamodule of an annotation project: an unlabeled pool of images, no ground truth, no test split."""

import numpy as np
import torch

from osal.data.datamodule import OpenSetDataModule
from osal.errors import ConfigError


class AnnotationDataModule(OpenSetDataModule):
    """OpenSetDataModule's loaders over a project's pool; its oracle is whoever answers (a `HumanOracle`).

    Args:
        load_images: a zero-argument callable returning the pool as a uint8 (N, H, W, C) array;
            called on the first `setup`, so importing answers never decodes images.
        pool: the project's PoolState; answers: its answer array (class index, UNKNOWN, or NOT_ASKED).
        class_names: the wanted classes, in class-index order.
        mean, std: per-channel normalisation, fixed when the project was created.
        Other arguments as OpenSetDataModule.
    """

    def __init__(self, load_images, pool, answers, class_names, mean, std, **kwargs):
        super().__init__(source=None, mismatch=None, init_percent=None, mean=mean, std=std, **kwargs)
        self._load_images = load_images
        self.pool, self.answers = pool, answers
        self.class_names = list(class_names)
        self.num_known = len(self.class_names)
        self.oracle = None
        self.train_images = None

    def setup(self, stage=None) -> None:
        if self.train_images is not None:  # Lightning calls setup for every fit; the images load once
            return
        images = np.asarray(self._load_images())
        if images.ndim != 4 or len(images) != len(self.pool):
            raise ValueError(f"the pool has {len(self.pool)} entries but the images array has shape {images.shape}")
        self.image_size, self.channels = images.shape[1], images.shape[3]
        self.train_images = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())

    def test_dataloader(self):
        raise ConfigError("an annotation project has no test split; measure the exported models on data of your own")
