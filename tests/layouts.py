"""Writers of tiny datasets in each on-disk layout that osal reads (no download, a few KB each)."""

import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image


def save_image(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.squeeze(-1) if pixels.shape[-1] == 1 else pixels).save(path)


def write_idx(raw: Path, prefix: str, images: np.ndarray, labels: np.ndarray) -> None:
    """torchvision's MNIST files: big-endian magic 2051 (images) / 2049 (labels)."""
    raw.mkdir(parents=True, exist_ok=True)
    with open(raw / f"{prefix}-images-idx3-ubyte", "wb") as f:
        f.write(struct.pack(">IIII", 2051, *images.shape) + images.tobytes())
    with open(raw / f"{prefix}-labels-idx1-ubyte", "wb") as f:
        f.write(struct.pack(">II", 2049, len(labels)) + labels.astype(np.uint8).tobytes())


def chw_rows(images: np.ndarray) -> np.ndarray:
    """HWC uint8 images -> the CIFAR row format: 1024 R, 1024 G, 1024 B values per row."""
    return images.transpose(0, 3, 1, 2).reshape(len(images), -1)


def dump_pickle(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def _split(rng, classes: int, per_class: int, shape):
    labels = np.repeat(np.arange(classes), per_class)
    rng.shuffle(labels)
    return rng.integers(0, 256, (len(labels), *shape), dtype=np.uint8), labels


def write_mnist(root: Path, folder="MNIST", train_per_class=6, test_per_class=2):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", train_per_class), ("t10k", test_per_class)):
        images, labels = _split(rng, 10, n, (28, 28))
        write_idx(root / folder / "raw", prefix, images, labels)


def write_cifar10_pickles(root: Path, train_per_class=6, test_per_class=2):
    rng = np.random.default_rng(1)
    base = root / "cifar-10-batches-py"
    images, labels = _split(rng, 10, train_per_class, (32, 32, 3))
    for i, part in enumerate(np.array_split(np.arange(len(labels)), 5), start=1):
        dump_pickle(base / f"data_batch_{i}", {b"data": chw_rows(images[part]), b"labels": labels[part].tolist()})
    images, labels = _split(rng, 10, test_per_class, (32, 32, 3))
    dump_pickle(base / "test_batch", {b"data": chw_rows(images), b"labels": labels.tolist()})
    dump_pickle(base / "batches.meta", {b"label_names": [f"class{i}".encode() for i in range(10)]})


def write_cifar100_pickles(root: Path, train_per_class=3, test_per_class=1):
    rng = np.random.default_rng(2)
    base = root / "cifar-100-python"
    for split, n in (("train", train_per_class), ("test", test_per_class)):
        images, labels = _split(rng, 100, n, (32, 32, 3))
        dump_pickle(base / split, {b"data": chw_rows(images), b"fine_labels": labels.tolist()})
    dump_pickle(base / "meta", {b"fine_label_names": [f"c{i:03d}".encode() for i in range(100)]})


def write_image_folder(root: Path, classes=5, train_per_class=6, test_per_class=2, size=12, channels=3):
    rng = np.random.default_rng(3)
    for split, n in (("train", train_per_class), ("test", test_per_class)):
        for c in range(classes):
            for k in range(n):
                save_image(root / split / f"class_{c}" / f"{k}.png", rng.integers(0, 256, (size, size, channels),
                                                                                   dtype=np.uint8))


def write_tinyimagenet(root: Path, size=32, classes=200, train_per_class=2, val_per_class=1):
    rng = np.random.default_rng(4)
    base = root / "tiny-imagenet-200"
    wnids = [f"n{i:08d}" for i in range(classes)]
    base.mkdir(parents=True, exist_ok=True)
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")
    for wnid in wnids:
        for k in range(train_per_class):
            save_image(base / "train" / wnid / "images" / f"{wnid}_{k}.JPEG",
                       rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    lines = []
    for i, wnid in enumerate(np.repeat(wnids, val_per_class)):
        save_image(base / "val" / "images" / f"val_{i}.JPEG", rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
        lines.append(f"val_{i}.JPEG\t{wnid}\t0\t0\t{size}\t{size}\n")
    (base / "val" / "val_annotations.txt").write_text("".join(lines))


# dataset config name -> (writer, number of training examples it writes)
WRITERS = {
    "mnist": (write_mnist, 60),
    "fashion_mnist": (lambda root: write_mnist(root, folder="FashionMNIST"), 60),
    "cifar10": (write_cifar10_pickles, 60),
    "cifar10_cpu": (write_cifar10_pickles, 60),  # CIFAR-10's images under the CPU protocol
    "cifar100": (write_cifar100_pickles, 300),
    "tinyimagenet": (write_tinyimagenet, 400),
    "imagefolder": (write_image_folder, 30),
}
