"""Using the result: the labels as a CSV and an ImageFolder tree, the models, and predictions on new images."""

import json
import logging
import os
import shutil

import numpy as np
from omegaconf import OmegaConf

from osal.annotate.batch_files import csv_text
from osal.annotate.models import LOGITS, ROLES, current_models, inference_device, model_path
from osal.annotate.project import IMAGES_FILE, UNKNOWN_NAME, AnnotationError, shown
from osal.atomic import staging_folder
from osal.data.pool import NEVER
from osal.data.sources.decode import decode_images, is_image_file, list_images
from osal.loop.inference import collect_outputs
from osal.strategies.base import PoolOutputs, softmax
from osal.strategies.lfosa import LfOSA

log = logging.getLogger(__name__)


def export(project, destination=None) -> str:
    """Write labels.csv, imagefolder/<class>/..., models/ into `destination` (default <project>/export)."""
    destination = os.path.abspath(destination or project.path("export"))
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
        OmegaConf.save(project.cfg, os.path.join(models, "config.yaml"))
        with open(os.path.join(models, "model.json"), "w") as f:
            json.dump(model_card(project), f, indent=1)
        if os.path.isdir(destination):
            shutil.rmtree(destination)
        os.rename(staging, destination)
    log.info("exported %d labels (%d known, %d unknown) and the models to %s", len(answered),
             len(project.pool.labeled), len(project.pool.invalid), shown(destination))
    return destination


def copy_image_folder(project, root) -> None:
    """<root>/<class>/<file name> for every labeled image; a file name used twice in a class gets its index."""
    labeled = project.pool.labeled
    for c, name in enumerate(project.class_names):
        os.makedirs(os.path.join(root, name))
        members = labeled[project.answers[labeled] == c]
        names = [os.path.basename(project.paths[i]) for i in members]
        for index, base in zip(members, names):
            target = base if names.count(base) == 1 else f"{index:06d}_{base}"
            shutil.copy2(os.path.join(project.image_folder, project.paths[index]), os.path.join(root, name, target))


def model_card(project) -> dict:
    h, w, c = np.load(project.path(IMAGES_FILE), mmap_mode="r").shape[1:]
    return {"classes": project.class_names, "unknown": "detector output K (the last one)", "mean": project.mean,
            "std": project.std, "image_height": int(h), "image_width": int(w), "channels": int(c),
            "labels_version": project.labels_version,
            "networks": "osal.models.network.Network state_dicts; rebuild them from config.yaml's model"}


def image_inputs(inputs) -> list:
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


def predict(project, inputs) -> list:
    """One row per image: (path, class name or `unknown`, known probability, class probability)."""
    paths = image_inputs(inputs)
    h, w = np.load(project.path(IMAGES_FILE), mmap_mode="r").shape[1:3]
    size = project.cfg.dataset.image_size or (h if h == w else None)  # the pool's size, as the models saw it
    channels = int(project.cfg.dataset.channels)
    images = decode_images(paths, "RGB" if channels == 3 else "L", size, desc="images to predict")
    if images.shape[1:3] != (h, w):
        raise AnnotationError(f"the images are {images.shape[2]}x{images.shape[1]} but the models were trained on "
                              f"{w}x{h}; resize them, or set dataset.image_size in the project's config.yaml")
    pool = project.datamodule()
    networks = current_models(project, pool)
    datamodule = project.datamodule(images)
    datamodule.setup("predict")
    device = inference_device(project.cfg)
    detector = collect_outputs(networks["detector"], datamodule, LOGITS, device).logits
    classifier = collect_outputs(networks["classifier"], datamodule, LOGITS, device).logits
    # LfOSA's known probability: the new images' MAVs join the unlabeled pool's in each class's mixture
    pool.setup("predict")
    pool_logits = collect_outputs(networks["detector"], pool, LOGITS, device).logits
    k = project.num_known
    rng = np.random.default_rng(np.random.SeedSequence([int(project.cfg.seed), 2]))
    both = np.concatenate([detector, pool_logits]) if len(pool_logits) else detector  # an empty pool: new images alone
    known = np.clip(LfOSA().scores(PoolOutputs(np.arange(len(both)), k, logits=both), rng)[:len(paths)], 0.0, 1.0)
    class_probability = softmax(np.asarray(classifier[:, :k], dtype=np.float64))
    unknown_below = float(project.cfg.annotate.unknown_below)
    rows = []
    for i, path in enumerate(paths):
        c = int(class_probability[i].argmax())
        name = UNKNOWN_NAME if known[i] < unknown_below else project.class_names[c]
        rows.append((path, name, float(known[i]), float(class_probability[i, c])))
    return rows


def format_predictions(rows) -> str:
    return csv_text(["path", "prediction", "known_probability", "class_probability"],
                    [(path, name, f"{known:.3f}", f"{p:.3f}") for path, name, known, p in rows])
