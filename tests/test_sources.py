"""Each dataset source against a tiny fixture written in its exact on-disk layout.

No test touches the network: torchvision is only ever called with download=False,
or replaced by a stub where the download path itself is under test.
"""

import gzip
import logging
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from osal.data.sources import (
    CIFAR10Source,
    CIFAR100Source,
    DigitsSource,
    FashionMNISTSource,
    ImageFolderSource,
    MNISTSource,
    TinyImageNetSource,
    decode,
)
from osal.errors import ConfigError, DataNotFoundError

from layouts import chw_rows, dump_pickle, save_image

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _rng(seed=0):
    return np.random.default_rng(seed)




# ----------------------------------------------------------------------------- digits


def test_digits_split_values_and_classes():
    from sklearn.datasets import load_digits

    data = DigitsSource().load()
    assert len(data.train_images) == 1437 and len(data.test_images) == 360
    assert data.train_images.shape[1:] == (8, 8, 1) and data.train_images.dtype == np.uint8
    assert data.class_names == [str(d) for d in range(10)]
    assert set(data.train_labels) == set(range(10)) and set(data.test_labels) == set(range(10))
    assert data.train_labels.dtype == np.int64
    assert data.train_images.max() == 255 and data.train_images.min() == 0
    # The split is fixed: example i is a test example iff i % 5 == 0, whatever the seed.
    ref = load_digits()
    expected = np.round(ref.images[::5] * 255 / 16).astype(np.uint8)[..., None]
    np.testing.assert_array_equal(data.test_images, expected)
    np.testing.assert_array_equal(data.test_labels, ref.target[::5])
    np.testing.assert_array_equal(DigitsSource().load().train_images, data.train_images)


# ----------------------------------------------------------------------------- MNIST


def _write_idx(raw: Path, prefix: str, images: np.ndarray, labels: np.ndarray, gz=False):
    raw.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if gz else open
    suffix = ".gz" if gz else ""
    with opener(raw / f"{prefix}-images-idx3-ubyte{suffix}", "wb") as f:
        f.write(struct.pack(">IIII", 2051, *images.shape) + images.tobytes())
    with opener(raw / f"{prefix}-labels-idx1-ubyte{suffix}", "wb") as f:
        f.write(struct.pack(">II", 2049, len(labels)) + labels.astype(np.uint8).tobytes())


def _mnist_fixture(root: Path, folder: str, gz=False):
    rng = _rng()
    splits = {}
    for prefix, n in (("train", 7), ("t10k", 4)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n).astype(np.uint8)
        _write_idx(root / folder / "raw", prefix, images, labels, gz)
        splits[prefix] = (images, labels)
    return splits


@pytest.mark.parametrize("cls, folder, first_class", [
    (MNISTSource, "MNIST", "0 - zero"),
    (FashionMNISTSource, "FashionMNIST", "T-shirt/top"),
])
def test_mnist_like_reads_torchvision_layout(tmp_path, cls, folder, first_class):
    splits = _mnist_fixture(tmp_path, folder)
    data = cls(root=str(tmp_path)).load()
    assert data.train_images.shape == (7, 28, 28, 1) and data.test_images.shape == (4, 28, 28, 1)
    assert data.train_images.dtype == np.uint8 and data.test_labels.dtype == np.int64
    np.testing.assert_array_equal(data.train_images[..., 0], splits["train"][0])
    np.testing.assert_array_equal(data.test_images[..., 0], splits["t10k"][0])
    np.testing.assert_array_equal(data.train_labels, splits["train"][1])
    np.testing.assert_array_equal(data.test_labels, splits["t10k"][1])
    assert len(data.class_names) == 10 and data.class_names[0] == first_class


@pytest.mark.parametrize("cls", [MNISTSource, FashionMNISTSource])
def test_mnist_like_missing_names_data_dir(tmp_path, cls):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataNotFoundError, match="download") as err:
        cls(root=str(missing)).load()
    assert str(missing) in str(err.value) and "train-images-idx3-ubyte" in str(err.value)


def test_mnist_gz_only_says_how_to_fix(tmp_path):
    # torchvision reads only the unpacked files; the message must say so rather than "not found".
    _mnist_fixture(tmp_path, "MNIST", gz=True)
    with pytest.raises(DataNotFoundError, match="gunzip") as err:
        MNISTSource(root=str(tmp_path)).load()
    assert str(tmp_path) in str(err.value)


def test_mnist_failed_download_is_data_not_found(tmp_path, monkeypatch):
    import torchvision.datasets

    class OfflineMNIST:
        def __init__(self, root, train=True, download=False):
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz: no network")

    monkeypatch.setattr(torchvision.datasets, "MNIST", OfflineMNIST)
    with pytest.raises(DataNotFoundError, match="no network") as err:
        MNISTSource(root=str(tmp_path), download=True).load()
    assert str(tmp_path) in str(err.value)


