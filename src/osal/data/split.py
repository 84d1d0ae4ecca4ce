"""A closed-set dataset turned into the paper's open-set protocol: known classes, initial labels, the oracle."""

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import numpy as np

from osal.data.active_pool import ActivePool
from osal.data.open_set import initial_labeled_set, num_known_classes, openness_subset
from osal.data.oracle import SimulatedOracle
from osal.errors import ConfigError

if TYPE_CHECKING:  # the sources package imports Pillow and every reader: not needed to split
    from osal.data.sources.base import ImageSource

log = logging.getLogger(__name__)


@dataclass
class OpenSetSplit:
    """The training split as an ActivePool (initial set labeled, a simulated oracle) and the test split.

    Images are uint8 (N, H, W, C) arrays; `test_labels` covers every test image, known or not.
    """

    class_names: list
    num_known: int
    train_images: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    pool: ActivePool
    n_known_total: int  # known-class examples in the training split, labeled or not

    @property
    def n_initial(self) -> int:
        return int(len(self.pool.queried_in(0)))

    @property
    def n_known_initial_pool(self) -> int:
        """Known-class examples in the unlabeled pool at the start: what recall is measured against."""
        return self.n_known_total - self.n_initial


def split_open_set(source: "ImageSource", mismatch: float, init_percent: float, init_stratified: bool = False,
                   openness: Optional[float] = None, seed: int = 0) -> OpenSetSplit:
    """Load `source` and build the open-set protocol on it.

    Args:
        source: an object whose `load()` returns `ImageArrays` (see osal.data.sources).
        mismatch: fraction of classes that are known; the first K in class order.
        init_percent: percentage of known-class training examples labeled at the start.
        init_stratified: draw the initial set per class (the authors draw it without).
        openness: None keeps the training split as it is; a value in [0, 1) keeps a seeded subset of it
            so that that fraction of the unlabeled pool is unknown (see `openness_subset`).
        seed: seeds the initial labeled set and the openness subset.
    """
    class_names = getattr(source, "class_names", None)
    if callable(class_names):  # a source that can name its classes cheaply: check them before decoding
        num_known_classes(mismatch, len(class_names()))
    arrays = source.load()
    num_known = num_known_classes(mismatch, arrays.num_classes)
    train_images, train_labels = arrays.train_images, arrays.train_labels
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0]))
    initial = initial_labeled_set(train_labels, num_known, init_percent, rng, init_stratified)
    if openness is not None:
        keep = openness_subset(train_labels, num_known, initial, openness,
                               np.random.default_rng(np.random.SeedSequence([int(seed), 3])))
        train_images, train_labels, initial = train_images[keep], train_labels[keep], np.searchsorted(keep, initial)
        unknown = int((train_labels >= num_known).sum())
        log.info("openness %s: %d of the %d unlabeled examples are unknown (%d of %d training examples kept)",
                 openness, unknown, len(keep) - len(initial), len(keep), len(arrays.train_labels))
    test_labels = np.asarray(arrays.test_labels)
    untested = [arrays.class_names[c] for c in range(num_known) if not (test_labels == c).any()]
    if untested:
        # accuracy would silently cover the other known classes only
        raise ConfigError(f"known class(es) {', '.join(repr(n) for n in untested)} have no test images, so test "
                          f"accuracy could not cover them; add test images of every known class (the first "
                          f"{num_known} in class order)")
    pool = ActivePool(len(train_labels), num_known, SimulatedOracle(train_labels, num_known))
    pool.annotate(initial, round_index=0)
    split = OpenSetSplit(list(arrays.class_names), num_known, train_images, arrays.test_images, test_labels, pool,
                         n_known_total=int((train_labels < num_known).sum()))
    log.info("%d classes (%d known), %d training / %d known-class test examples, %d labeled at start",
             arrays.num_classes, num_known, len(pool), int((test_labels < num_known).sum()), len(initial))
    return split
