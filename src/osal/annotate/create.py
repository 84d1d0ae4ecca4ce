"""`annotate.py init`: check the images, the wanted classes and the initial labels, then create a project."""

import errno
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Iterable, Sequence, Union

import numpy as np
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from osal.annotate.answers import Problems, allowed_answers, class_index, read_csv, resolve_path
from osal.annotate.project import (
    CONFIG_FILE,
    IMAGES_FILE,
    PROJECT_FILE,
    AnnotationError,
    Project,
    new_state,
    shown,
    write_state,
)
from osal.annotate.project_files import CLASS_NAME_RULE, is_class_name
from osal.atomic import staging_folder
from osal.build import build
from osal.data.datamodule import channel_stats
from osal.data.oracle import HumanOracle
from osal.data.sources.decode import decode_images, image_mode
from osal.data.sources.listing import list_images
from osal.errors import ConfigError
from osal.folders import check_writable
from osal.knobs import check_config
from osal.models.frozen import check_pretrained
from osal.models.pretrained import source_of

log = logging.getLogger(__name__)

CONF_DIR = Path(__file__).resolve().parents[3] / "conf"


def compose_config(overrides: Sequence[str] = ()) -> DictConfig:
    """conf/annotate.yaml with Hydra overrides (`key=value`, `group=option`)."""
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose("annotate", overrides=list(overrides))
        OmegaConf.to_container(cfg, resolve=True)  # a bad interpolation fails here, not in the middle of `next`
    except (HydraException, OmegaConfBaseException) as error:
        raise AnnotationError(f"the config overrides {' '.join(overrides) or '(none)'} do not compose "
                              f"({str(error).splitlines()[0]}); see conf/annotate.yaml for the knobs") from None
    check_config(cfg, one_process=True)
    return cfg


# strategies whose networks an annotation project cannot yet train as the research loop does: MQNet's meta-network
# learns from each batch's answers in the process that asked it, and its CSI network is fit once per run; BUAL's
# negative-learning network continues from the round's classifier
RESEARCH_ONLY = {"mqnet": "its meta-network learns from each batch's answers and its CSI network is fit once per run",
                 "bual": "its negative-learning network continues from each round's classifier"}


def refuse_research_only(cfg: DictConfig) -> None:
    """A strategy that runs in `src/train.py` but not yet in an annotation project: one sentence, before any file."""
    detector = cfg.strategy.get("detector") or {}
    if detector.get("fit_once") or detector.get("train_on_unlabeled"):  # what MQNet's and BUAL's detectors do
        why = RESEARCH_ONLY.get(cfg.strategy.name, "its detector trains in a way annotation projects do not yet")
        raise AnnotationError(f"strategy={cfg.strategy.name} runs in src/train.py but not in annotation projects yet "
                              f"({why}); use strategy=lfosa_mav_ties (the default), lfosa, eoal or eaoa")


def copy_backbone(cfg: DictConfig, staging: str) -> None:
    """A checkpoint file given as model.pretrained goes into the project (config.yaml names it by its file name), so
    that the project holds everything its commands read and reads nothing from outside itself."""
    spec = cfg.model.get("pretrained")
    if not spec or source_of(str(spec)) != "file":
        return
    path = os.path.expanduser(str(spec))
    name = "backbone" + (os.path.splitext(path)[1] or ".pt")
    shutil.copyfile(path, os.path.join(staging, name))
    cfg.model.pretrained = name


def check_classes(names: Iterable[str]) -> list:
    names = [n.strip() for n in names]
    for name in names:
        if not is_class_name(name):
            raise AnnotationError(f"wanted class {name!r} cannot be used: {CLASS_NAME_RULE}; rename it")
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise AnnotationError(f"wanted class {duplicated[0]!r} is listed more than once; list each class once")
    if len(names) < 2:
        raise AnnotationError(f"{len(names)} wanted class(es) given ({', '.join(names)}); give at least two, "
                              "comma-separated, e.g. --classes cat,dog (everything else is `unknown`)")
    return names