def test_mnist_truncated_file_is_config_error(tmp_path):
    _mnist_fixture(tmp_path, "MNIST")
    path = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ConfigError, match="MNIST"):
        MNISTSource(root=str(tmp_path)).load()


@pytest.mark.skipif(not SHARED_DATA.is_dir(),
                    reason=f"no shared real data at {SHARED_DATA} (a development-only folder)")
def test_real_mnist_materialized(tmp_path):
    subprocess.run([sys.executable, str(SHARED_DATA / "materialize.py"), str(tmp_path), "mnist"],
                   check=True, capture_output=True)
    data = MNISTSource(root=str(tmp_path)).load()
    assert data.train_images.shape == (60000, 28, 28, 1) and data.test_images.shape == (10000, 28, 28, 1)
    assert data.train_images.dtype == np.uint8 and data.train_images.max() == 255
    assert np.bincount(data.train_labels).tolist()[:2] == [5923, 6742]  # the well-known MNIST class counts
    assert set(data.test_labels) == set(range(10))


# ----------------------------------------------------------------------------- CIFAR pickles






def test_cifar10_pickles_bytes_keys(tmp_path):
    rng = _rng()
    base = tmp_path / "cifar-10-batches-py"
    train_parts = []
    for i in range(1, 6):  # bytes keys, as the Python 2 originals load with encoding="bytes"
        images = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
        labels = [2 * i - 2, 2 * i - 1]
        dump_pickle(base / f"data_batch_{i}", {b"data": chw_rows(images), b"labels": labels, b"batch_label": b"x"})
        train_parts.append((images, labels))
    test_images = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    dump_pickle(base / "test_batch", {b"data": chw_rows(test_images), b"labels": [9, 0, 4]})
    dump_pickle(base / "batches.meta", {b"label_names": [n.encode() for n in CIFAR10_NAMES], b"num_vis": 3072})

    data = CIFAR10Source(root=str(tmp_path)).load()
    assert data.train_images.shape == (10, 32, 32, 3) and data.test_images.shape == (3, 32, 32, 3)
    assert data.train_images.dtype == np.uint8 and data.train_labels.dtype == np.int64
    np.testing.assert_array_equal(data.train_images, np.concatenate([p[0] for p in train_parts]))
    np.testing.assert_array_equal(data.train_labels, np.arange(10))
    np.testing.assert_array_equal(data.test_images, test_images)
    np.testing.assert_array_equal(data.test_labels, [9, 0, 4])
    assert data.class_names == CIFAR10_NAMES


def test_cifar100_pickles_str_keys(tmp_path):
    rng = _rng(1)
    base = tmp_path / "cifar-100-python"
    names = [f"class{i:03d}" for i in range(100)]
    train = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    test = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    dump_pickle(base / "train", {"data": chw_rows(train), "fine_labels": [0, 99, 5, 5], "coarse_labels": [0, 1, 2, 3]})
    dump_pickle(base / "test", {"data": chw_rows(test), "fine_labels": [42, 7], "coarse_labels": [0, 0]})
    dump_pickle(base / "meta", {"fine_label_names": names, "coarse_label_names": ["c"] * 20})

    data = CIFAR100Source(root=str(tmp_path)).load()
    np.testing.assert_array_equal(data.train_images, train)
    np.testing.assert_array_equal(data.test_images, test)
    np.testing.assert_array_equal(data.train_labels, [0, 99, 5, 5])
    np.testing.assert_array_equal(data.test_labels, [42, 7])
    assert data.class_names == names


def test_cifar_incomplete_pickles(tmp_path):
    dump_pickle(tmp_path / "cifar-10-batches-py" / "batches.meta", {b"label_names": []})
    with pytest.raises(DataNotFoundError, match="data_batch_1") as err:
        CIFAR10Source(root=str(tmp_path)).load()
    assert str(tmp_path) in str(err.value)


# ----------------------------------------------------------------------------- CIFAR image folders


def _cifar_folder_fixture(root: Path, names, ext="png"):
    rng = _rng(2)
    expected = {"train": [], "test": []}
    for label, name in enumerate(names):
        for split, n in (("train", 2), ("test", 1)):
            for k in range(n):
                pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                save_image(root / split / name / f"{k:05d}.{ext}", pixels)
                expected[split].append((label, pixels))
    return expected


