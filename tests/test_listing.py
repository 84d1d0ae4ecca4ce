"""Image folders as people really have them: links (looping, sideways, broken), files that are not images,
formats beyond JPEG/PNG, 16-bit and float images, unreadable files, classes missing from the test split."""

import logging
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from osal.data.sources.decode import decode_images
from osal.data.sources.imagefolder import ImageFolderSource
from osal.data.sources.listing import is_image_file, list_images
from osal.data.split import split_open_set
from osal.errors import ConfigError

from conftest import run_train
from layouts import save_image

CLASSES = ("a", "b", "c", "d")


def image_folder(root: Path, per_class=4, test_per_class=1, classes=CLASSES, size=8) -> Path:
    """root/{train,test}/<class>/<n>.png, each image filled with a value that says its class and number."""
    for split, n in (("train", per_class), ("test", test_per_class)):
        for c, name in enumerate(classes):
            for i in range(n):
                value = 20 * c + 4 * i + (2 if split == "test" else 0)
                save_image(root / split / name / f"{i}.png", np.full((size, size, 3), value, dtype=np.uint8))
    return root


def load(root, **kwargs):
    return ImageFolderSource(root, **kwargs).load()


def test_a_link_back_up_the_tree_is_not_walked_round_and_each_file_counts_once(tmp_path, caplog):
    root = image_folder(tmp_path / "data")
    os.symlink("..", root / "train" / "a" / "up")  # train/a/up -> train: every class again, under "a"
    os.symlink(os.path.abspath(root), root / "train" / "b" / "top")  # an absolute link to the data root
    with caplog.at_level(logging.WARNING):
        arrays = load(root)
    assert len(arrays.train_labels) == 4 * len(CLASSES)  # not 4 x 4 x ... files walked round and round
    assert np.bincount(arrays.train_labels).tolist() == [4] * len(CLASSES)
    # every image keeps its own class: the pixel value says which class it was written for
    assert (arrays.train_images[:, 0, 0, 0] // 20 == arrays.train_labels).all()
    assert "2 folder link(s) not followed: they lead back to a folder above them (a loop)" in caplog.text


def test_a_link_into_another_class_is_refused_naming_the_file_and_both_classes(tmp_path):
    root = image_folder(tmp_path / "data")
    os.symlink(os.path.abspath(root / "train" / "b"), root / "train" / "a" / "more")
    with pytest.raises(ConfigError, match=r"would be both class 'a' and class 'b'.*one class folder"):
        load(root)


def test_a_folder_linked_twice_in_one_class_counts_its_files_once(tmp_path, caplog):
    root = image_folder(tmp_path / "data")
    extra = tmp_path / "elsewhere"
    save_image(extra / "x.png", np.full((8, 8, 3), 3, dtype=np.uint8))
    os.symlink(extra, root / "train" / "a" / "one")
    os.symlink(extra, root / "train" / "a" / "two")
    os.symlink(extra / "x.png", root / "train" / "a" / "x_again.png")
    with caplog.at_level(logging.WARNING):
        arrays = load(root)
    assert np.bincount(arrays.train_labels).tolist() == [5, 4, 4, 4]  # the linked file once, in class a
    assert "folder link(s) not followed: their folder was already listed" in caplog.text


def test_every_format_pillow_reads_is_used_and_other_files_are_counted_once(tmp_path, caplog):
    root = image_folder(tmp_path / "data")
    pixels = np.full((8, 8, 3), 7, dtype=np.uint8)
    for ext in ("tif", "tiff", "ppm", "TGA"):
        Image.fromarray(pixels).save(root / "train" / "a" / f"extra.{ext}", format="TIFF" if "tif" in ext
                                     else ("PPM" if ext == "ppm" else "TGA"))
    for name in ("notes.txt", "labels.csv", "more.txt", ".DS_Store", "._0.png"):
        (root / "train" / "b" / name).write_text("not an image")
    with caplog.at_level(logging.WARNING):
        arrays = load(root)
    assert np.bincount(arrays.train_labels).tolist() == [8, 4, 4, 4]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings  # once, for the whole folder
    assert "2 .txt file(s) skipped: not an image format Pillow reads" in warnings[0]
    assert "1 .csv file(s) skipped" in warnings[0] and "2 hidden file(s) or folder(s) skipped" in warnings[0]
    assert is_image_file("scan.TIF") and is_image_file("x.webp") and not is_image_file("x.h5")


def test_16_bit_images_are_scaled_to_8_bits_not_clipped_white(tmp_path, caplog):
    root = image_folder(tmp_path / "data")
    ramp = (np.arange(64, dtype=np.uint32).reshape(8, 8) * 1000).astype(np.uint16)  # 0 .. 63000
    Image.fromarray(ramp).save(root / "train" / "a" / "deep.png")
    Image.fromarray(ramp).save(root / "train" / "a" / "deep.tif")
    with caplog.at_level(logging.WARNING):
        arrays = ImageFolderSource(root, channels=1).load()
    deep = arrays.train_images[arrays.train_images.reshape(len(arrays.train_images), -1).std(axis=1) > 0]
    assert len(deep) == 2  # the other images are flat
    expected = np.round(ramp.astype(np.float64) / 257.0)
    assert np.abs(deep[..., 0].astype(np.float64) - expected).max() <= 1.0
    assert deep.mean() < 130  # Pillow's own conversion clips: 98% of the pixels would be 255
    assert "2 16-bit (or 32-bit integer) image(s) scaled to 8 bits (0-65535 to 0-255)" in caplog.text


def test_float_images_in_0_1_are_read_as_0_255(tmp_path):
    path = tmp_path / "f.tif"
    Image.fromarray(np.full((4, 4), 0.5, dtype=np.float32)).save(path)
    assert decode_images([str(path)], "L")[0, 0, 0, 0] == 128


def test_every_unreadable_image_is_named_in_one_error(tmp_path):
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"bad{i}.png")
        paths[-1].write_bytes(b"not a png")
    good = tmp_path / "good.png"
    save_image(good, np.zeros((4, 4, 3), dtype=np.uint8))
    with pytest.raises(ConfigError) as error:
        decode_images([str(p) for p in [good, *paths]])
    message = str(error.value)
    assert message.startswith("Could not read 3 image files; replace or delete them:")
    assert all(str(p) in message for p in paths) and str(good) not in message


