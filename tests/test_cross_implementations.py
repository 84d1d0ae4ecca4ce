"""osal's strategies against two public active-learning libraries, on the same synthetic outputs.

* BALD and uncertainty (entropy) sampling against baal 2.1.0 (`baal.active.heuristics.BALD`, `Entropy`);
* Core-set (greedy k-center) against scikit-activeml 1.0.1 (`skactiveml.pool.CoreSet`).

Conventions aligned (each test says which it relies on):

* baal's heuristics take arrays shaped [n, classes, ..., iterations]; osal's `mc_probabilities` are
  (T, n, C): baal is given `np.transpose(p, (1, 2, 0))`. Both use nats (natural logarithms) and 0 log 0 = 0.
* baal's `get_ranks` orders by descending score (BALD and Entropy are built with `reverse=True`), as osal's
  `query` does; the data have no exact ties, so the two orders are comparable position by position.
* osal's BALD clamps the mutual information at 0 (`clamp_min(0.0)`); baal does not, and returns values like
  -1e-15 where all dropout samples agree: scores are compared with an absolute tolerance of 1e-12.
* scikit-activeml's CoreSet utilities are Euclidean distances in float64; osal's Coreset `scores` are
  squared Euclidean distances computed in float32: osal's scores are compared after `np.sqrt`.
* scikit-activeml indexes into its X (or its `candidates`); osal returns global pool indices: the library's
  positions are mapped through `outputs.indices`.
"""

import warnings

import numpy as np
import pytest
import torch
from scipy.special import softmax
from skactiveml.pool import CoreSet
from torch.utils.data import DataLoader, TensorDataset

from osal.build import build
from osal.engine.inference import run_network
from osal.strategies.bald import BALDStrategy
from osal.strategies.base import PoolOutputs
from osal.strategies.coreset import CoresetStrategy
from osal.strategies.uncertainty import UncertaintyStrategy

from conftest import compose_config

with warnings.catch_warnings():
    # baal configures structlog at import time through structlog.threadlocal, which structlog 22 deprecates
    warnings.simplefilter("ignore", DeprecationWarning)
    from baal.active.heuristics import BALD, Entropy


def scattered_indices(rng, n):
    """Global indices as a pool has them: sorted, distinct, not 0..n-1."""
    return np.sort(rng.choice(100_000, size=n, replace=False))


def to_baal(mc_probabilities):
    """osal's (T, n, C) dropout probabilities -> baal's [n, C, T]."""
    return np.transpose(np.asarray(mc_probabilities), (1, 2, 0))


def assert_no_ties(scores):
    """The orders of two implementations are only comparable position by position without exact ties."""
    assert len(np.unique(scores)) == len(scores)


# -- BALD against baal ----------------------------------------------------------------------------

@pytest.mark.parametrize("concentration", [0.2, 1.0, 5.0])
@pytest.mark.parametrize("samples,n,classes", [(2, 50, 2), (8, 200, 5), (20, 120, 10)])
def test_bald_scores_and_order_match_baal(concentration, samples, n, classes):
    # float64 Dirichlet samples, (T, n, C) for osal, transposed to [n, C, T] for baal
    rng = np.random.default_rng(samples * 1000 + classes)
    p = rng.dirichlet(np.full(classes, concentration), size=(samples, n))
    outputs = PoolOutputs(scattered_indices(rng, n), classes, mc_probabilities=p)
    strategy = BALDStrategy(mc_samples=samples)

    ours = strategy.query(outputs, n, np.random.default_rng(0))
    ranks, theirs = BALD().get_ranks(to_baal(p))

    np.testing.assert_allclose(ours.scores, theirs, rtol=1e-10, atol=1e-12)
    assert_no_ties(theirs)
    assert ours.indices.tolist() == outputs.indices[ranks].tolist()  # the whole pool in the same order
    budget = n // 4
    chosen = strategy.select(outputs, budget, np.random.default_rng(1))
    assert chosen.tolist() == outputs.indices[ranks[:budget]].tolist()