def test_cifar10_image_folder_png_exact(tmp_path):
    # created in reverse: the order must not matter
    expected = _cifar_folder_fixture(tmp_path / "cifar10", CIFAR10_NAMES[::-1])
    data = CIFAR10Source(root=str(tmp_path)).load()
    assert data.class_names == CIFAR10_NAMES
    assert data.train_images.shape == (20, 32, 32, 3) and data.test_images.shape == (10, 32, 32, 3)
    # Written with label = reversed index; sorted folder order maps it back.
    by_name = {name: [p for lab, p in expected["train"] if CIFAR10_NAMES[::-1][lab] == name] for name in CIFAR10_NAMES}
    np.testing.assert_array_equal(data.train_images, np.stack([p for name in CIFAR10_NAMES for p in by_name[name]]))
    np.testing.assert_array_equal(data.train_labels, np.repeat(np.arange(10), 2))
    np.testing.assert_array_equal(data.test_labels, np.arange(10))


def test_cifar10_image_folder_jpeg(tmp_path):
    _cifar_folder_fixture(tmp_path / "cifar10", CIFAR10_NAMES, ext="jpg")
    data = CIFAR10Source(root=str(tmp_path)).load()
    first = sorted((tmp_path / "cifar10" / "train" / "airplane").iterdir())[0]
    # Same decoder as PIL on its own: the arrays are exactly what PIL gives for the file.
    np.testing.assert_array_equal(data.train_images[0], np.asarray(Image.open(first).convert("RGB")))


def test_cifar100_image_folder_needs_all_classes(tmp_path):
    _cifar_folder_fixture(tmp_path / "cifar100", CIFAR10_NAMES)
    with pytest.raises(DataNotFoundError, match="not 100"):
        CIFAR100Source(root=str(tmp_path)).load()


@pytest.mark.parametrize("cls, names", [(CIFAR10Source, ("cifar-10-batches-py", "cifar10")),
                                        (CIFAR100Source, ("cifar-100-python", "cifar100"))])
def test_cifar_missing_names_data_dir_and_both_layouts(tmp_path, cls, names):
    with pytest.raises(DataNotFoundError) as err:
        cls(root=str(tmp_path)).load()
    message = str(err.value)
    assert str(tmp_path) in message and all(f"{tmp_path}/{n}/" in message for n in names)


