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
from typing import Optional, Union

import numpy as np
from omegaconf import DictConfig, OmegaConf

from osal.annotate.project_files import UNKNOWN_NAME, check_images, read_config, read_description
from osal.annotate.project_state import read_state
from osal.atomic import atomic_write
from osal.build import build
from osal.data.active_pool import ActivePool
from osal.data.datamodule import PoolDataModule
from osal.errors import OsalError
from osal.knobs import check_config
from osal.models.pretrained import source_of
from osal.stored import DamagedFileError

PROJECT_FILE, CONFIG_FILE, IMAGES_FILE, STATE_FILE = "project.json", "config.yaml", "pool_images.npy", "state.npz"
LEGACY_DATAMODULE = "osal.annotate.datamodule.AnnotationDataModule"


class AnnotationError(OsalError):
    """An annotation project, its inputs or an answer file is not usable as given."""


def shown(path: Union[str, os.PathLike]) -> str:
    """`path` as a person would type it here: relative when it lies below the current directory."""
    relative = os.path.relpath(str(path))
    return str(path) if relative.startswith("..") else relative


class Project:
    """A project directory, loaded: its description, config, pool state, answers and batch records."""

    def __init__(self, directory: Union[str, os.PathLike]):
        self.directory = os.path.abspath(str(directory))
        if not os.path.exists(os.path.join(self.directory, PROJECT_FILE)):
            raise AnnotationError(f"{self.directory} is not an annotation project (no {PROJECT_FILE}); create one "
                                  "with `annotate.py init`, or point --project at an existing one")
        # every file may come from someone else: each is checked as it is read, before any command changes anything
        info = read_description(self.path(PROJECT_FILE))
        self.image_folder, self.paths = info["image_folder"], list(info["paths"])
        self.class_names, self.mean, self.std = list(info["classes"]), info["mean"], info["std"]
        self.cfg = read_config(self.path(CONFIG_FILE))
        place_backbone(self.cfg, self.directory, self.path(CONFIG_FILE))
        # config.yaml is the project's to edit: a bad value is named before any work
        check_config(self.cfg, one_process=True, source=self.path(CONFIG_FILE))
        channels = int(self.cfg.dataset.channels)
        check_images(self.path(IMAGES_FILE), len(self.paths), channels)
        if len(self.mean) != channels:
            raise DamagedFileError(f"{self.path(PROJECT_FILE)}: mean and std hold {len(self.mean)} values but the "
                                   f"pool's images have {channels} channel(s); restore it from a good copy of the "
                                   "project, or correct them by hand")
        self.index_of = {p: i for i, p in enumerate(self.paths)}
        arrays, meta = read_state(self.path(STATE_FILE), len(self.paths), len(self.class_names))
        # the pool's oracle is whoever answers: a HumanOracle is given to it with each answer file
        self.pool = ActivePool(len(self.paths), len(self.class_names))
        try:
            self.pool.load_state_dict(arrays)
        except ValueError as error:  # the pool's own check: states and query rounds that contradict each other
            raise DamagedFileError(f"{self.path(STATE_FILE)} holds a pool state that does not hold together ({error}); "
                                   "restore it from a good copy of this project") from None
        self.known_probability = arrays["known_probability"].astype(np.float64)
        self.batches, self.rng_state = meta["batches"], meta["rng"]
        self.strategy_state = meta.get("strategy", {})  # what the strategy learned from earlier answers

    # -- names ---------------------------------------------------------------------------
    @property
    def answers(self) -> np.ndarray:
        """Every pool image's answer: a class index, UNKNOWN, or NOT_ASKED."""
        return self.pool.answers

    @property
    def num_known(self) -> int:
        return len(self.class_names)

    def answer_name(self, answer: int) -> str:
        return UNKNOWN_NAME if answer < 0 else self.class_names[answer]

    def path(self, *parts: str) -> str:
        return os.path.join(self.directory, *parts)

    def batch_dir(self, number: int) -> str:
        return self.path("batches", f"batch_{number:02d}")

    @property
    def pending(self) -> Optional[dict]:
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
    def datamodule(self, images: Optional[np.ndarray] = None) -> PoolDataModule:
        """Loaders over the pool (its images read on the first setup), or over other `images` as a new pool."""
        data_cfg = self.cfg.data
        if data_cfg.get("_target_") == LEGACY_DATAMODULE:  # a project created before osal's pool had its own class
            data_cfg = OmegaConf.merge(data_cfg, {"_target_": "osal.data.datamodule.PoolDataModule"})
        factory = build(data_cfg)
        features = factory.keywords.get("features")
        if features is not None:  # model.freeze: the features are kept in the project
            features.cache_dir = self.directory  # its features/ folder
        if images is None:
            # memory-mapped: a pool beyond data.memory_budget is read a batch at a time, a smaller one copied in
            return factory(images=lambda: np.load(self.path(IMAGES_FILE), mmap_mode="r"), pool=self.pool,
                           mean=self.mean, std=self.std, features=features)
        return factory(images=images, pool=new_state(len(images), self.num_known)[0], mean=self.mean, std=self.std,
                       features=features)

    # -- persistence ---------------------------------------------------------------------
    def save(self, rng: Optional[np.random.Generator] = None) -> None:
        if rng is not None:
            self.rng_state = rng.bit_generator.state
        write_state(self.directory, self.pool, self.known_probability, self.batches, self.rng_state,
                    self.strategy_state)


def place_backbone(cfg: DictConfig, directory: str, source: str) -> None:
    """A project's pretrained checkpoint lies in the project (`annotate.py init` copies it there) and config.yaml
    names it by its file name: read it from there, and from nowhere outside the project."""
    spec = OmegaConf.select(cfg, "model.pretrained")
    if not spec or source_of(str(spec)) != "file":
        return
    name = str(spec)
    if os.path.basename(name) != name or name in (".", ".."):
        raise DamagedFileError(f"{source}: model.pretrained={name} lies outside the project; a project's backbone is "
                               f"a file in its directory (init copies it there): name that file, or restore "
                               "config.yaml from a good copy of the project")
    OmegaConf.update(cfg, "model.pretrained", os.path.join(directory, name))


def write_state(directory: str, pool: ActivePool, known_probability: np.ndarray, batches: list[dict],
                rng_state: Optional[dict], strategy_state: Optional[dict] = None) -> None:
    meta = json.dumps({"batches": batches, "rng": rng_state, "strategy": strategy_state or {}})
    atomic_write(os.path.join(directory, STATE_FILE),
                 lambda f: np.savez(f, **pool.state_dict(),
                                    known_probability=np.asarray(known_probability, dtype=np.float64),
                                    meta=np.array(meta)))


def new_state(size: int, num_known: int) -> tuple[ActivePool, np.ndarray]:
    """(pool, known probability) of a pool nobody has answered about yet."""
    return ActivePool(size, num_known), np.full(size, np.nan)