def test_bald_edge_cases_match_baal():
    # one-hot samples that contradict each other (log 2), identical unsure samples (0), identical confident
    # samples (0), probabilities with exact zeros; baal's xlogy and osal's torch.special.entr both take 0 log 0 = 0
    t = 6
    disagree = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]] * (t // 2))
    shared = np.full((t, 3), 1 / 3)
    agree = np.tile([0.9, 0.1, 0.0], (t, 1))
    one_hot = np.tile([0.0, 0.0, 1.0], (t, 1))
    partly_zero = np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5]] * (t // 2))
    p = np.stack([disagree, shared, agree, one_hot, partly_zero], axis=1)  # (T, n=5, C=3)
    outputs = PoolOutputs(np.array([3, 14, 15, 92, 65]), 3, mc_probabilities=p)

    ours = BALDStrategy(mc_samples=t).scores(outputs, np.random.default_rng(0))
    theirs = BALD().get_uncertainties(to_baal(p))

    # baal may return -1e-16-sized values where osal clamps to 0: hence the absolute tolerance
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours, [np.log(2), 0, 0, 0, 0.5 * np.log(2)], atol=1e-12)
    assert (ours >= 0).all()


def test_bald_scores_reduced_during_inference_match_baal_on_the_same_dropout_samples():
    # the production path: BALD's config (dropout on the penultimate features), osal's inference reduces each
    # batch's float32 (T, B, C) softmax outputs to mc_scores; a second pass with the same torch seed keeps the
    # whole (T, n, C) probabilities, which baal reduces (cast to float64, as osal's reduction is, for its log)
    cfg = compose_config(["strategy=bald"])
    assert cfg.model.dropout > 0
    torch.manual_seed(0)
    network = build(cfg.model)(num_outputs=4)
    with torch.no_grad():  # an untrained head gives near-uniform outputs (BALD ~1e-4): spread them out
        network.head.weight.mul_(30.0)
    n, samples = 70, 6
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(n, cfg.dataset.channels, 8, 8, generator=generator)
    indices = torch.as_tensor(scattered_indices(np.random.default_rng(0), n))
    loader = DataLoader(TensorDataset(images, torch.zeros(n, dtype=torch.long), indices), batch_size=32)
    strategy = BALDStrategy(mc_samples=samples)

    torch.manual_seed(1)
    reduced = run_network(network, loader, "cpu", mc_samples=samples, mc_reduce=strategy.reduce_mc_samples)
    torch.manual_seed(1)  # the same dropout masks
    whole = run_network(network, loader, "cpu", mc_samples=samples)
    p = whole["mc_probabilities"]
    assert p.shape == (samples, n, 4) and p.dtype == np.float32

    outputs = PoolOutputs(reduced["indices"], 4, mc_scores=reduced["mc_scores"])
    ours = strategy.query(outputs, n, np.random.default_rng(0))
    ranks, theirs = BALD().get_ranks(to_baal(p).astype(np.float64))
    np.testing.assert_allclose(ours.scores, theirs, rtol=1e-10, atol=1e-12)
    assert_no_ties(theirs)
    assert ours.indices.tolist() == reduced["indices"][ranks].tolist()
    # baal fed the float32 probabilities as they are computes in float32: the same scores to float32 precision
    np.testing.assert_allclose(ours.scores, BALD().get_uncertainties(to_baal(p)), rtol=1e-5, atol=1e-6)


# -- uncertainty (entropy) sampling against baal --------------------------------------------------

@pytest.mark.parametrize("scale", [0.5, 2.0, 30.0])  # 30: confident rows whose smallest probabilities underflow
@pytest.mark.parametrize("classes", [2, 6])
def test_uncertainty_scores_and_order_match_baal_entropy(scale, classes):
    # osal reads logits and takes softmax over the K columns; baal's Entropy takes [n, C] and, given values
    # outside [0, 1], applies scipy's softmax over axis 1 itself: it is fed the same logits, then the
    # probabilities (scipy's softmax) to check that its own softmax is not what makes them agree
    rng = np.random.default_rng(classes)
    n = 150
    logits = rng.normal(0, scale, (n, classes))
    outputs = PoolOutputs(scattered_indices(rng, n), classes, logits=logits)

    ours = UncertaintyStrategy().query(outputs, n, np.random.default_rng(0))
    ranks, from_logits = Entropy().get_ranks(logits)
    from_probabilities = Entropy().get_uncertainties(softmax(logits, axis=1))

    np.testing.assert_allclose(ours.scores, from_logits, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.scores, from_probabilities, rtol=1e-10, atol=1e-12)
    assert_no_ties(from_logits)
    assert ours.indices.tolist() == outputs.indices[ranks].tolist()


def test_uncertainty_of_one_hot_and_uniform_predictions_matches_baal_entropy():
    # probabilities 0 and 1 exactly: 0 log 0 = 0 on both sides (osal's entropy; scipy.stats.entropy in baal)
    logits = np.array([[0.0, 0.0, 0.0], [800.0, 0.0, 0.0], [1.0, 0.0, -1.0], [0.0, 0.0, 2.0]])
    ours = UncertaintyStrategy().scores(PoolOutputs(np.arange(4), 3, logits=logits), np.random.default_rng(0))
    theirs = Entropy().get_uncertainties(logits)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)
    assert ours[0] == pytest.approx(np.log(3)) and ours[1] == 0.0


