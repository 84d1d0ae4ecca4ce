import numpy as np
import pytest

from osal.data.open_set import check_openness, initial_labeled_set, num_known_classes, openness_subset
from osal.data.oracle import UNKNOWN, SimulatedOracle
from osal.errors import ConfigError


@pytest.mark.parametrize("mismatch, classes, k", [(0.2, 10, 2), (0.3, 10, 3), (0.4, 10, 4), (0.2, 100, 20),
                                                  (0.4, 200, 80), (0.25, 10, 3), (0.35, 10, 4)])
def test_known_classes_are_round_mismatch_times_classes(mismatch, classes, k):
    assert num_known_classes(mismatch, classes) == k


@pytest.mark.parametrize("mismatch", [0, 1, -0.2, 1.5, 0.05, 0.99])
def test_mismatch_outside_range_is_a_config_error(mismatch):
    with pytest.raises(ConfigError, match="mismatch"):
        num_known_classes(mismatch, 10)


def test_initial_set_is_known_only_the_right_size_and_seeded():
    labels = np.repeat(np.arange(10), 100)
    a = initial_labeled_set(labels, 3, 10, np.random.default_rng(1))
    b = initial_labeled_set(labels, 3, 10, np.random.default_rng(1))
    c = initial_labeled_set(labels, 3, 10, np.random.default_rng(2))
    assert len(a) == 30 and (labels[a] < 3).all() and len(np.unique(a)) == 30
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_stratified_initial_set_draws_each_known_class():
    labels = np.repeat(np.arange(5), [100, 50, 10, 300, 300])
    chosen = initial_labeled_set(labels, 3, 20, np.random.default_rng(0), stratified=True)
    assert np.bincount(labels[chosen], minlength=5).tolist() == [20, 10, 2, 0, 0]


def test_initial_set_of_nothing_is_a_config_error():
    with pytest.raises(ConfigError, match="init_percent"):
        initial_labeled_set(np.repeat(np.arange(10), 10), 2, 0.1, np.random.default_rng(0))


def test_simulated_oracle_answers_known_class_or_unknown():
    oracle = SimulatedOracle(np.array([0, 5, 1, 2, 9]), num_known=2)
    assert oracle.answer(np.array([0, 1, 2, 3, 4])).tolist() == [0, UNKNOWN, 1, UNKNOWN, UNKNOWN]


def test_an_initial_set_missing_a_known_class_is_a_config_error():
    labels = np.repeat(np.arange(4), [200, 200, 200, 2])  # class 3 is rare: 5% of 602 rarely hits it
    with pytest.raises(ConfigError, match="no example of known class 3"):
        initial_labeled_set(labels, 4, 5, np.random.default_rng(0))
    chosen = initial_labeled_set(labels, 4, 50, np.random.default_rng(0), stratified=True)
    assert set(labels[chosen].tolist()) == {0, 1, 2, 3}


@pytest.mark.parametrize("openness", [0.0, 0.3, 0.8, 0.95])
def test_openness_keeps_that_fraction_of_unknowns_in_the_pool_and_the_whole_initial_set(openness):
    labels = np.repeat(np.arange(10), 100)  # K = 2: 200 known, 800 unknown; the data's own openness is 0.8 here
    initial = np.array([0, 1, 150, 151])
    keep = openness_subset(labels, 2, initial, openness, np.random.default_rng(0))
    assert set(initial) <= set(keep.tolist()) and len(set(keep.tolist())) == len(keep)
    pool = np.setdiff1d(keep, initial)
    achieved = (labels[pool] >= 2).mean()
    assert achieved == pytest.approx(openness, abs=0.005)
    again = openness_subset(labels, 2, initial, openness, np.random.default_rng(0))
    assert np.array_equal(keep, again)  # seeded


@pytest.mark.parametrize("openness", [-0.1, 1.0, "half", True])
def test_openness_outside_0_1_is_a_config_error(openness):
    with pytest.raises(ConfigError, match="must lie in \\[0, 1\\)"):
        check_openness(openness)


def test_openness_reaches_the_pool_of_a_real_run(make_config):
    from osal.loop.data import open_set_data
    _, datamodule = open_set_data(make_config(["openness=0.0", "mismatch=0.4"]))
    answers = datamodule.pool.oracle.answer(datamodule.pool.unlabeled)
    assert len(answers) > 0 and (answers >= 0).all()  # closed-set: no unknown left to query
