"""An annotation project's project.json, config.yaml and pool_images.npy, read back checked.

A project is handed to colleagues, committed, merged and copied, so by the time a command reads it any file
may be edited, truncated, a Git LFS pointer or written by someone else. Each reader here refuses such a file
with one sentence (a `DamagedFileError` or, for the config, a `ConfigError`) naming it and what to do, before
the command changes anything. What later becomes part of a path is held to stay where osal puts it: a class
name is one folder name, an image path stays inside the image folder.
"""

import json
import math
import posixpath
import string
from typing import Any, Optional

import numpy as np
import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from osal.errors import ConfigError
from osal.stored import LFS_POINTER, DamagedFileError, read_text, read_yaml_text

UNKNOWN_NAME = "unknown"
RESTORE = "restore it from a good copy of the project"
CLASS_NAME_RULE = (f"a class name must be non-empty, not {UNKNOWN_NAME!r}, not start with '.', and hold no '/' or "
                   "'\\' (it becomes a folder name on export)")
# what the annotation commands read from config.yaml themselves (the knobs' values are checked by osal.knobs)
CONFIG_KEYS = ("seed", "model", "classifier", "detector", "optimizer", "scheduler", "trainer", "strategy.name",
               "strategy.selector", "dataset.channels", "dataset.image_size", "al.query_size", "annotate.unknown_below",
               "annotate.thumbnail_pixels", "annotate.display_pixels", "annotate.label_studio_image_url",
               "data._target_")
IMAGE_URL_FIELDS = ("path", "folder")
_ABSENT = object()


def read_json(path: str, fix: str = RESTORE) -> Any:
    """The JSON document in a file of the project; DamagedFileError naming it and `fix` when it is not one (an LFS
    pointer, conflict markers, not UTF-8, not JSON, nested too deeply to read)."""
    text = read_text(path)
    try:
        return json.loads(text)
    except RecursionError:
        raise DamagedFileError(f"{path} is JSON nested too deeply to read, which osal never writes; {fix}") from None
    except ValueError as error:
        raise DamagedFileError(f"{path} is not valid JSON ({error}); {fix}") from None


def is_class_name(name: Any) -> bool:
    """Whether `name` may be a wanted class (CLASS_NAME_RULE): it becomes a folder of the export."""
    return (isinstance(name, str) and bool(name.strip()) and name.strip().lower() != UNKNOWN_NAME
            and not name.startswith(".") and not any(c in name for c in "/\\\0"))


def image_path_problem(path: Any) -> Optional[str]:
    """Why `path` cannot be a pool image's path inside the image folder, or None. osal writes them relative,
    with '/' between folders and nothing to normalise away, so that joined to the folder they stay inside it."""
    if not isinstance(path, str) or not path:
        return "is not a file name"
    if "\0" in path:
        return "holds a NUL character"
    if path.startswith("/"):
        return "is an absolute path"
    if path.split("/")[0] == ".." or posixpath.normpath(path) != path:
        return "is not a plain path inside the image folder (it holds '..', '.' or an empty folder name)"
    return None


def read_description(path: str) -> dict:
    """project.json: the image folder, every pool image's path in it, the wanted classes, normalisation."""
    info = read_json(path)

    def refuse(what: str) -> DamagedFileError:
        return DamagedFileError(f"{path} is not as osal wrote it: {what}; {RESTORE}, or correct it by hand")

    if not isinstance(info, dict):
        raise refuse(f"it holds a JSON {type(info).__name__}, not a JSON object")
    for key in ("image_folder", "classes", "paths", "mean", "std"):
        if key not in info:
            raise refuse(f"it lacks {key!r}")
    if not isinstance(info["image_folder"], str) or not info["image_folder"]:
        raise refuse(f"image_folder {info['image_folder']!r} is not a folder name")
    classes, paths = info["classes"], info["paths"]
    if not isinstance(classes, list) or len(classes) < 2:
        raise refuse(f"classes {classes!r} is not a list of at least two class names")
    for i, name in enumerate(classes):
        if not is_class_name(name):
            raise refuse(f"classes[{i}] {name!r} cannot be a class name ({CLASS_NAME_RULE})")
    repeated = duplicate(classes)
    if repeated is not None:
        raise refuse(f"classes lists {repeated!r} more than once")
    if not isinstance(paths, list) or not paths:
        raise refuse("paths is not a list of the pool's image files")
    for i, image in enumerate(paths):
        problem = image_path_problem(image)
        if problem:
            raise refuse(f"paths[{i}] {image!r} {problem}")
    repeated = duplicate(paths)
    if repeated is not None:
        raise refuse(f"paths lists {repeated!r} more than once")
    for key in ("mean", "std"):
        values = info[key]
        if (not isinstance(values, list) or len(values) not in (1, 3) or len(values) != len(info["mean"])
                or not all(is_number(v) and (key == "mean" or v > 0) for v in values)):
            raise refuse(f"{key} {values!r} is not one {'positive ' if key == 'std' else ''}number per channel "
                         "(1 or 3 of them)")
    return info