# -- Core-set against scikit-activeml ------------------------------------------------------------

def coreset_data(seed, n=150, labeled=30, dim=8):
    """Pool and labeled features (float32, as inference gives them), and labels for scikit-activeml's y."""
    rng = np.random.default_rng(seed)
    features = rng.normal(0, 1, (n, dim)).astype(np.float32)
    labeled_features = rng.normal(0, 1, (labeled, dim)).astype(np.float32)
    labels = rng.integers(0, 3, labeled).astype(np.float64)
    outputs = PoolOutputs(scattered_indices(rng, n), 3, features=features, labeled_features=labeled_features)
    return outputs, labels


def assert_greedy_steps_without_near_ties(utilities, relative_margin=1e-5):
    """At every greedy step the farthest candidate beats the runner-up by far more than float32 rounding
    (~1e-7 relative): osal, in float32, and scikit-activeml, in float64, must then take the same one."""
    for step in utilities:
        ordered = np.sort(step[~np.isnan(step)])[::-1]
        assert ordered[0] - ordered[1] > relative_margin * ordered[0]


@pytest.mark.parametrize("seed,budget", [(0, 25), (2, 60), (3, 1)])
@pytest.mark.parametrize("chunk_size", [7, 256])  # several chunks of labeled centres, or one
def test_coreset_picks_and_distances_match_scikit_activeml(seed, budget, chunk_size):
    # scikit-activeml's X = pool features then labeled features (cast to float64: the same points), y = NaN
    # (unlabeled) for the pool rows and the labels for the labeled rows; its candidates are then the pool rows
    outputs, labels = coreset_data(seed)
    n = len(outputs)
    X = np.vstack([outputs.features, outputs.labeled_features]).astype(np.float64)
    y = np.concatenate([np.full(n, np.nan), labels])

    ours = CoresetStrategy(chunk_size=chunk_size).query(outputs, budget, np.random.default_rng(0))
    picks, utilities = CoreSet(random_state=0).query(X, y, batch_size=budget, return_utilities=True)

    assert_greedy_steps_without_near_ties(utilities)
    assert (picks < n).all()
    assert ours.indices.tolist() == outputs.indices[picks].tolist()  # the same points in the same order
    # before the first pick: distance to the nearest labeled example (osal's is squared)
    np.testing.assert_allclose(np.sqrt(ours.scores), utilities[0][:n], rtol=1e-5, atol=1e-5)
    assert np.isnan(utilities[0][n:]).all()


def test_coreset_matches_scikit_activeml_given_the_candidates_as_features():
    # scikit-activeml's other calling convention: X, y = the labeled set only, candidates = the pool's features
    outputs, labels = coreset_data(4)
    budget = 30
    ours = CoresetStrategy(chunk_size=5).query(outputs, budget, np.random.default_rng(0))
    picks, utilities = CoreSet(random_state=0).query(outputs.labeled_features.astype(np.float64), labels,
                                                     candidates=outputs.features.astype(np.float64),
                                                     batch_size=budget, return_utilities=True)
    assert_greedy_steps_without_near_ties(utilities)
    assert ours.indices.tolist() == outputs.indices[picks].tolist()
    np.testing.assert_allclose(np.sqrt(ours.scores), utilities[0], rtol=1e-5, atol=1e-5)


def test_coreset_without_labeled_examples_continues_like_scikit_activeml_from_the_same_first_pick():
    # with no labeled set both libraries draw the first centre at random (from different generators): given
    # osal's first pick as scikit-activeml's only labeled point, the remaining greedy picks must be the same
    outputs, _ = coreset_data(5, n=120)
    outputs.labeled_features = np.zeros((0, outputs.features.shape[1]), dtype=np.float32)
    budget = 20
    ours = CoresetStrategy().query(outputs, budget, np.random.default_rng(7))
    np.testing.assert_array_equal(ours.scores, 0.0)  # no labeled set: no distances yet

    first = int(np.flatnonzero(outputs.indices == ours.indices[0])[0])
    y = np.full(len(outputs), np.nan)
    y[first] = 0.0
    picks, utilities = CoreSet(random_state=0).query(outputs.features.astype(np.float64), y,
                                                     batch_size=budget - 1, return_utilities=True)
    assert_greedy_steps_without_near_ties(utilities)
    assert ours.indices[1:].tolist() == outputs.indices[picks].tolist()
