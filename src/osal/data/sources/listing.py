"""Finding the image files of a folder: every file counted once, links followed only where they do not loop,
and whatever is passed over said once, with counts.

A folder walk that follows links blindly goes round a link that points back up the tree
(`train/cat/up -> train`) and picks up other classes' images under the wrong label; one that
skips files silently (a `.tif` the extension list did not name) changes the data without a
word. `ImageLister` walks one split, `FileReport` collects what was left out or converted
while listing and decoding, and logs it once at the end.
"""

import logging
import os
from collections import defaultdict
from typing import Optional, Union

from PIL import Image, ImageFile

from osal.errors import ConfigError

log = logging.getLogger(__name__)


def _readable_extensions() -> tuple:
    """The file extensions of every format this Pillow can open (stub formats that need an external
    handler, such as HDF5 or GRIB, left out)."""
    Image.init()
    formats = {name for name, (factory, _) in Image.OPEN.items()
               if not (isinstance(factory, type) and issubclass(factory, ImageFile.StubImageFile))}
    return tuple(sorted(ext for ext, name in Image.registered_extensions().items() if name in formats))


IMAGE_EXTENSIONS = _readable_extensions()


def is_image_file(name: Union[str, os.PathLike]) -> bool:
    """True for a non-hidden file whose extension names a format Pillow reads (any letter case)."""
    name = os.path.basename(str(name))
    # Hidden files are skipped: macOS leaves "._x.jpg" metadata files that are not images.
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


class FileReport:
    """What a listing or a decode left out or changed, by reason, with one example path each."""

    def __init__(self) -> None:
        self.counts = defaultdict(int)
        self.examples = {}

    def add(self, reason: str, path: Union[str, os.PathLike]) -> None:
        self.counts[reason] += 1
        self.examples.setdefault(reason, str(path))

    def merge(self, other: "FileReport") -> None:
        for reason, count in other.counts.items():
            self.counts[reason] += count
            self.examples.setdefault(reason, other.examples[reason])

    def lines(self) -> list:
        return [f"{n} {reason} (e.g. {self.examples[reason]})" for reason, n in sorted(self.counts.items())]

    def log(self, where: str) -> None:
        """One warning for everything collected, then start afresh."""
        if self.counts:
            log.warning("%s: %s", where, "; ".join(self.lines()))
        self.counts.clear()
        self.examples.clear()


def _extension(name: str) -> str:
    ext = os.path.splitext(name)[1].lower()
    return ext if ext else "(no extension)"


class ImageLister:
    """Lists the image files of the folders of one split, each real file once.

    A directory link is followed unless it leads to the folder it sits in or one above it (a loop),
    or to a folder this listing already walked; a file reached a second time through a (symbolic) link is not
    counted again. `conflicts` records files reached under two different groups (classes):
    their label is ambiguous, so the caller refuses them.
    """

    def __init__(self, report: FileReport = None) -> None:
        self.report = report if report is not None else FileReport()
        self.owner = {}  # real path of a file -> (group, the path it was first listed under)
        self.conflicts = []  # (path, first group, first path, second group)

    def list(self, folder: Union[str, os.PathLike], group: Optional[str] = None) -> list:
        """Every image file under `folder` (recursively), sorted by path so the order never depends on the file
        system; `group` names the class the files will be labelled with."""
        found, walked = [], set()  # walked: real paths of this listing's folders
        stack = [str(folder)]
        while stack:
            directory = stack.pop()
            real_dir = os.path.realpath(directory)
            if real_dir in walked:
                self.report.add("folder link(s) not followed: their folder was already listed", directory)
                continue
            walked.add(real_dir)
            try:
                entries = sorted(os.scandir(directory), key=lambda e: e.name)
            except OSError as err:
                self.report.add(f"folder(s) that could not be read ({err.strerror})", directory)
                continue
            for entry in entries:
                if entry.name.startswith("."):
                    self.report.add("hidden file(s) or folder(s) skipped", entry.path)
                elif entry.is_dir(follow_symlinks=True):
                    self._folder(entry, real_dir, stack)
                elif entry.is_symlink() and not os.path.exists(entry.path):
                    if is_image_file(entry.name):
                        found.append(entry.path)  # decoding reports it with the files it cannot read
                    else:
                        self.report.add("broken link(s) skipped", entry.path)
                elif not is_image_file(entry.name):
                    self.report.add(f"{_extension(entry.name)} file(s) skipped: not an image format Pillow reads",
                                    entry.path)
                else:
                    self._file(entry.path, group, found)
        return sorted(found)

    def refuse_conflicts(self, where: Union[str, os.PathLike]) -> None:
        """A file reached under two classes (through a link) has no single label: name it and the fix."""
        if self.conflicts:
            path, first_group, first_path, second_group = self.conflicts[0]
            more = f" ({len(self.conflicts)} such files)" if len(self.conflicts) > 1 else ""
            raise ConfigError(f"{path} is the same file as {first_path}, so it would be both class {first_group!r} "
                              f"and class {second_group!r} under {where}{more}; give each image one class folder "
                              "(remove the link that leads into another class).")

    def _folder(self, entry: os.DirEntry, real_parent: str, stack: list) -> None:
        real = os.path.realpath(entry.path)
        if entry.is_symlink() and (real == real_parent or real_parent.startswith(real.rstrip(os.sep) + os.sep)):
            self.report.add("folder link(s) not followed: they lead back to a folder above them (a loop)",
                            entry.path)
        else:
            stack.append(entry.path)

    def _file(self, path: str, group: Optional[str], found: list) -> None:
        real = os.path.realpath(path)
        if real in self.owner:
            first_group, first_path = self.owner[real]
            if first_group == group:
                self.report.add("file(s) reached a second time through a link, counted once", path)
            else:
                self.conflicts.append((path, first_group, first_path, group))
            return
        self.owner[real] = (group, path)
        found.append(path)


def list_images(folder: Union[str, os.PathLike], report: FileReport = None) -> list:
    """Every image file under `folder` once (see ImageLister); what was skipped goes to `report` or, without
    one, is logged here."""
    own = report is None
    lister = ImageLister(report)
    found = lister.list(folder)
    if own:
        lister.report.log(f"listing {folder}")
    return found
