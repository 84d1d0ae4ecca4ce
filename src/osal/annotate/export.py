"""Using the result: the labels as a CSV and an ImageFolder tree, the models, and predictions on new images."""

import json
import logging
import os
import shutil
from typing import Iterable, Optional, Sequence, Union

import numpy as np
from omegaconf import OmegaConf

from osal.annotate.batch_files import csv_text
from osal.annotate.models import ROLES, current_models, model_path
from osal.annotate.project import IMAGES_FILE, UNKNOWN_NAME, AnnotationError, Project, shown
from osal.atomic import replace_folder, staging_folder
from osal.data.pool import NEVER
from osal.data.sources.decode import decode_images, image_mode
from osal.data.sources.listing import is_image_file, list_images
from osal.engine.inference import LOGITS_ONLY, collect_outputs, inference_device
from osal.folders import check_writable
from osal.strategies.base import PoolOutputs, softmax
from osal.strategies.lfosa import known_probability

log = logging.getLogger(__name__)


EXPORT_MARK = ".osal_export.json"  # in every export: which project wrote it, and every file it wrote


def check_destination(project: Project, destination: str) -> None:
    """Refuse a destination an export could damage: the project folder or one holding it, a file, or a folder
    holding anything an earlier export of this project did not write. Nothing has been computed yet."""
    inside = os.path.join(os.path.realpath(destination), "")
    if os.path.join(os.path.realpath(project.directory), "").startswith(inside):
        raise AnnotationError(f"cannot export to {shown(destination)}: it is the project folder or holds it, and "
                              "an export replaces its destination; give --to a new folder, e.g. "
                              f"{shown(project.path('export'))}")
    check_writable(os.path.dirname(destination), "the folder that receives the export,",
                   "give --to a folder you can write to")
    if not os.path.lexists(destination):
        return
    if not os.path.isdir(destination):
        raise AnnotationError(f"cannot export to {shown(destination)}: it is a file; give --to a new folder")
    foreign = foreign_files(project, destination)
    if foreign:
        raise AnnotationError(f"cannot export to {shown(destination)}: it holds {foreign}, which no earlier export "
                              "of this project wrote, and an export replaces its destination whole; give --to a new "
                              "or empty folder, or move that folder's contents away")


def foreign_files(project: Project, destination: str) -> Optional[str]:
    """The first entry of `destination` that an earlier export of this project did not write, or None."""
    entries = sorted(os.listdir(destination))
    if not entries:
        return None
    written = set()
    try:
        with open(os.path.join(destination, EXPORT_MARK)) as f:
            mark = json.load(f)
        if mark.get("project") == os.path.realpath(project.directory):
            written = set(mark["files"]) | {EXPORT_MARK}
    except (OSError, ValueError, KeyError, TypeError):
        pass
    for directory, folders, files in os.walk(destination):
        for name in sorted(files) + sorted(f for f in folders if os.path.islink(os.path.join(directory, f))):
            relative = os.path.relpath(os.path.join(directory, name), destination).replace(os.sep, "/")
            if relative not in written:
                return f"{relative!r}"
    return None


def export(project: Project, destination: Optional[str] = None) -> str:
    """Write labels.csv, imagefolder/<class>/..., models/ into `destination` (default <project>/export).

    The destination is refused before any work when it could lose something (`check_destination`); an
    earlier export of this project there is replaced whole, the new one renamed into place first.
    """
    destination = os.path.abspath(destination or project.path("export"))
    check_destination(project, destination)
    datamodule = project.datamodule()
    current_models(project, datamodule)  # trained on every answer so far
    with staging_folder(destination) as staging:
        answered = np.flatnonzero(project.pool.query_round != NEVER)
        labels = csv_text(["path", "class", "batch"], [(project.paths[i], project.answer_name(project.answers[i]),
                                                         int(project.pool.query_round[i])) for i in answered])
        with open(os.path.join(staging, "labels.csv"), "w", newline="") as f:
            f.write(labels)
        copy_image_folder(project, os.path.join(staging, "imagefolder"))
        models = os.path.join(staging, "models")
        os.makedirs(models)
        for role in ROLES:
            shutil.copy2(model_path(project, role), os.path.join(models, f"{role}.pt"))
        cfg = project.cfg.copy()
        backbone = OmegaConf.select(cfg, "model.pretrained")
        if backbone and os.path.isabs(str(backbone)):  # the project's own checkpoint (init copied it there)
            shutil.copy2(str(backbone), os.path.join(models, os.path.basename(str(backbone))))
            cfg.model.pretrained = os.path.basename(str(backbone))  # beside config.yaml, as in the project
        OmegaConf.save(cfg, os.path.join(models, "config.yaml"))
        with open(os.path.join(models, "model.json"), "w") as f:
            json.dump(model_card(project), f, indent=1)
        written = sorted(os.path.relpath(os.path.join(d, name), staging).replace(os.sep, "/")
                         for d, _, files in os.walk(staging) for name in files)
        with open(os.path.join(staging, EXPORT_MARK), "w") as f:
            json.dump({"project": os.path.realpath(project.directory), "files": written}, f, indent=1)
        replace_folder(staging, destination)
    log.info("exported %d labels (%d known, %d unknown) and the models to %s", len(answered),
             len(project.pool.labeled), len(project.pool.invalid), shown(destination))
    return destination


