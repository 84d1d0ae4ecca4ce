"""LfOSA's selection on synthetic detector outputs with a known right answer."""

import numpy as np
import pytest

from osal.errors import ConfigError
from osal.strategies.base import PoolOutputs
from osal.strategies.lfosa import LfOSA


def detector_logits(rng, predicted_class, mav, num_known):
    """K+1 logits whose argmax is `predicted_class` and whose max is `mav`."""
    logits = rng.uniform(-3.0, 0.0, size=(len(mav), num_known + 1))
    logits[np.arange(len(mav)), predicted_class] = mav
    return logits


def bimodal_pool(seed=0, num_known=3, n_known=40, n_unknown=60):
    """Per predicted class: known examples with high MAV, unknown ones with low MAV."""
    rng = np.random.default_rng(seed)
    classes, mavs, is_known = [], [], []
    for c in range(num_known):
        classes += [c] * (n_known + n_unknown)
        mavs += list(rng.normal(10.0 + c, 0.5, n_known)) + list(rng.normal(3.0 + c, 0.5, n_unknown))
        is_known += [True] * n_known + [False] * n_unknown
    logits = detector_logits(rng, np.array(classes), np.array(mavs), num_known)
    indices = rng.permutation(10_000)[:len(classes)]  # global indices, not positions
    return PoolOutputs(indices, num_known, logits=logits), np.array(is_known)


def test_bimodal_mavs_query_exactly_the_known_examples():
    outputs, is_known = bimodal_pool()
    chosen = LfOSA().select(outputs, int(is_known.sum()), np.random.default_rng(0))
    assert set(chosen.tolist()) == set(outputs.indices[is_known].tolist())


def test_known_probability_is_the_posterior_of_the_larger_mean_component():
    outputs, is_known = bimodal_pool()
    probability, predicted_known, _ = LfOSA().known_probability(outputs.logits, 3, np.random.default_rng(0))
    assert predicted_known.all()
    assert probability[is_known].min() > 0.9 and probability[~is_known].max() < 0.1


def test_predicted_unknowns_wait_until_predicted_knowns_are_exhausted():
    rng = np.random.default_rng(1)
    k = 2
    classes = np.array([0] * 10 + [1] * 10 + [k] * 5)
    mav = rng.normal(5.0, 1.0, len(classes))
    logits = detector_logits(rng, classes, mav, k)
    # predicted unknowns: known-class logits at increasing distance below the unknown logit
    logits[20:, :k] = (mav[20:] - np.array([4.0, 1.0, 3.0, 0.5, 2.0]))[:, None]
    outputs = PoolOutputs(np.arange(100, 125), k, logits=logits)
    strategy = LfOSA()
    first = strategy.select(outputs, 20, np.random.default_rng(0))
    assert set(first.tolist()) == set(range(100, 120))
    everything = strategy.select(outputs, 25, np.random.default_rng(0))
    # after all predicted knowns, the predicted unknowns by how known they look (smallest gap first)
    assert everything[20:].tolist() == [123, 121, 124, 122, 120]


def test_a_class_with_one_example_gets_the_undecided_probability_and_is_not_dropped():
    outputs, is_known = bimodal_pool(num_known=3)
    rng = np.random.default_rng(5)
    lonely = detector_logits(rng, np.array([3]), np.array([50.0]), 4)  # the only example predicted as class 3
    logits = np.vstack([np.hstack([outputs.logits[:, :3], np.full((len(outputs), 1), -9.0),
                                   outputs.logits[:, 3:]]), lonely])
    pool = PoolOutputs(np.append(outputs.indices, 99_999), 4, logits=logits)
    strategy = LfOSA()
    probability, _, _ = strategy.known_probability(pool.logits, 4, np.random.default_rng(0))
    assert probability[-1] == pytest.approx(0.5)
    n_known = int(is_known.sum())
    ranked = strategy.select(pool, len(pool), np.random.default_rng(0))
    position = ranked.tolist().index(99_999)
    assert position == n_known  # after every confident known, before every confident unknown


def test_same_seed_same_query_and_budget_beyond_pool_takes_all():
    outputs, _ = bimodal_pool(seed=3)
    a = LfOSA().select(outputs, 50, np.random.default_rng(7))
    b = LfOSA().select(outputs, 50, np.random.default_rng(7))
    assert np.array_equal(a, b)
    everything = LfOSA().select(outputs, len(outputs), np.random.default_rng(7))
    assert sorted(everything.tolist()) == sorted(outputs.indices.tolist())


def test_classifier_logits_without_an_unknown_column_work():
    outputs, is_known = bimodal_pool()
    k_only = PoolOutputs(outputs.indices, 3, logits=outputs.logits[:, :3])
    chosen = LfOSA(query_model="classifier").select(k_only, int(is_known.sum()), np.random.default_rng(0))
    assert set(chosen.tolist()) == set(outputs.indices[is_known].tolist())


@pytest.mark.parametrize("kwargs", [{"n_components": 1}, {"query_model": "oracle"}, {"tie_break": "first"}])
def test_bad_parameters_are_config_errors(kwargs):
    with pytest.raises(ConfigError):
        LfOSA(**kwargs)


def test_saturated_probabilities_are_ordered_by_mav_standing():
    # one class: a tight unknown cluster and a spread of knowns whose posteriors all saturate at 1.0
    rng = np.random.default_rng(2)
    mav = np.concatenate([rng.normal(0.0, 0.3, 200), np.linspace(20.0, 40.0, 50)])
    logits = detector_logits(rng, np.zeros(250, dtype=int), mav, 2)
    outputs = PoolOutputs(np.arange(250), 2, logits=logits)
    probability, _, _ = LfOSA().known_probability(logits, 2, np.random.default_rng(0))
    assert (probability[200:] == 1.0).all()  # exactly saturated: the plain sort cannot order them
    top = LfOSA(tie_break="mav").select(outputs, 10, np.random.default_rng(0))
    assert sorted(top.tolist()) == list(range(240, 250))  # the ten largest MAVs
    plain = LfOSA().select(outputs, 10, np.random.default_rng(0))  # the paper's plain sort is the default
    assert set(plain.tolist()) <= set(range(200, 250)) and sorted(plain.tolist()) != list(range(240, 250))
