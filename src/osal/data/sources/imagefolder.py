"""Any image classification set stored as one folder per class, per split."""

import os
from pathlib import Path
from typing import Optional, Union

from osal.data.sources.base import ImageArrays
from osal.data.sources.decode import check_image_size, image_mode
from osal.data.sources.listing import FileReport, ImageLister
from osal.data.sources.splits import decode_splits
from osal.errors import ConfigError, DataNotFoundError


def _class_folders(split_dir: Path) -> list:
    """Sorted names of the (non-hidden) sub-folders of `split_dir`: the torchvision ImageFolder class order."""
    return sorted(d.name for d in split_dir.iterdir() if d.is_dir() and not d.name.startswith("."))


def list_split(split_dir: Path, classes: list, report: FileReport, require_each: bool) -> tuple[list[str], list[int]]:
    """(paths, labels) of `split_dir/<class>/...` for each class in `classes` that has a folder there."""
    lister = ImageLister(report)
    paths, labels = [], []
    for label, name in enumerate(classes):
        if not (split_dir / name).is_dir():
            continue
        files = lister.list(split_dir / name, group=name)
        lister.refuse_conflicts(split_dir)
        if not files and require_each:
            # An empty class folder is usually a copy gone wrong, and no example could teach that class.
            raise DataNotFoundError(f"Class folder {split_dir / name} holds no images (any format Pillow reads: "
                                    ".jpg, .png, .tif, .bmp, ...); add its images or remove the folder.")
        paths += files
        labels += [label] * len(files)
    return paths, labels


class ImageFolderSource:
    """Images in `<root>/train/<class>/` and `<root>/test/<class>/`; class order = sorted train folder names.

    Folders are searched recursively; links are followed where they do not loop, each file is
    counted once, and files that are not images are skipped with one warning that counts them.

    Args:
        root: the folder holding `train/` and `test/` (the config's data_dir).
        image_size: resize every image to (image_size, image_size); None keeps the
            native size, which must then be the same for every image.
        channels: 3 for RGB, 1 for grey.
        cache_dir: where the decoded images are kept after the first load; None decodes every time.
    """

    def __init__(self, root: Union[str, os.PathLike], image_size: Optional[int] = None, channels: int = 3,
                 cache_dir: Optional[Union[str, os.PathLike]] = None) -> None:
        self.root = Path(os.path.expanduser(str(root)))
        self.image_size = check_image_size(image_size)
        self.mode = image_mode(channels)
        self.channels = channels
        self.cache_dir = cache_dir

    @property
    def _layout(self) -> str:
        return f"{self.root}/train/<class>/<image> and {self.root}/test/<class>/<image>"

    def _missing(self, what: str, fix: str) -> DataNotFoundError:
        return DataNotFoundError(f"No {what} found under data_dir='{self.root}': expected {self._layout}; {fix}.")

    def class_names(self) -> list:
        """The classes (train sub-folders, sorted), read without decoding anything."""
        train_dir = self.root / "train"
        classes = _class_folders(train_dir) if train_dir.is_dir() else []
        if not classes:
            raise self._missing("image folder", "point data_dir at a folder with that layout")
        return classes

    def load(self, desc: str = None) -> ImageArrays:
        """Both splits decoded; `desc` names the data in log lines and in the cache entry's name."""
        classes = self.class_names()
        train_dir, test_dir = self.root / "train", self.root / "test"
        report = FileReport()
        train_paths, train_labels = list_split(train_dir, classes, report, require_each=True)
        if not test_dir.is_dir():
            raise self._missing("test split", "add a test folder with one sub-folder per class")
        extra = sorted(set(_class_folders(test_dir)) - set(classes))
        if extra:
            raise ConfigError(
                f"Test classes {extra} under {test_dir} have no folder under {train_dir}; "
                "every test class must also be a training class, so rename or remove those folders."
            )
        test_paths, test_labels = list_split(test_dir, classes, report, require_each=False)
        if not test_paths:
            raise self._missing("test images", "put the test images in per-class folders there")
        return decode_splits(train_paths, train_labels, test_paths, test_labels, classes,
                             self.mode, self.image_size, desc or f"images from {self.root}",
                             self.cache_dir, report)