def read_initial_labels(path: Union[str, os.PathLike], image_folder: str, index_of: dict[str, int],
                        class_names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(global indices, answers) of the initial labels CSV (columns path,class)."""
    problems = Problems(str(path), "no project was created")
    indices, answers, seen = [], [], {}
    for row_number, row in read_csv(path, ("path", "class")):
        where = f"row {row_number}"
        rel = resolve_path(row["path"], image_folder, index_of)
        if rel is None:
            problems.add(where, f"path {row['path']!r} is not an image in {image_folder}")
            continue
        if rel in seen:
            problems.add(where, f"{rel} is labeled again (first in row {seen[rel]}); label each image once")
            continue
        seen[rel] = row_number
        answer = class_index(row["class"], class_names)
        if answer is None:
            problems.add(where, f"class {row['class']!r} of {rel} is not one of: {allowed_answers(class_names)}")
            continue
        indices.append(index_of[rel])
        answers.append(answer)
    problems.raise_if_any("Fix these rows and run init again.")
    missing = [name for c, name in enumerate(class_names) if c not in answers]
    if missing:
        raise AnnotationError(f"the initial labels in {path} hold no image of wanted class {missing[0]!r}; "
                              "label at least one image of every wanted class")
    return np.asarray(indices, dtype=np.int64), np.asarray(answers, dtype=np.int64)


def create_project(directory: Union[str, os.PathLike], image_folder: Union[str, os.PathLike], classes: Iterable[str],
                   labels_csv: Union[str, os.PathLike], overrides: Sequence[str] = ()) -> Project:
    """Validate everything, then write the project directory in one rename (no half-made project)."""
    directory = os.path.abspath(str(directory))
    if os.path.exists(os.path.join(directory, PROJECT_FILE)):
        raise AnnotationError(f"{directory} already holds an annotation project; continue it with `annotate.py next`"
                              ", or give --project a new directory")
    if os.path.exists(directory) and (not os.path.isdir(directory) or os.listdir(directory)):
        raise AnnotationError(f"{directory} exists and is not an empty directory; give --project a new directory")
    check_writable(os.path.dirname(directory), "the folder that would hold the project,",
                   "give --project a folder you can write to")
    image_folder = os.path.abspath(os.path.expanduser(str(image_folder)))
    if not os.path.isdir(image_folder):
        raise AnnotationError(f"image folder {image_folder} does not exist; give --images the folder that holds "
                              "the unlabeled images")
    class_names = check_classes(classes)
    if not os.path.isfile(str(labels_csv)):
        raise AnnotationError(f"initial labels file {labels_csv} does not exist; give --labels a CSV with the "
                              "columns path,class")
    cfg = compose_config(overrides)
    build(cfg.strategy.selector)  # a bad strategy knob fails now, not at the first batch
    refuse_research_only(cfg)
    # a missing or unreadable checkpoint, before any image is decoded
    check_pretrained(cfg.model.get("pretrained"), bool(cfg.model.get("freeze")))
    if int(cfg.al.query_size) < 1:
        raise ConfigError(f"al.query_size={cfg.al.query_size} must be at least 1 (images per batch)")
    paths = [os.path.relpath(p, image_folder).replace(os.sep, "/") for p in list_images(image_folder)]
    if not paths:
        raise AnnotationError(f"image folder {image_folder} holds no images (.jpg, .png, ...); point --images at "
                              "the folder of unlabeled images")
    index_of = {p: i for i, p in enumerate(paths)}
    indices, answers = read_initial_labels(labels_csv, image_folder, index_of, class_names)
    mode = image_mode(cfg.dataset.channels)
    log.info("decoding %d images from %s", len(paths), shown(image_folder))
    images = decode_images([os.path.join(image_folder, p) for p in paths], mode,
                           cfg.dataset.image_size, desc=f"images from {image_folder}")
    mean, std = cfg.dataset.mean, cfg.dataset.std
    if mean is None or std is None:
        mean, std = channel_stats(images)

    with staging_folder(directory) as staging:
        copy_backbone(cfg, staging)
        with open(os.path.join(staging, PROJECT_FILE), "w") as f:
            json.dump({"image_folder": image_folder, "classes": class_names, "mean": list(mean), "std": list(std),
                       "paths": paths}, f, indent=1)
        OmegaConf.save(cfg, os.path.join(staging, CONFIG_FILE))
        np.save(os.path.join(staging, IMAGES_FILE), images)
        write_state(staging, *new_state(len(paths), len(class_names)), batches=[], rng_state=None)
        project = Project(staging)
        # the initial labels go in exactly as every later batch: a human oracle answers, the pool records
        project.pool.oracle = HumanOracle(indices, answers, project.num_known)
        project.pool.annotate(indices, round_index=0)
        project.save()
        try:
            if os.path.isdir(directory):
                os.rmdir(directory)  # empty, checked above
            os.rename(staging, directory)
        except OSError as error:
            if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            raise AnnotationError(f"{directory} was filled by something else while this init ran (another init?); "
                                  "nothing was written: give --project a new directory") from None
    log.info("created %s: %d images, classes %s; %d labeled, %d unknown at start", shown(directory), len(paths),
             ", ".join(class_names), int((answers >= 0).sum()), int((answers < 0).sum()))
    return Project(directory)