@pytest.mark.parametrize("cached", [True, False])
def test_a_link_to_a_missing_file_is_one_sentence_with_or_without_the_cache(tmp_path, cached):
    root = image_folder(tmp_path / "data")
    os.symlink(tmp_path / "gone.png", root / "train" / "c" / "gone.png")
    with pytest.raises(ConfigError, match=r"Could not read image file .*gone.png .*replace or delete that file"):
        load(root, cache_dir=tmp_path / "cache" if cached else None)


@pytest.mark.slow
def test_a_broken_link_through_train_py_exits_2_without_a_traceback(tmp_path):
    root = image_folder(tmp_path / "data", classes=CLASSES + ("e",))
    os.symlink(tmp_path / "gone.png", root / "train" / "c" / "gone.png")
    result = run_train("dataset=imagefolder", f"data_dir={root}", "trainer=cpu", "logger=none", "mismatch=0.4",
                       f"hydra.run.dir={tmp_path / 'run'}", timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "Could not read image file" in result.stderr


def test_a_known_class_without_test_images_is_refused(tmp_path):
    root = image_folder(tmp_path / "data", classes=("a", "b", "c", "d", "e"))
    for f in (root / "test" / "b").iterdir():
        f.unlink()
    with pytest.raises(ConfigError, match=r"known class\(es\) 'b' have no test images"):
        split_open_set(ImageFolderSource(root), mismatch=0.4, init_percent=50)


@pytest.mark.parametrize("classes", [("only",), ("a", "b")])
def test_too_few_classes_say_how_many_are_needed_before_any_image_is_decoded(tmp_path, classes):
    root = image_folder(tmp_path / "data", classes=classes)
    for f in (root / "train").rglob("*.png"):
        f.write_bytes(b"undecodable")  # decoding would fail with another message
    with pytest.raises(ConfigError, match=rf"the dataset has {len(classes)} class\(es\); open-set active learning "
                                          "needs at least 3"):
        split_open_set(ImageFolderSource(root), mismatch=0.5, init_percent=50)


def test_a_mismatch_that_leaves_one_known_class_gives_a_readable_range(tmp_path):
    root = image_folder(tmp_path / "data", classes=tuple("abcdefghij"))
    with pytest.raises(ConfigError, match=r"gives 1 known class\(es\) out of 10.*from 0.150 up to 0.950 \(excluded\)"):
        split_open_set(ImageFolderSource(root), mismatch=0.1, init_percent=50)


def test_list_images_logs_what_it_skipped_once(tmp_path, caplog):
    save_image(tmp_path / "x" / "1.png", np.zeros((4, 4, 3), dtype=np.uint8))
    (tmp_path / "x" / "a.doc").write_text("-")
    with caplog.at_level(logging.WARNING):
        assert [Path(p).name for p in list_images(tmp_path / "x")] == ["1.png"]
    assert caplog.text.count(".doc file(s) skipped") == 1