def copy_image_folder(project: Project, root: str) -> None:
    """<root>/<class>/<file name> for every labeled image; a file name used twice in a class gets its index."""
    labeled = project.pool.labeled
    for c, name in enumerate(project.class_names):
        os.makedirs(os.path.join(root, name))
        members = labeled[project.answers[labeled] == c]
        names = [os.path.basename(project.paths[i]) for i in members]
        for index, base in zip(members, names):
            target = base if names.count(base) == 1 else f"{index:06d}_{base}"
            shutil.copy2(os.path.join(project.image_folder, project.paths[index]), os.path.join(root, name, target))


def model_card(project: Project) -> dict:
    h, w, c = np.load(project.path(IMAGES_FILE), mmap_mode="r").shape[1:]
    return {"classes": project.class_names, "unknown": "detector output K (the last one)", "mean": project.mean,
            "std": project.std, "image_height": int(h), "image_width": int(w), "channels": int(c),
            "labels_version": project.labels_version,
            "networks": "osal.models.network.Network state_dicts; rebuild them from config.yaml's model"
                        + ("; with model.freeze they are heads on the features of the backbone model.pretrained "
                           "names (in this folder when it is a file)" if project.cfg.model.get("freeze") else "")}


def image_inputs(inputs: Sequence[Union[str, os.PathLike]]) -> list:
    paths = []
    for item in inputs:
        item = os.path.abspath(os.path.expanduser(str(item)))
        if os.path.isdir(item):
            paths += list_images(item)
        elif os.path.isfile(item) and is_image_file(item):
            paths.append(item)
        else:
            raise AnnotationError(f"{item} is neither an image file nor a folder of images; give image files or "
                                  "folders to predict")
    if not paths:
        raise AnnotationError(f"no images found in {', '.join(map(str, inputs))}; give image files or folders")
    return paths


def predict(project: Project, inputs: Sequence[Union[str, os.PathLike]]) -> list:
    """One row per image: (path, class name or `unknown`, known probability, class probability)."""
    paths = image_inputs(inputs)
    h, w = np.load(project.path(IMAGES_FILE), mmap_mode="r").shape[1:3]
    size = project.cfg.dataset.image_size or (h if h == w else None)  # the pool's size, as the models saw it
    images = decode_images(paths, image_mode(project.cfg.dataset.channels), size, desc="images to predict")
    if images.shape[1:3] != (h, w):
        raise AnnotationError(f"the images are {images.shape[2]}x{images.shape[1]} but the models were trained on "
                              f"{w}x{h}; resize them, or set dataset.image_size in the project's config.yaml")
    pool = project.datamodule()
    networks = current_models(project, pool)
    datamodule = project.datamodule(images)
    datamodule.setup("predict")
    device = inference_device(project.cfg.trainer)
    detector = collect_outputs(networks["detector"], datamodule, LOGITS_ONLY, device).logits
    classifier = collect_outputs(networks["classifier"], datamodule, LOGITS_ONLY, device).logits
    # LfOSA's known probability: the new images' MAVs join the unlabeled pool's in each class's mixture
    pool.setup("predict")
    pool_logits = collect_outputs(networks["detector"], pool, LOGITS_ONLY, device).logits
    k = project.num_known
    rng = np.random.default_rng(np.random.SeedSequence([int(project.cfg.seed), 2]))
    both = np.concatenate([detector, pool_logits]) if len(pool_logits) else detector  # an empty pool: new images alone
    known = known_probability(PoolOutputs(np.arange(len(both)), k, logits=both), rng)[:len(paths)]
    class_probability = softmax(np.asarray(classifier[:, :k], dtype=np.float64))
    unknown_below = float(project.cfg.annotate.unknown_below)
    rows = []
    for i, path in enumerate(paths):
        c = int(class_probability[i].argmax())
        name = UNKNOWN_NAME if known[i] < unknown_below else project.class_names[c]
        rows.append((path, name, float(known[i]), float(class_probability[i, c])))
    return rows


PREDICTION_COLUMNS = ["path", "prediction", "known_probability", "class_probability"]


def check_predictions_file(project: Project, out: Union[str, os.PathLike]) -> None:
    """Refuse, before any work, a --out that cannot be written or would overwrite a file predict did not write."""
    out = os.path.abspath(str(out))
    folder = os.path.dirname(out)
    if not os.path.isdir(folder):
        raise AnnotationError(f"the folder of --out {shown(out)} does not exist; create {shown(folder)} first, or "
                              "give --out a file in an existing folder")
    if os.path.isdir(out):
        raise AnnotationError(f"--out {shown(out)} is a folder; give --out a file name, e.g. predictions.csv")
    if os.path.exists(out):
        try:
            with open(out, encoding="utf-8", errors="replace") as f:
                earlier = f.readline().strip() == ",".join(PREDICTION_COLUMNS)
        except OSError:
            earlier = False
        if not earlier:
            raise AnnotationError(f"--out {shown(out)} exists and is not an earlier predictions file, so it is not "
                                  "overwritten; give --out a new file name, or move that file away")
    check_writable(folder, "the folder of --out", "give --out a file in a folder you can write to")


def format_predictions(rows: Iterable[tuple[str, str, float, float]]) -> str:
    return csv_text(PREDICTION_COLUMNS,
                    [(path, name, f"{known:.3f}", f"{p:.3f}") for path, name, known, p in rows])
