import numpy as np
import pytest

from osal.data.pool import INVALID, LABELED, UNLABELED, PoolState


def test_new_pool_is_all_unlabeled():
    pool = PoolState(10)
    assert pool.counts() == {"n_labeled": 0, "n_invalid": 0, "n_unlabeled": 10}
    assert (pool.query_round == -1).all()


def test_mark_splits_known_and_unknown_and_counts_sum_to_size():
    pool = PoolState(10)
    pool.mark([1, 4, 7], [True, False, True], round_index=0)
    pool.mark([2, 3], [False, False], round_index=1)
    assert pool.labeled.tolist() == [1, 7]
    assert pool.invalid.tolist() == [2, 3, 4]
    assert pool.unlabeled.tolist() == [0, 5, 6, 8, 9]
    counts = pool.counts()
    assert sum(counts.values()) == len(pool) == 10
    assert pool.queried_in(1).tolist() == [2, 3]
    assert pool.query_round[4] == 0


@pytest.mark.parametrize("indices, answers", [([1, 1], [True, True]), ([10], [True]), ([-1], [False]),
                                              ([0, 1], [True])])
def test_bad_marks_raise_and_change_nothing(indices, answers):
    pool = PoolState(10)
    with pytest.raises(ValueError):
        pool.mark(indices, answers, round_index=1)
    assert pool.counts()["n_unlabeled"] == 10


def test_an_example_is_queried_at_most_once():
    pool = PoolState(5)
    pool.mark([0, 1], [True, False], 1)
    for again in ([0], [1], [2, 1]):
        with pytest.raises(ValueError, match="at most once"):
            pool.mark(again, [True] * len(again), 2)
    assert pool.state[2] == UNLABELED  # the failed batch [2, 1] left 2 untouched


def test_state_round_trips_through_state_dict_and_npz(tmp_path):
    pool = PoolState(8)
    pool.mark([0, 3, 5], [True, False, True], 0)
    pool.mark([6], [False], 2)
    restored = PoolState(8)
    restored.load_state_dict(pool.state_dict())
    assert np.array_equal(restored.state, pool.state)
    assert np.array_equal(restored.query_round, pool.query_round)
    pool.save(tmp_path / "pool.npz")
    loaded = PoolState.load(tmp_path / "pool.npz")
    assert np.array_equal(loaded.state, pool.state) and np.array_equal(loaded.query_round, pool.query_round)


def test_state_dict_is_a_copy():
    pool = PoolState(3)
    saved = pool.state_dict()
    pool.mark([0], [True], 0)
    assert saved["state"][0] == UNLABELED


def test_inconsistent_or_wrong_size_state_is_refused():
    pool = PoolState(4)
    with pytest.raises(ValueError, match="entries"):
        pool.load_state_dict(PoolState(5).state_dict())
    bad = PoolState(4).state_dict()
    bad["state"][0] = LABELED  # labeled but never queried
    with pytest.raises(ValueError, match="inconsistent"):
        pool.load_state_dict(bad)
    bad = PoolState(4).state_dict()
    bad["state"][0], bad["query_round"][0] = 7, 1
    with pytest.raises(ValueError, match="values"):
        pool.load_state_dict(bad)


def test_random_annotation_sequences_keep_invariants():
    rng = np.random.default_rng(0)
    pool = PoolState(200)
    seen = set()
    for r in range(10):
        chosen = rng.choice(pool.unlabeled, size=min(25, len(pool.unlabeled)), replace=False)
        pool.mark(chosen, rng.random(len(chosen)) < 0.4, r)
        assert not seen & set(chosen.tolist())
        seen |= set(chosen.tolist())
        assert sum(pool.counts().values()) == 200
        assert set(np.flatnonzero(pool.state != UNLABELED).tolist()) == seen
        assert ((pool.state == INVALID) | (pool.state == LABELED)).sum() == len(seen)
