"""Tiny-ImageNet-200 in its original layout (any image size: the 64x64 original or a 32x32 copy)."""

import os
from pathlib import Path
from typing import Optional, Union

from osal.data.sources.base import ImageArrays
from osal.data.sources.decode import check_image_size
from osal.data.sources.listing import FileReport, ImageLister
from osal.data.sources.splits import decode_splits
from osal.errors import DataNotFoundError

FOLDER = "tiny-imagenet-200"
LAYOUT = ("wnids.txt, train/<wnid>/images/*.JPEG, val/images/*.JPEG "
          "and val/val_annotations.txt (the original Tiny-ImageNet layout)")


class TinyImageNetSource:
    """Tiny-ImageNet: train = train/<wnid>/images, test = the labelled val split.

    Class order is the sorted wnids, the order torchvision's ImageFolder gives and
    so the one the LfOSA authors' code used.

    Args:
        root: the `tiny-imagenet-200` folder itself or the folder holding it (the config's data_dir).
        image_size: resize every image to (image_size, image_size); None keeps the native size.
        cache_dir: where the decoded images are kept after the first load; None decodes every time.
    """

    def __init__(self, root: Union[str, os.PathLike], image_size: Optional[int] = None,
                 cache_dir: Optional[Union[str, os.PathLike]] = None) -> None:
        self.root = Path(os.path.expanduser(str(root)))
        self.image_size = check_image_size(image_size)
        self.cache_dir = cache_dir

    def _base(self) -> Path:
        for base in (self.root, self.root / FOLDER):
            if (base / "wnids.txt").is_file():
                return base
        raise DataNotFoundError(
            f"No Tiny-ImageNet found under data_dir='{self.root}': expected {self.root}/{FOLDER}/ "
            f"(or data_dir itself) holding {LAYOUT}; point data_dir at that folder or the one holding it."
        )

    def _missing(self, path: Path) -> DataNotFoundError:
        return DataNotFoundError(
            f"Incomplete Tiny-ImageNet under data_dir='{self.root}': {path} is missing or empty; "
            f"expected {LAYOUT}, so copy the whole dataset there."
        )

    def load(self) -> ImageArrays:
        base = self._base()
        wnids = sorted({line.strip() for line in (base / "wnids.txt").read_text().splitlines() if line.strip()})
        if not wnids:
            raise self._missing(base / "wnids.txt")
        index = {wnid: i for i, wnid in enumerate(wnids)}

        train_paths, train_labels = [], []
        report = FileReport()
        lister = ImageLister(report)
        for wnid in wnids:
            files = lister.list(base / "train" / wnid / "images", group=wnid)
            if not files:
                raise self._missing(base / "train" / wnid / "images")
            train_paths += files
            train_labels += [index[wnid]] * len(files)

        annotations = base / "val" / "val_annotations.txt"
        if not annotations.is_file():
            raise self._missing(annotations)
        test_paths, test_labels = [], []
        # One line per val image: file name, wnid, then four bounding-box numbers we do not use.
        for line in annotations.read_text().splitlines():
            fields = line.split("\t")
            if len(fields) < 2:
                continue
            if fields[1] not in index:
                raise DataNotFoundError(
                    f"{annotations} labels {fields[0]} with {fields[1]}, which is not in {base / 'wnids.txt'}; "
                    "use the wnids.txt that came with that copy of Tiny-ImageNet."
                )
            test_paths.append(str(base / "val" / "images" / fields[0]))
            test_labels.append(index[fields[1]])
        if not test_paths:
            raise self._missing(annotations)
        lister.refuse_conflicts(base / "train")

        return decode_splits(train_paths, train_labels, test_paths, test_labels, self._names(base, wnids), "RGB",
                             self.image_size, desc="Tiny-ImageNet images", cache_dir=self.cache_dir,
                             report=report)

    @staticmethod
    def _names(base: Path, wnids: list) -> list:
        """The first name words.txt gives each wnid ("n01443537\\tgoldfish, Carassius auratus" -> "goldfish")."""
        names = {}
        words = base / "words.txt"
        if words.is_file():
            # words.txt of the original lists all ~82k ImageNet wnids; keep only ours.
            wanted = set(wnids)
            for line in words.read_text(encoding="utf-8", errors="replace").splitlines():
                wnid, _, text = line.partition("\t")
                if wnid in wanted and text.split(",")[0].strip():
                    names[wnid] = text.split(",")[0].strip()
        return [names.get(w, w) for w in wnids]
