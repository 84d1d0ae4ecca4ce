"""MNIST and Fashion-MNIST in torchvision's on-disk layout, read through torchvision."""

import os
from pathlib import Path
from typing import Union

import numpy as np

from osal.data.sources.base import ImageArrays
from osal.errors import ConfigError, DataNotFoundError, brief

# The unpacked idx files torchvision reads from <root>/<MNIST|FashionMNIST>/raw/.
RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


class _TorchvisionIdxSource:
    """Shared reader; subclasses name the torchvision dataset class (which is also its folder name).

    Args:
        root: the folder holding `<name>/raw/` (the config's data_dir).
        download: when the files are missing, let torchvision fetch them into root.
    """

    torchvision_name = None  # "MNIST" or "FashionMNIST"
    display_name = None

    def __init__(self, root: Union[str, os.PathLike], download: bool = False) -> None:
        self.root = Path(os.path.expanduser(str(root)))
        self.download = bool(download)

    def _dataset_class(self) -> type:
        # Imported here: torchvision is slow to import and only needed when loading.
        import torchvision.datasets

        return getattr(torchvision.datasets, self.torchvision_name)

    def load(self) -> ImageArrays:
        raw = self.root / self.torchvision_name / "raw"
        if self._missing(raw) and self.download:
            try:
                for train in (True, False):
                    self._dataset_class()(str(self.root), train=train, download=True)
            except Exception as err:  # any network, disk or checksum failure means the same to the user
                raise DataNotFoundError(
                    f"Could not download {self.display_name} into data_dir='{self.root}' ({brief(err)}); "
                    f"put {raw}/{RAW_FILES[0]} and the other three idx files there by hand (torchvision layout) "
                    "and set dataset.download=false."
                ) from err
        missing = self._missing(raw)
        if missing:
            raise DataNotFoundError(self._not_found_message(raw, missing))
        try:
            train = self._dataset_class()(str(self.root), train=True, download=False)
            test = self._dataset_class()(str(self.root), train=False, download=False)
        except (RuntimeError, TypeError, ValueError, AssertionError, OSError) as err:
            raise ConfigError(
                f"Could not read {self.display_name} from {raw} ({brief(err)}); replace those idx files with intact "
                "copies."
            ) from err
        return ImageArrays(
            # torchvision gives (N, 28, 28) uint8 tensors; add the channel axis.
            train_images=train.data.numpy()[..., None],
            train_labels=train.targets.numpy().astype(np.int64),
            test_images=test.data.numpy()[..., None],
            test_labels=test.targets.numpy().astype(np.int64),
            class_names=list(train.classes),
        )

    @staticmethod
    def _missing(raw: Path) -> list:
        return [name for name in RAW_FILES if not (raw / name).is_file()]

    def _not_found_message(self, raw: Path, missing: list) -> str:
        gz = [name for name in missing if (raw / f"{name}.gz").is_file()]
        if len(gz) == len(missing):
            # torchvision itself reads only the unpacked files; with download=True it unpacks
            # original .gz files it finds (checked by md5) without using the network.
            return (
                f"No unpacked {self.display_name} found under data_dir='{self.root}': {raw} holds "
                f"{missing[0]}.gz but torchvision reads {raw}/{missing[0]}; gunzip the .gz files there, "
                "or set dataset.download=true to let torchvision unpack the original archives."
            )
        return (
            f"No {self.display_name} found under data_dir='{self.root}': expected {raw}/{missing[0]} "
            "(torchvision layout); point data_dir at a folder holding it, "
            "or set dataset.download=true where the network allows."
        )


class MNISTSource(_TorchvisionIdxSource):
    """MNIST digits from `<root>/MNIST/raw/*-ubyte` (what torchvision.datasets.MNIST reads)."""

    torchvision_name = "MNIST"
    display_name = "MNIST"


class FashionMNISTSource(_TorchvisionIdxSource):
    """Fashion-MNIST from `<root>/FashionMNIST/raw/*-ubyte` (what torchvision.datasets.FashionMNIST reads)."""

    torchvision_name = "FashionMNIST"
    display_name = "Fashion-MNIST"
