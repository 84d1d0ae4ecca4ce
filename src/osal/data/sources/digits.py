"""scikit-learn's bundled 8x8 digits: a tiny real dataset that needs no files or network."""

import numpy as np

from osal.data.sources.base import ImageArrays

# Every TEST_EVERY-th example (index 0, 5, 10, ...) is a test example, the rest train.
# The split is fixed, not drawn from the run seed, so every run and every seed is
# measured on the same test set (1437 train / 360 test of the 1797 examples).
TEST_EVERY = 5


class DigitsSource:
    """sklearn.datasets.load_digits() as 8x8 grey uint8 images; test = examples whose index i has i % 5 == 0."""

    def load(self) -> ImageArrays:
        # Imported here: scikit-learn is only needed when this source is used.
        from sklearn.datasets import load_digits

        digits = load_digits()
        # The pixel values are counts 0..16; stretch them to the usual 0..255 range.
        images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
        labels = digits.target.astype(np.int64)
        is_test = np.arange(len(labels)) % TEST_EVERY == 0
        return ImageArrays(
            train_images=images[~is_test],
            train_labels=labels[~is_test],
            test_images=images[is_test],
            test_labels=labels[is_test],
            class_names=[str(d) for d in range(10)],
        )