def test_cifar_failed_download_is_data_not_found(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(DataNotFoundError, match="no network") as err:
        CIFAR10Source(root=str(tmp_path), download=True).load()
    assert str(tmp_path) in str(err.value)


# ----------------------------------------------------------------------------- Tiny-ImageNet


def _tiny_fixture(base: Path, size: int):
    """Three classes (listed unsorted in wnids.txt), two train images each, four val images."""
    wnids = ["n03000000", "n01000000", "n02000000"]
    base.mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")
    # words.txt lists more wnids than the dataset uses; n02000000 has no entry (falls back to its wnid).
    (base / "words.txt").write_text("n00000001\tentity\nn01000000\tgoldfish, Carassius auratus\n"
                                    "n03000000\tschool bus\n")
    for c, wnid in enumerate(sorted(wnids)):
        for k in range(2):
            # Flat colours: JPEG keeps them almost exactly, so pixels can be checked against the source.
            save_image(base / "train" / wnid / "images" / f"{wnid}_{k}.JPEG",
                  np.full((size, size, 3), (40 * c + 20 * k, 100, 200), np.uint8))
        (base / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
    val = [("val_0.JPEG", "n02000000"), ("val_1.JPEG", "n03000000"), ("val_2.JPEG", "n01000000"),
           ("val_3.JPEG", "n02000000")]
    for i, (name, _) in enumerate(val):
        save_image(base / "val" / "images" / name, np.full((size, size, 3), 60 * i, np.uint8))
    (base / "val" / "val_annotations.txt").write_text("".join(f"{n}\t{w}\t0\t0\t{size}\t{size}\n" for n, w in val))


@pytest.mark.parametrize("size", [64, 32])
@pytest.mark.parametrize("point_at_parent", [True, False])
def test_tinyimagenet_layout(tmp_path, size, point_at_parent):
    base = tmp_path / "tiny-imagenet-200"
    _tiny_fixture(base, size)
    data = TinyImageNetSource(root=str(tmp_path if point_at_parent else base)).load()
    assert data.train_images.shape == (6, size, size, 3) and data.test_images.shape == (4, size, size, 3)
    assert data.train_images.dtype == np.uint8 and data.train_labels.dtype == np.int64
    assert data.class_names == ["goldfish", "n02000000", "school bus"]  # sorted wnids
    np.testing.assert_array_equal(data.train_labels, [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(data.test_labels, [1, 2, 0, 1])  # from val_annotations.txt
    expected = np.full((size, size, 3), (40 * 2 + 20, 100, 200), np.uint8)
    assert np.abs(data.train_images[5].astype(int) - expected).max() <= 3
    assert np.abs(data.test_images[3].astype(int) - 180).max() <= 3
    exact = np.asarray(Image.open(base / "val" / "images" / "val_3.JPEG").convert("RGB"))
    np.testing.assert_array_equal(data.test_images[3], exact)


def test_tinyimagenet_resize(tmp_path):
    _tiny_fixture(tmp_path / "tiny-imagenet-200", 64)
    data = TinyImageNetSource(root=str(tmp_path), image_size=16).load()
    assert data.train_images.shape == (6, 16, 16, 3) and data.test_images.shape == (4, 16, 16, 3)


def test_tinyimagenet_missing_names_data_dir(tmp_path):
    with pytest.raises(DataNotFoundError, match="wnids.txt") as err:
        TinyImageNetSource(root=str(tmp_path)).load()
    assert str(tmp_path) in str(err.value)


# ----------------------------------------------------------------------------- image folder


def _folder_fixture(root: Path, channels=3, classes=("b", "a", "c"), test_classes=("c", "a"), size=10):
    rng = _rng(3)
    shape = (size, size, channels)
    expected = {}
    for split, names in (("train", classes), ("test", test_classes)):
        for name in names:
            for k, ext in enumerate(("png", "PNG")):  # extension case must not matter
                pixels = rng.integers(0, 256, shape, dtype=np.uint8)
                save_image(root / split / name / f"img{k}.{ext}", pixels)
                expected[(split, name, k)] = pixels
            (root / split / name / "notes.txt").write_text("not an image")
    return expected


@pytest.mark.parametrize("channels", [3, 1])
def test_image_folder_exact_round_trip(tmp_path, channels):
    expected = _folder_fixture(tmp_path, channels)
    data = ImageFolderSource(root=str(tmp_path), channels=channels).load()
    assert data.class_names == ["a", "b", "c"]
    assert data.train_images.shape == (6, 10, 10, channels) and data.test_images.shape == (4, 10, 10, channels)
    assert data.train_images.dtype == np.uint8 and data.train_labels.dtype == np.int64
    np.testing.assert_array_equal(data.train_labels, [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(data.test_labels, [0, 0, 2, 2])
    np.testing.assert_array_equal(data.train_images[2], expected[("train", "b", 0)])
    np.testing.assert_array_equal(data.test_images[3], expected[("test", "c", 1)])


def test_image_folder_resize(tmp_path):
    _folder_fixture(tmp_path)
    save_image(tmp_path / "train" / "a" / "big.png", np.zeros((20, 30, 3), np.uint8))
    data = ImageFolderSource(root=str(tmp_path), image_size=8).load()
    assert data.train_images.shape == (7, 8, 8, 3) and data.test_images.shape == (4, 8, 8, 3)


def test_image_folder_mixed_sizes_need_image_size(tmp_path):
    _folder_fixture(tmp_path)
    save_image(tmp_path / "test" / "a" / "big.png", np.zeros((20, 30, 3), np.uint8))
    with pytest.raises(ConfigError, match="dataset.image_size") as err:
        ImageFolderSource(root=str(tmp_path)).load()
    assert "big.png" in str(err.value)


def test_image_folder_test_class_not_in_train(tmp_path):
    _folder_fixture(tmp_path, test_classes=("a", "zebra"))
    with pytest.raises(ConfigError, match="zebra"):
        ImageFolderSource(root=str(tmp_path)).load()


def test_image_folder_corrupt_image_named(tmp_path):
    _folder_fixture(tmp_path)
    bad = tmp_path / "train" / "b" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(ConfigError) as err:
        ImageFolderSource(root=str(tmp_path)).load()
    assert str(bad) in str(err.value)


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_image_folder_missing_names_data_dir(tmp_path, make):
    root = tmp_path / "data"
    if make == "empty":
        (root / "train").mkdir(parents=True)
    with pytest.raises(DataNotFoundError) as err:
        ImageFolderSource(root=str(root)).load()
    assert str(root) in str(err.value) and "train/<class>" in str(err.value)


def test_image_folder_bad_settings():
    with pytest.raises(ConfigError, match="channels"):
        ImageFolderSource(root="x", channels=2)
    with pytest.raises(ConfigError, match="image_size"):
        ImageFolderSource(root="x", image_size=0)


def test_long_decode_logs_progress(tmp_path, monkeypatch, caplog):
    paths = []
    for i in range(20):
        paths.append(tmp_path / f"{i}.png")
        save_image(paths[-1], np.full((4, 4, 3), i, np.uint8))
    monkeypatch.setattr(decode, "PROGRESS_THRESHOLD", 5)
    with caplog.at_level(logging.INFO, logger=decode.__name__):
        images = decode.decode_images(paths, "RGB", desc="test images")
    assert images[:, 0, 0, 0].tolist() == list(range(20))
    progress = [r.getMessage() for r in caplog.records if "Decoded" in r.getMessage()]
    assert len(progress) == 10 and progress[-1] == "Decoded 20/20 test images (100%)"
