"""The on-disk decode cache: a second load reads raw arrays, any file change decodes again."""

import logging
import os

import numpy as np

from osal.data.sources import ImageFolderSource, decode_cache
from osal.data.sources.tinyimagenet import TinyImageNetSource

from layouts import save_image, write_image_folder, write_tinyimagenet


def _entries(cache_dir):
    return sorted(n for n in os.listdir(cache_dir) if not n.startswith(".")) if os.path.isdir(cache_dir) else []


def _load(root, cache_dir, caplog):
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="osal"):  # the cache logs from splits and decode_cache
        data = ImageFolderSource(root=str(root), channels=3, cache_dir=str(cache_dir)).load()
    from_cache = any("from the cache" in r.getMessage() for r in caplog.records)
    return data, from_cache


def test_second_load_reads_the_cache_and_equals_the_decode(tmp_path, caplog):
    root, cache = tmp_path / "images", tmp_path / "cache"
    write_image_folder(root, classes=3, train_per_class=4, test_per_class=2, size=6)
    first, hit = _load(root, cache, caplog)
    assert not hit and len(_entries(cache)) == 1
    second, hit = _load(root, cache, caplog)
    assert hit and len(_entries(cache)) == 1
    assert isinstance(second.train_images, np.memmap)  # read back memory-mapped, not decoded
    for split in ("train", "test"):
        np.testing.assert_array_equal(getattr(first, f"{split}_images"), getattr(second, f"{split}_images"))
        np.testing.assert_array_equal(getattr(first, f"{split}_labels"), getattr(second, f"{split}_labels"))
    assert first.class_names == second.class_names


def test_a_changed_added_or_moved_file_is_decoded_again(tmp_path, caplog):
    root, cache = tmp_path / "images", tmp_path / "cache"
    write_image_folder(root, classes=3, train_per_class=4, test_per_class=2, size=6)
    _load(root, cache, caplog)

    changed = root / "train" / "class_1" / "0.png"
    save_image(changed, np.full((6, 6, 3), 7, np.uint8))
    os.utime(changed, ns=(1, 1))  # a different mtime even on file systems with coarse timestamps
    data, hit = _load(root, cache, caplog)
    assert not hit and len(_entries(cache)) == 2
    assert (data.train_images[4] == 7).all()  # class_1's first image is the 5th training image

    save_image(root / "train" / "class_2" / "extra.png", np.zeros((6, 6, 3), np.uint8))
    data, hit = _load(root, cache, caplog)
    assert not hit and len(data.train_images) == 13

    # the same file under another class is another label: never served from the old entry
    os.rename(root / "train" / "class_2" / "extra.png", root / "train" / "class_0" / "extra.png")
    data, hit = _load(root, cache, caplog)
    assert not hit and int((data.train_labels == 0).sum()) == 5


def test_resize_and_mode_are_part_of_the_key(tmp_path):
    root, cache = tmp_path / "images", tmp_path / "cache"
    write_image_folder(root, classes=2, train_per_class=2, test_per_class=1, size=6)
    small = ImageFolderSource(root=str(root), image_size=4, cache_dir=str(cache)).load()
    grey = ImageFolderSource(root=str(root), channels=1, cache_dir=str(cache)).load()
    assert small.train_images.shape[1:] == (4, 4, 3) and grey.train_images.shape[1:] == (6, 6, 1)
    assert len(_entries(cache)) == 2


def test_unwritable_cache_is_a_warning_and_the_data_still_loads(tmp_path, caplog):
    root = tmp_path / "images"
    write_image_folder(root, classes=2, train_per_class=2, test_per_class=1, size=6)
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with caplog.at_level(logging.WARNING, logger=decode_cache.__name__):
        data = ImageFolderSource(root=str(root), cache_dir=str(blocker / "cache")).load()
    assert data.train_images.shape == (4, 6, 6, 3)
    assert any("could not write the decode cache" in r.getMessage() for r in caplog.records)


def test_a_damaged_entry_is_ignored_and_decoded_again(tmp_path, caplog):
    root, cache = tmp_path / "images", tmp_path / "cache"
    write_image_folder(root, classes=2, train_per_class=2, test_per_class=1, size=6)
    loaded, _ = _load(root, cache, caplog)
    expected = np.array(loaded.train_images)  # a copy: the load maps the entry's file, damaged next
    (entry,) = _entries(cache)
    (cache / entry / "train_images.npy").write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING, logger=decode_cache.__name__):
        data, hit = _load(root, cache, caplog)
    assert not hit
    np.testing.assert_array_equal(data.train_images, expected)


def test_tinyimagenet_uses_the_cache(tmp_path, caplog):
    write_tinyimagenet(tmp_path, size=8, classes=3, train_per_class=2, val_per_class=1)
    cache = tmp_path / "cache"
    first = TinyImageNetSource(root=str(tmp_path), cache_dir=str(cache)).load()
    with caplog.at_level(logging.INFO, logger="osal"):  # the cache logs from splits and decode_cache
        second = TinyImageNetSource(root=str(tmp_path), cache_dir=str(cache)).load()
    assert any("from the cache" in r.getMessage() for r in caplog.records)
    np.testing.assert_array_equal(first.train_images, second.train_images)
    assert first.class_names == second.class_names


def test_config_keeps_the_cache_beside_the_data_unless_told(tmp_path, monkeypatch):
    from conftest import compose_config

    monkeypatch.delenv("OSAL_CACHE_DIR", raising=False)
    cfg = compose_config(["dataset=imagefolder", f"data_dir={tmp_path}"])
    assert cfg.dataset.source.cache_dir == f"{tmp_path}/.osal_cache"
    cfg = compose_config(["dataset=cifar10", "cache_dir=null"])
    assert cfg.dataset.source.cache_dir is None