def duplicate(items: list) -> Any:
    """The first item listed a second time, or None."""
    seen = set()
    for item in items:
        if item in seen:
            return item
        seen.add(item)
    return None


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_config(path: str) -> DictConfig:
    """config.yaml: the composed config, the project's to edit. Its knobs are checked by osal.knobs; here, that it
    is a config at all, that it resolves and holds what the annotation commands read."""
    fix = f"correct it (conf/annotate.yaml shows what a project's config holds), or {RESTORE}"
    text = read_yaml_text(path)
    try:
        cfg = OmegaConf.create(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" on line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path} is not valid YAML ({getattr(error, 'problem', None) or 'unreadable'}{where}); "
                          f"{fix}") from None
    except (OmegaConfBaseException, ValueError) as error:
        raise ConfigError(f"{path} is not a config osal can read ({str(error).splitlines()[0]}); {fix}") from None
    if not isinstance(cfg, DictConfig):
        raise ConfigError(f"{path} holds a YAML list, not the mapping of config groups osal writes; {fix}")
    try:
        OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as error:
        raise ConfigError(f"{path} does not resolve ({str(error).splitlines()[0]}); {fix}") from None
    missing = [key for key in CONFIG_KEYS if OmegaConf.select(cfg, key, default=_ABSENT) is _ABSENT]
    if missing:
        raise ConfigError(f"{path} lacks {missing[0]}, which the annotation commands read; {fix}")
    check_image_url(path, cfg.annotate.label_studio_image_url)
    return cfg


def check_image_url(path: str, template: Any) -> None:
    """annotate.label_studio_image_url may name {path} and {folder} and nothing else: str.format would raise
    on any other field after the training, or reach into the objects it is given."""
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(str(template)) if field is not None]
    except ValueError as error:
        fields = [f"({error})"]
    wrong = [field for field in fields if field not in IMAGE_URL_FIELDS]
    if wrong:
        raise ConfigError(f"{path}: annotate.label_studio_image_url {template!r} holds {{{wrong[0]}}}; it may hold "
                          "only {path} (the image's path in the image folder) and {folder} (that folder's name), "
                          "e.g. /data/local-files/?d={folder}/{path}")


def check_images(path: str, size: int, channels: int) -> None:
    """pool_images.npy: `size` decoded images (uint8, N x H x W x `channels`), read as a memory map later."""
    fix = f"{RESTORE}, or create the project again with `annotate.py init`"
    with open(path, "rb") as f:
        head = f.read(len(LFS_POINTER))
    if head == LFS_POINTER:
        raise DamagedFileError(f"{path} is a Git LFS pointer, not the file itself; fetch it with `git lfs pull` (or "
                               f"copy the real file in), or {fix}")
    try:  # a .npy file and nothing else: never unpickled, and its header read without the data
        images = np.lib.format.open_memmap(path, mode="r")
    except (ValueError, EOFError) as error:
        text = str(error)
        what = ("it is not a .npy file" if "magic string" in text else "it holds Python objects" if "objects" in text
                else "it is truncated" if "EOF" in text or "length" in text else text[:80])
        raise DamagedFileError(f"{path} is damaged or not the array of images osal wrote ({what}); {fix}") from None
    shape, dtype = images.shape, images.dtype
    del images  # closes the memory map
    if dtype != np.uint8 or len(shape) != 4:
        raise DamagedFileError(f"{path} holds a {dtype} array of shape {shape}, not the uint8 images (number x "
                               f"height x width x channels) osal wrote; {fix}")
    if shape[0] != size:
        raise DamagedFileError(f"{path} holds {shape[0]} images but project.json lists {size}, so one of the two "
                               f"comes from another project; restore both from a good copy of the project")
    if shape[3] != channels:
        raise DamagedFileError(f"{path} holds images of {shape[3]} channel(s) but config.yaml's dataset.channels is "
                               f"{channels}; set dataset.channels={shape[3]} in config.yaml, or {RESTORE}")
