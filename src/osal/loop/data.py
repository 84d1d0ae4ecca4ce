"""The research loop's data: the open-set split of the configured dataset, and loaders over its pool."""

from omegaconf import DictConfig

from osal.build import build
from osal.data.datamodule import PoolDataModule
from osal.data.split import OpenSetSplit


def open_set_data(cfg: DictConfig) -> "tuple[OpenSetSplit, PoolDataModule]":
    """Read the dataset, build the open-set split (`split` config) and its datamodule (`data` config), set up."""
    split = build(cfg.split)
    datamodule = build(cfg.data)(images=split.train_images, pool=split.pool, test_images=split.test_images,
                                 test_labels=split.test_labels)
    datamodule.setup("fit")
    split.train_images = split.test_images = None  # the datamodule's tensors are the one copy kept
    return split, datamodule
