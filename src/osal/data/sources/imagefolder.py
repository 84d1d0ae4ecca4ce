"""Any image classification set stored as one folder per class, per split."""

import os
from pathlib import Path


from osal.data.sources.base import ImageArrays
from osal.data.sources.decode import IMAGE_EXTENSIONS, check_image_size, decode_splits, list_images
from osal.errors import ConfigError, DataNotFoundError


def _class_folders(split_dir: Path) -> list:
    """Sorted names of the (non-hidden) sub-folders of `split_dir`: the torchvision ImageFolder class order."""
    return sorted(d.name for d in split_dir.iterdir() if d.is_dir() and not d.name.startswith("."))


def load_image_folder(root, image_size=None, channels=3, desc="images", cache_dir=None) -> ImageArrays:
    """Read `<root>/train/<class>/...` and `<root>/test/<class>/...` into ImageArrays.

    Args:
        image_size: resize to (image_size, image_size); None keeps the native size.
        channels: 3 decodes as RGB, 1 as grey.
        desc: the data's name, for progress log lines (and the cache entry's name).
        cache_dir: keep the decoded images there (see decode_cache); None decodes every time.
    """
    root = Path(root)
    layout = f"{root}/train/<class>/<image> and {root}/test/<class>/<image>"

    def missing(what: str, fix: str) -> DataNotFoundError:
        return DataNotFoundError(f"No {what} found under data_dir='{root}': expected {layout}; {fix}.")

    train_dir, test_dir = root / "train", root / "test"
    classes = _class_folders(train_dir) if train_dir.is_dir() else []
    train_paths, train_labels = [], []
    for label, name in enumerate(classes):
        files = list_images(train_dir / name)
        if not files:
            # An empty class folder is usually a copy gone wrong, and no example could teach that class.
            raise DataNotFoundError(
                f"Class folder {train_dir / name} holds no images ({', '.join(IMAGE_EXTENSIONS)}); "
                "add its images or remove the folder."
            )
        train_paths += files
        train_labels += [label] * len(files)
    if not train_paths:
        raise missing("image folder", "point data_dir at a folder with that layout")
    if not test_dir.is_dir():
        raise missing("test split", "add a test folder with one sub-folder per class")
    extra = sorted(set(_class_folders(test_dir)) - set(classes))
    if extra:
        raise ConfigError(
            f"Test classes {extra} under {test_dir} have no folder under {train_dir}; "
            "every test class must also be a training class, so rename or remove those folders."
        )
    test_paths, test_labels = [], []
    for label, name in enumerate(classes):
        if (test_dir / name).is_dir():
            files = list_images(test_dir / name)
            test_paths += files
            test_labels += [label] * len(files)
    if not test_paths:
        raise missing("test images", "put the test images in per-class folders there")
    return decode_splits(train_paths, train_labels, test_paths, test_labels, classes,
                         "RGB" if channels == 3 else "L", image_size, desc, cache_dir)


class ImageFolderSource:
    """Images in `<root>/train/<class>/` and `<root>/test/<class>/`; class order = sorted train folder names.

    Args:
        root: the folder holding `train/` and `test/` (the config's data_dir).
        image_size: resize every image to (image_size, image_size); None keeps the
            native size, which must then be the same for every image.
        channels: 3 for RGB, 1 for grey.
        cache_dir: where the decoded images are kept after the first load; None decodes every time.
    """

    def __init__(self, root, image_size=None, channels=3, cache_dir=None):
        self.root = Path(os.path.expanduser(str(root)))
        self.image_size = check_image_size(image_size)
        if channels not in (1, 3):
            raise ConfigError(f"dataset.channels={channels!r} is not supported; set it to 3 (RGB) or 1 (grey).")
        self.channels = channels
        self.cache_dir = cache_dir

    def load(self) -> ImageArrays:
        return load_image_folder(self.root, self.image_size, self.channels, desc=f"images from {self.root}",
                                 cache_dir=self.cache_dir)
