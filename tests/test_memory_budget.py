"""Pools larger than data.memory_budget: images read a batch at a time from the decode cache's file give exactly
what the in-memory path gives (loaders, fits, whole runs), and decoding writes straight into the cache."""

import numpy as np
import pytest
import torch

from osal.data.image_rows import ImageRows, file_behind
from osal.data.sources import ImageFolderSource
from osal.records.metrics import read_metrics

from conftest import assert_same_records, compose_config, run_train
from layouts import write_image_folder


@pytest.fixture
def cached_array(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (60, 5, 7, 3), dtype=np.uint8)
    np.save(tmp_path / "images.npy", images)
    return images, np.load(tmp_path / "images.npy", mmap_mode="r")


def test_rows_read_from_the_file_equal_the_tensor_for_any_index_order(cached_array):
    images, mapped = cached_array
    as_tensor = torch.from_numpy(images).permute(0, 3, 1, 2)
    for array in (mapped, mapped[13:41], np.asarray(mapped)[5:], images):
        rows = ImageRows(array)
        assert rows.from_file == (array is not images)
        expected = torch.from_numpy(np.array(array)).permute(0, 3, 1, 2)
        assert rows.shape == tuple(expected.shape)
        for index in ([0, 1, 2, 3], [9, 2, 2, 7, 0, 8], list(range(len(array)))[::-1], []):
            assert torch.equal(rows[torch.tensor(index, dtype=torch.long)], expected[index])
        assert torch.equal(rows[torch.tensor(4)], expected[4])
        with pytest.raises(IndexError):
            rows[torch.tensor([len(array)])]
    assert torch.equal(ImageRows(mapped)[torch.arange(60)], as_tensor)


def test_only_a_whole_c_ordered_map_of_a_file_is_read_from_the_file(cached_array):
    _, mapped = cached_array
    assert file_behind(mapped)[1] > 0 and file_behind(mapped[10:])[1] == file_behind(mapped)[1] + 10 * 5 * 7 * 3
    assert file_behind(mapped[:, ::2])[0] is None  # not contiguous: indexed in place instead
    assert file_behind(np.zeros((2, 2, 2, 3), np.uint8))[0] is None


def folder_datamodule(tmp_path, budget, pipeline="batched"):
    from osal.loop.data import open_set_data
    root = tmp_path / "images"
    if not root.exists():
        write_image_folder(root, classes=5, train_per_class=30, test_per_class=6, size=12)
    cfg = compose_config(["dataset=imagefolder", "model=small_cnn", f"data_dir={root}", f"cache_dir={tmp_path / 'c'}",
                          "mismatch=0.4", "al.init_percent=50", "data.batch_size=16", "data.inference_batch_size=50",
                          f"data.pipeline={pipeline}", f"data.memory_budget={budget}"])
    return open_set_data(cfg)[1]


@pytest.mark.parametrize("pipeline", ["batched", "per_sample"])
def test_loaders_beyond_the_budget_give_the_in_memory_batches(tmp_path, pipeline):
    held = folder_datamodule(tmp_path, "null", pipeline)
    read = folder_datamodule(tmp_path, 1000, pipeline)  # 150 images of 12x12x3: 64,800 bytes
    assert held.images_in_memory and not read.images_in_memory and read.train_images.from_file
    assert not torch.is_tensor(read.test_images)
    for name in ("pool_dataloader", "labeled_dataloader", "test_dataloader"):
        for a, b in zip(getattr(held, name)(), getattr(read, name)(), strict=True):
            for x, y in zip(a, b):
                assert torch.equal(x, y), name
    for dm in (held, read):
        dm.begin_fit(seed=7, with_invalid=False)
    torch.manual_seed(0)
    first = list(held.training_batches())
    torch.manual_seed(0)
    second = list(read.training_batches())
    assert len(first) == len(second) > 1
    for a, b in zip(first, second):
        for x, y in zip(a, b):
            assert torch.equal(x, y)


def test_decoding_writes_straight_into_the_cache_and_hands_back_its_files(tmp_path):
    write_image_folder(tmp_path / "images", classes=3, train_per_class=4, test_per_class=2, size=6)
    first = ImageFolderSource(root=str(tmp_path / "images"), cache_dir=str(tmp_path / "cache")).load()
    assert isinstance(first.train_images, np.memmap) and isinstance(first.test_images, np.memmap)
    assert file_behind(first.train_images)[0].startswith(str(tmp_path / "cache"))
    again = ImageFolderSource(root=str(tmp_path / "images"), cache_dir=None).load()  # decoded in memory
    np.testing.assert_array_equal(first.train_images, again.train_images)
    np.testing.assert_array_equal(first.test_images, again.test_images)


@pytest.mark.slow
def test_a_run_beyond_the_budget_equals_the_run_in_memory(tmp_path):
    root = tmp_path / "images"
    write_image_folder(root, classes=5, train_per_class=40, test_per_class=6, size=12)
    common = ["trainer=cpu", "trainer.enable_progress_bar=false", "logger=none", "dataset=imagefolder",
              "model=small_cnn", f"data_dir={root}", f"cache_dir={tmp_path / 'cache'}", "mismatch=0.4",
              "al.init_percent=20", "al.query_size=20", "al.rounds=2", "trainer.max_epochs=3", "data.batch_size=16"]
    held, read = tmp_path / "held", tmp_path / "read"
    assert run_train(*common, f"hydra.run.dir={held}").returncode == 0
    result = run_train(*common, "data.memory_budget=1000", f"hydra.run.dir={read}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "exceed data.memory_budget (0.00 GB): read from its decode cache file a batch at a time" in result.stdout
    assert_same_records(held, read, rounds=2)
    assert read_metrics(read / "metrics.csv")[-1]["test_accuracy"] >= 0.0


def test_channel_statistics_read_from_the_file_equal_those_of_the_array(cached_array):
    from osal.data.datamodule import channel_stats
    images, mapped = cached_array
    for chunk in (7, 1000, 1 << 22):  # chunks that cut through images, and one holding them all
        assert channel_stats(ImageRows(mapped), chunk) == channel_stats(images, chunk)
