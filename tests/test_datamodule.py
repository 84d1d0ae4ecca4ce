"""The open-set datamodule on the embedded digits data: pools, oracle, loaders."""

import numpy as np
import pytest
import torch

from conftest import open_set


@pytest.fixture
def split():
    return open_set(["mismatch=0.4"])[0]


@pytest.fixture
def datamodule():
    return open_set(["mismatch=0.4"])[1]


def test_initial_state():
    split, dm = open_set(["mismatch=0.4"])
    assert dm.num_known == split.num_known == 4 and dm.pool is split.pool
    counts = dm.pool.counts()
    assert counts["n_invalid"] == 0 and sum(counts.values()) == 1437
    assert counts["n_labeled"] == round(0.10 * split.n_known_total)
    assert split.n_known_initial_pool == split.n_known_total - counts["n_labeled"]
    assert (dm.pool.query_round[dm.pool.labeled] == 0).all()


def test_same_seed_same_initial_set_other_seed_other_set():
    sets = []
    for seed in (1, 1, 2):
        dm = open_set([f"seed={seed}"])[1]
        sets.append(dm.pool.labeled)
    assert np.array_equal(sets[0], sets[1]) and not np.array_equal(sets[0], sets[2])


def test_annotate_sends_known_to_labeled_and_unknown_to_invalid(datamodule):
    dm = datamodule
    pool = dm.pool.unlabeled
    answers = dm.pool.oracle.answer(pool)
    known, unknown = pool[answers >= 0][:3], pool[answers < 0][:5]
    result = dm.pool.annotate(np.concatenate([known, unknown]), round_index=1)
    assert result == {"queried": 8, "queried_known": 3}
    assert set(known) <= set(dm.pool.labeled) and set(unknown) == set(dm.pool.invalid)
    with pytest.raises(ValueError, match="at most once"):
        dm.pool.annotate(known[:1], round_index=2)


def test_detector_loader_adds_invalid_as_class_k(datamodule):
    dm = datamodule
    pool = dm.pool.unlabeled
    unknown = pool[dm.pool.oracle.answer(pool) < 0][:6]
    dm.pool.annotate(unknown, 1)
    dm.begin_fit(0, with_invalid=True)
    seen = {}
    for _, y, index in dm.training_batches():
        seen.update(zip(index.tolist(), y.tolist()))
    assert all(seen[i] == dm.num_known for i in unknown)
    assert len(seen) >= len(dm.pool.labeled) + 6 - 1  # a trailing batch of one may be dropped
    dm.begin_fit(0, with_invalid=False)
    labels = {i: y for _, ys, idx in dm.training_batches() for i, y in zip(idx.tolist(), ys.tolist())}
    assert not set(labels) & set(unknown.tolist()) and max(labels.values()) < dm.num_known


@pytest.mark.parametrize("pipeline", ["batched", "per_sample"])
def test_pool_is_scored_with_the_test_transform(pipeline):
    dm = open_set(["dataset=digits", "dataset.augment.crop_padding=2", "dataset.augment.hflip=true",
                   f"data.pipeline={pipeline}"])[1]
    first = torch.cat([x for x, _, _ in dm.pool_dataloader()])
    second = torch.cat([x for x, _, _ in dm.pool_dataloader()])
    assert torch.equal(first, second)  # no random augmentation on the pool
    indices = torch.cat([i for _, _, i in dm.pool_dataloader()]).numpy()
    assert np.array_equal(indices, dm.pool.unlabeled)
    x_train = torch.cat([x for x, _, _ in dm.training_batches()])
    x_train_again = torch.cat([x for x, _, _ in dm.training_batches()])
    assert not torch.equal(x_train, x_train_again)  # while training is augmented


def test_state_round_trips(datamodule):
    dm = datamodule
    dm.pool.annotate(dm.pool.unlabeled[:10], 1)
    saved = dm.pool.state_dict()
    fresh = open_set(["mismatch=0.4"])[1]
    fresh.pool.load_state_dict(saved)
    assert np.array_equal(fresh.pool.pool_state.state, dm.pool.pool_state.state)
    assert np.array_equal(fresh.pool.answers, dm.pool.answers)
    assert fresh.pool.counts() == dm.pool.counts()
