"""An annotation project: one directory holding everything a session needs to go on.

    project.json       the image folder, every pool image's path in it, the wanted classes, normalisation
    config.yaml        the composed config (model, strategy, trainer, batch size ...); edit it to change knobs
    pool_images.npy    the pool decoded once at init (uint8 N x H x W x C), row i = global index i
    state.npz          pool state, answers, known probabilities and, as JSON, the batches and the query
                       generator's state; replaced atomically by every command that changes it
    batches/batch_NN/  the files of batch NN: answers.csv, tasks.json, labeling_config.xml, contact_sheet.html
    models/            the detector and classifier last trained, with the labels they were trained on
"""

import json
import os

import numpy as np
from omegaconf import OmegaConf

from osal.annotate.datamodule import AnnotationDataModule
from osal.atomic import atomic_write
from osal.build import build
from osal.data.datamodule import NOT_ASKED
from osal.data.pool import PoolState
from osal.errors import OsalError

PROJECT_FILE, CONFIG_FILE, IMAGES_FILE, STATE_FILE = "project.json", "config.yaml", "pool_images.npy", "state.npz"
UNKNOWN_NAME = "unknown"


class AnnotationError(OsalError):
    """An annotation project, its inputs or an answer file is not usable as given."""


def shown(path) -> str:
    """`path` as a person would type it here: relative when it lies below the current directory."""
    relative = os.path.relpath(str(path))
    return str(path) if relative.startswith("..") else relative


class Project:
    """A project directory, loaded: its description, config, pool state, answers and batch records."""

    def __init__(self, directory):
        self.directory = os.path.abspath(str(directory))
        if not os.path.exists(os.path.join(self.directory, PROJECT_FILE)):
            raise AnnotationError(f"{self.directory} is not an annotation project (no {PROJECT_FILE}); create one "
                                  "with `annotate.py init`, or point --project at an existing one")
        with open(os.path.join(self.directory, PROJECT_FILE)) as f:
            info = json.load(f)
        self.image_folder, self.paths = info["image_folder"], list(info["paths"])
        self.class_names, self.mean, self.std = list(info["classes"]), info["mean"], info["std"]
        self.cfg = OmegaConf.load(os.path.join(self.directory, CONFIG_FILE))
        self.index_of = {p: i for i, p in enumerate(self.paths)}
        with np.load(os.path.join(self.directory, STATE_FILE)) as data:
            self.pool = PoolState(len(self.paths))
            self.pool.load_state_dict({"state": data["state"], "query_round": data["query_round"]})
            self.answers = data["answers"].astype(np.int64)
            self.known_probability = data["known_probability"].astype(np.float64)
            meta = json.loads(str(data["meta"]))
        self.batches, self.rng_state = meta["batches"], meta["rng"]

    # -- names ---------------------------------------------------------------------------
    @property
    def num_known(self) -> int:
        return len(self.class_names)

    def answer_name(self, answer: int) -> str:
        return UNKNOWN_NAME if answer < 0 else self.class_names[answer]

    def path(self, *parts) -> str:
        return os.path.join(self.directory, *parts)

    def batch_dir(self, number: int) -> str:
        return self.path("batches", f"batch_{number:02d}")

    @property
    def pending(self):
        """The batch waiting for answers, or None."""
        return next((b for b in self.batches if not b["answered"]), None)

    @property
    def labels_version(self) -> int:
        """How many batches have been answered: models trained on other labels are out of date."""
        return sum(b["answered"] for b in self.batches)

    def query_rng(self) -> np.random.Generator:
        rng = np.random.default_rng(np.random.SeedSequence([int(self.cfg.seed), 1]))
        if self.rng_state is not None:
            rng.bit_generator.state = self.rng_state
        return rng

    # -- the datamodule ------------------------------------------------------------------
    def datamodule(self, images=None) -> AnnotationDataModule:
        """The pool as a datamodule (images read on its first setup), or other `images` as an unlabeled pool."""
        factory = build(self.cfg.data)
        if images is None:
            return factory(load_images=lambda: np.load(self.path(IMAGES_FILE)), pool=self.pool, answers=self.answers,
                           class_names=self.class_names, mean=self.mean, std=self.std)
        pool, answers, _ = new_state(len(images))
        return factory(load_images=lambda: images, pool=pool, answers=answers, class_names=self.class_names,
                       mean=self.mean, std=self.std)

    # -- persistence ---------------------------------------------------------------------
    def save(self, rng: np.random.Generator = None) -> None:
        if rng is not None:
            self.rng_state = rng.bit_generator.state
        write_state(self.directory, self.pool, self.answers, self.known_probability, self.batches, self.rng_state)


def write_state(directory, pool: PoolState, answers, known_probability, batches, rng_state) -> None:
    meta = json.dumps({"batches": batches, "rng": rng_state})
    atomic_write(os.path.join(directory, STATE_FILE),
                 lambda f: np.savez(f, **pool.state_dict(), answers=np.asarray(answers, dtype=np.int64),
                                    known_probability=np.asarray(known_probability, dtype=np.float64),
                                    meta=np.array(meta)))


def new_state(size: int):
    """(pool, answers, known probability) of a pool nobody has answered about yet."""
    return PoolState(size), np.full(size, NOT_ASKED, dtype=np.int64), np.full(size, np.nan)
