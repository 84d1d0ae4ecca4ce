"""CIFAR-10 / CIFAR-100 from the original python pickles or from an image-folder copy."""

import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from osal.data.sources.base import ImageArrays
from osal.data.sources.imagefolder import ImageFolderSource
from osal.errors import ConfigError, DataNotFoundError, brief


@dataclass(frozen=True)
class _Spec:
    name: str  # for messages
    pickle_dir: str  # folder the original archive unpacks to
    train_files: tuple
    test_files: tuple
    meta_file: str
    label_key: str
    names_key: str
    folder: str  # image-folder copy: <root>/<folder>/{train,test}/<class>/
    num_classes: int
    torchvision_name: str


_CIFAR10 = _Spec("CIFAR-10", "cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",),
                 "batches.meta", "labels", "label_names", "cifar10", 10, "CIFAR10")
_CIFAR100 = _Spec("CIFAR-100", "cifar-100-python", ("train",), ("test",),
                  "meta", "fine_labels", "fine_label_names", "cifar100", 100, "CIFAR100")


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            # The originals were written by Python 2: encoding="bytes" keeps their str keys as bytes.
            return pickle.load(f, encoding="bytes")
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as err:
        raise ConfigError(f"Could not read CIFAR pickle {path} ({brief(err)}); replace it with an intact "
                          "copy.") from err


def _get(d: dict, key: str, path: Path) -> Any:
    """d[key], whether the pickle stored its keys as bytes (the originals) or str (re-pickled copies)."""
    for k in (key.encode(), key):
        if k in d:
            return d[k]
    raise ConfigError(f"CIFAR pickle {path} has no '{key}' entry; replace it with an original copy.")


class _CIFARSource:
    """Shared reader; subclasses set `spec`.

    Args:
        root: the folder holding the unpacked archive or the image-folder copy (the config's data_dir).
        download: when neither layout is found, let torchvision fetch the archive into root.
        cache_dir: where an image-folder copy is kept decoded after the first load; None decodes every time.
    """

    spec = None

    def __init__(self, root: Union[str, os.PathLike], download: bool = False,
                 cache_dir: Optional[Union[str, os.PathLike]] = None) -> None:
        self.root = Path(os.path.expanduser(str(root)))
        self.download = bool(download)
        self.cache_dir = cache_dir

    def load(self) -> ImageArrays:
        s = self.spec
        pickles, folder = self.root / s.pickle_dir, self.root / s.folder
        if pickles.is_dir():
            return self._read_pickles(pickles)
        if (folder / "train").is_dir():
            return self._read_folder(folder)
        layouts = (f"{pickles}/{s.meta_file} with the other original python pickles, "
                   f"or image folders {folder}/train/<class>/<image> and {folder}/test/<class>/<image>")
        if not self.download:
            raise DataNotFoundError(
                f"No {s.name} found under data_dir='{self.root}': expected {layouts}; "
                "point data_dir at a folder holding one of them, or set dataset.download=true where the network allows."
            )
        try:
            import torchvision.datasets  # imported here: slow to import and only needed to download

            for train in (True, False):
                getattr(torchvision.datasets, s.torchvision_name)(str(self.root), train=train, download=True)
        except Exception as err:  # any network, disk or checksum failure means the same to the user
            raise DataNotFoundError(
                f"Could not download {s.name} into data_dir='{self.root}' ({brief(err)}); "
                f"put {layouts} there by hand and set dataset.download=false."
            ) from err
        return self._read_pickles(pickles)

    def _read_pickles(self, pickles: Path) -> ImageArrays:
        s = self.spec
        for name in s.train_files + s.test_files + (s.meta_file,):
            if not (pickles / name).is_file():
                raise DataNotFoundError(
                    f"Incomplete {s.name} under data_dir='{self.root}': {pickles / name} is missing; "
                    f"unpack the whole original archive into {pickles}."
                )
        meta_path = pickles / s.meta_file
        names = [n.decode() if isinstance(n, bytes) else str(n)
                 for n in _get(_unpickle(meta_path), s.names_key, meta_path)]
        train_images, train_labels = self._read_split(pickles, s.train_files)
        test_images, test_labels = self._read_split(pickles, s.test_files)
        return ImageArrays(train_images, train_labels, test_images, test_labels, names)

    def _read_split(self, pickles: Path, files: tuple) -> tuple[np.ndarray, np.ndarray]:
        images, labels = [], []
        for name in files:
            path = pickles / name
            batch = _unpickle(path)
            data = np.asarray(_get(batch, "data", path), dtype=np.uint8)
            if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
                raise ConfigError(f"CIFAR pickle {path} holds data of shape {data.shape}, not (N, 3072); replace it.")
            # Each row is 1024 red, then 1024 green, then 1024 blue values (CHW); we keep HWC.
            images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            labels.append(np.asarray(_get(batch, self.spec.label_key, path), dtype=np.int64))
        return np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels)

    def _read_folder(self, folder: Path) -> ImageArrays:
        arrays = ImageFolderSource(folder, cache_dir=self.cache_dir).load(desc=f"{self.spec.name} images")
        # Sorted folder names are the CIFAR label order only when every class is there.
        if arrays.num_classes != self.spec.num_classes:
            raise DataNotFoundError(
                f"{self.spec.name} under data_dir='{self.root}' has {arrays.num_classes} class folders in "
                f"{folder}/train, not {self.spec.num_classes}; copy all of them there."
            )
        return arrays


class CIFAR10Source(_CIFARSource):
    """CIFAR-10 from `<root>/cifar-10-batches-py/` or `<root>/cifar10/{train,test}/<class>/`."""

    spec = _CIFAR10


class CIFAR100Source(_CIFARSource):
    """CIFAR-100 (fine labels) from `<root>/cifar-100-python/` or `<root>/cifar100/{train,test}/<class>/`."""

    spec = _CIFAR100
