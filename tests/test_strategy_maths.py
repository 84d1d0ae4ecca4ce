"""Known answers for OpenMax, Coreset and LfOSA, computed here without the project's code.

The contract tests (strategy_contract.py) and the qualitative tests in test_strategies.py / test_lfosa.py
pass for many wrong formulas. Each test below builds synthetic network outputs, computes what the paper's
maths gives by hand (numpy, scipy's Weibull, sklearn's GaussianMixture) and checks the strategy's
scores and chosen global indices against it. Each docstring names the wrong variant it would catch.
"""

import numpy as np
from scipy.stats import weibull_min
from sklearn.mixture import GaussianMixture

from osal.strategies.base import PoolOutputs
from osal.strategies.coreset import CoresetStrategy
from osal.strategies.lfosa import LfOSA
from osal.strategies.openmax import OpenMaxStrategy


def descending_order_without_near_ties(values, count, gap=1e-8):
    """Positions of the `count` largest `values`, largest first.

    The strategy ranks by its own scores, which the tests check against `values` to about 1e-9: the known
    ranking holds only if no two of the first count + 1 values lie closer than that.
    """
    order = np.argsort(-values, kind="stable")
    ranked = values[order[:count + 1]] if count < len(values) else values[order]
    assert np.min(-np.diff(ranked)) > gap, "badly posed known answer: near tie among the top of the ranking"
    return order[:count]


# ----------------------------------------------------------------------------------------------------------
# OpenMax
# ----------------------------------------------------------------------------------------------------------

def openmax_reference(pool_logits, labeled_logits, labeled_targets, tail_size, alpha_rank):
    """1 - P(unknown) of every pool row, from Bendale & Boult's recipe written out plainly.

    Per class c: MAV = mean of the labeled logits of class c that the network classifies correctly;
    Weibull (location 0, scipy's weibull_min.fit as the strategy documents) on the `tail_size` largest
    distances of those examples to their MAV. Per pool row: its top `alpha_rank` classes, j = 0 first,
    get weight (alpha - j) / alpha and their logit is multiplied by 1 - weight * CDF_class(distance of the
    row to that class's own MAV); what is removed is the unknown class's logit; softmax over K + 1.
    """
    k = labeled_logits.shape[1]
    mavs, shapes, scales = [], [], []
    for c in range(k):
        members = [row for row, target in zip(labeled_logits, labeled_targets) if target == c and row.argmax() == c]
        members = np.array(members)
        mav = members.mean(axis=0)
        distances = np.sort([np.linalg.norm(row - mav) for row in members])
        shape, _, scale = weibull_min.fit(distances[-tail_size:], floc=0.0)
        mavs.append(mav)
        shapes.append(shape)
        scales.append(scale)

    alpha = min(alpha_rank, k)
    expected = []
    for row in pool_logits:
        recalibrated = row.copy()
        for j, c in enumerate(np.argsort(-row)[:alpha]):
            distance = np.linalg.norm(row - mavs[c])
            cdf = 1.0 - np.exp(-((distance / scales[c]) ** shapes[c]))
            recalibrated[c] = row[c] * (1.0 - (alpha - j) / alpha * cdf)
        unknown = np.sum(row - recalibrated)
        extended = np.append(recalibrated, unknown)
        exponentials = np.exp(extended - extended.max())
        expected.append(1.0 - exponentials[-1] / exponentials.sum())
    return np.array(expected)


def openmax_case():
    """Three classes with 12 correctly classified labeled examples each (more than the tail of 5), and
    misclassified labeled examples of classes 0 and 2 that a correct MAV must leave out; a pool near the
    class clusters, with scattered (unsorted) global indices."""
    rng = np.random.default_rng(3)
    k = 3
    eye = np.eye(k)
    correct_targets = np.repeat(np.arange(k), 12)
    correct = 5.0 * eye[correct_targets] + rng.normal(0.0, 0.8, (len(correct_targets), k))
    # target 0 but the network says 1; target 2 but the network says 0
    wrong = np.vstack([6.0 * eye[1] + rng.normal(0.0, 0.3, (3, k)), 6.0 * eye[0] + rng.normal(0.0, 0.3, (2, k))])
    wrong_targets = np.array([0, 0, 0, 2, 2])
    labeled_logits = np.vstack([correct, wrong])
    labeled_targets = np.concatenate([correct_targets, wrong_targets])
    pool_targets = rng.integers(0, k, 30)
    pool_logits = 5.0 * eye[pool_targets] + rng.normal(0.0, 1.5, (30, k))
    indices = rng.choice(100_000, size=30, replace=False)
    outputs = PoolOutputs(indices, k, logits=pool_logits, labeled_logits=labeled_logits,
                          labeled_targets=labeled_targets)
    return outputs, correct_targets


def test_openmax_scores_and_ranking_match_the_hand_computed_recipe():
    """Pins OpenMax's whole recipe: scores (1 - P(unknown)) and the chosen global indices.

    Catches: rank weights all 1 instead of (alpha - j) / alpha; the Weibull fit to every distance instead
    of the `tail_size` largest; each ranked class's distance taken to the top-1 class's MAV; MAVs averaged
    over every labeled example of a class instead of the correctly classified ones.
    """
    outputs, correct_targets = openmax_case()
    assert (outputs.labeled_logits[:len(correct_targets)].argmax(axis=1) == correct_targets).all()
    expected = openmax_reference(outputs.logits, outputs.labeled_logits, outputs.labeled_targets,
                                 tail_size=5, alpha_rank=2)
    # the case is informative: P(unknown) spans from clearly known rows to clearly rejected ones
    assert (1.0 - expected).min() < 0.05 and (1.0 - expected).max() > 0.5

    selection = OpenMaxStrategy(tail_size=5, alpha_rank=2).query(outputs, 12, np.random.default_rng(0))
    np.testing.assert_allclose(selection.scores, expected, rtol=1e-9, atol=1e-12)
    assert selection.indices.tolist() == outputs.indices[descending_order_without_near_ties(expected, 12)].tolist()


def test_openmax_rank_weights_on_a_row_far_from_every_class():
    """Pins the rank weights (alpha - j) / alpha by plain arithmetic.

    Two labeled examples per class (6 e_c +- 0.5 e_c) give MAV 6 e_c and, with fewer than three examples,
    a step CDF: 1 beyond distance 0.5. A pool row far from every MAV has CDF 1 for each of its ranked
    classes, so with alpha = 3 its logits [3, 2, 1] are scaled by 1 - 1, 1 - 2/3, 1 - 1/3 and the unknown
    logit is 3 + 4/3 + 1/3 (small logits: with weights all 1 the scores differ visibly, 0.993 against 0.970).
    A row at a MAV keeps its logits and gets unknown logit 0.
    Catches: all rank weights 1 (the far row would keep no logit at all).
    """
    eye = np.eye(3)
    labeled_targets = np.repeat(np.arange(3), 2)
    labeled_logits = np.vstack([(6.0 + s) * eye[c] for c in range(3) for s in (0.5, -0.5)])
    outputs = PoolOutputs(np.array([41, 7]), 3, logits=np.array([[3.0, 2.0, 1.0], [0.0, 6.0, 0.0]]),
                          labeled_logits=labeled_logits, labeled_targets=labeled_targets)
    far = np.array([0.0, 2.0 / 3.0, 2.0 / 3.0, 3.0 + 4.0 / 3.0 + 1.0 / 3.0])
    at_mav = np.array([0.0, 6.0, 0.0, 0.0])
    expected = np.array([1.0 - np.exp(z[-1]) / np.exp(z).sum() for z in (far, at_mav)])

    selection = OpenMaxStrategy(tail_size=5, alpha_rank=3).query(outputs, 2, np.random.default_rng(0))
    np.testing.assert_allclose(selection.scores, expected, rtol=1e-12, atol=1e-15)
    assert selection.indices.tolist() == [7, 41]


# ----------------------------------------------------------------------------------------------------------
# Coreset
# ----------------------------------------------------------------------------------------------------------

def greedy_k_center_reference(pool, centres, budget):
    """Brute-force greedy k-center: (positions picked in order, distance of each pool point to the labeled set).

    Every pool-to-centre distance is np.linalg.norm of a difference; a picked point becomes a centre.
    """
    to_labeled = np.linalg.norm(pool[:, None, :] - centres[None, :, :], axis=2).min(axis=1)
    nearest = to_labeled.copy()
    picks = []
    for _ in range(budget):
        candidates = [i for i in range(len(pool)) if i not in picks]
        distances = np.array([nearest[i] for i in candidates])
        best, runner_up = np.sort(distances)[::-1][:2]
        assert best - runner_up > 1e-3, "badly posed known answer: near tie for the farthest point"
        pick = candidates[int(np.argmax(distances))]
        picks.append(pick)
        nearest = np.minimum(nearest, np.linalg.norm(pool - pool[pick], axis=1))
    return np.array(picks), to_labeled


def test_coreset_on_a_line_with_one_centre_per_chunk():
    """Pins Coreset on numbers checked by eye: labeled centres at 3 and 13, one per chunk (chunk_size=1).

    Pool at 4, 7.5, 16, 5, 10: distances to the nearer centre 1, 4.5, 3, 2, 3 (scores are their squares);
    greedy takes 7.5, then 16 (3 from 13; 10 is now 2.5 from 7.5), then 10 (2.5 away; 5 is 2 away).
    Catches: only the last chunk's centres counting (4 would be 9 from 13 and be picked first); the |c|^2
    term missing from |x|^2 - 2 x.c + |c|^2 in the distances to the labeled centres.
    """
    pool = np.array([[4.0], [7.5], [16.0], [5.0], [10.0]], dtype=np.float32)
    outputs = PoolOutputs(np.array([900, 901, 902, 903, 904]), 2, features=pool,
                          labeled_features=np.array([[3.0], [13.0]], dtype=np.float32))
    selection = CoresetStrategy(chunk_size=1).query(outputs, 3, np.random.default_rng(0))
    np.testing.assert_allclose(selection.scores, [1.0, 20.25, 9.0, 4.0, 9.0], rtol=1e-6)
    assert selection.indices.tolist() == [901, 902, 904]


def test_coreset_matches_brute_force_greedy_k_center_over_several_chunks():
    """Pins Coreset against brute-force greedy k-center: 9 labeled centres off the origin, chunk_size=2 (five
    chunks, the last holding one centre), 40 pool points at scattered global indices, 8 picks.

    Scores are the squared distances to the nearest labeled centre (what CoresetStrategy ranks by before the
    first pick); the picks are the farthest-first order.
    Catches: only the last chunk's centres counting in the minimum; the |c|^2 term missing from the squared
    distance (to the labeled centres, or to the picked point in the greedy update).
    """
    rng = np.random.default_rng(7)
    centres = rng.normal(0.0, 1.0, (9, 5)) + 4.0
    pool = rng.normal(0.0, 2.0, (40, 5)) + 4.0
    indices = rng.choice(100_000, size=40, replace=False)
    picks, to_labeled = greedy_k_center_reference(pool, centres, budget=8)

    outputs = PoolOutputs(indices, 2, features=pool.astype(np.float32), labeled_features=centres.astype(np.float32))
    selection = CoresetStrategy(chunk_size=2).query(outputs, 8, np.random.default_rng(0))
    np.testing.assert_allclose(selection.scores, to_labeled ** 2, rtol=1e-4, atol=1e-3)
    assert selection.indices.tolist() == indices[picks].tolist()


# ----------------------------------------------------------------------------------------------------------
# LfOSA
# ----------------------------------------------------------------------------------------------------------

def lfosa_reference(logits, num_known, seed, n_components=2, max_iter=10, tol=1e-2, reg_covar=5e-4):
    """Known probability of every pool row, as the paper describes it (Eq. 5-6).

    Predicted class = argmax of the K+1 logits, MAV = their max. One GaussianMixture (LfOSA's settings) per
    predicted known class, fitted to that class's MAVs; a row's known probability is the posterior of the
    component with the larger mean. The fit of class c is seeded with the c-th of num_known integers drawn
    from the generator passed to the strategy (np.random.default_rng(seed).integers(0, 2**31 - 1)), which is
    how LfOSA documents its seeding ("each fit is seeded from the generator passed to select").
    """
    predicted = logits.argmax(axis=1)
    mav = logits.max(axis=1)
    seeds = np.random.default_rng(seed).integers(0, 2 ** 31 - 1, size=num_known)
    probability = np.zeros(len(logits))
    for c in range(num_known):
        rows = predicted == c
        gmm = GaussianMixture(n_components=n_components, max_iter=max_iter, tol=tol, reg_covar=reg_covar,
                              random_state=int(seeds[c])).fit(mav[rows, None])
        probability[rows] = gmm.predict_proba(mav[rows, None])[:, np.argmax(gmm.means_[:, 0])]
    return probability


def overlapping_classes_pool():
    """K = 2 detector outputs (K + 1 columns), every row predicted known. Class 0: knowns with MAV ~ 8,
    unknowns ~ 4; class 1: knowns ~ 14, unknowns ~ 8. Class 0's knowns and class 1's unknowns share the
    MAV range, so one GMM over both classes cannot split them as two per-class GMMs do."""
    rng = np.random.default_rng(11)
    k = 2
    mav = np.concatenate([rng.normal(8.0, 1.2, 25), rng.normal(4.0, 1.2, 25),
                          rng.normal(14.0, 1.2, 25), rng.normal(8.0, 1.2, 25)])
    predicted = np.repeat([0, 1], 50)
    is_known = np.tile(np.repeat([True, False], 25), 2)
    logits = rng.uniform(-3.0, 0.0, (len(mav), k + 1))
    logits[np.arange(len(mav)), predicted] = mav
    indices = rng.choice(100_000, size=len(mav), replace=False)
    return PoolOutputs(indices, k, logits=logits), is_known


def test_lfosa_known_probability_is_the_per_class_gmm_posterior():
    """Pins LfOSA's known probability (scores and Selection.known_probability) and its ranking.

    Expected values come from sklearn GaussianMixture fitted per predicted class with LfOSA's settings
    (2 components, max_iter 10, tol 1e-2, reg_covar 5e-4, seeded as documented) and the posterior of the
    larger-mean component; the chosen global indices are those probabilities sorted, largest first.
    Catches: hard 0/1 component assignments instead of the posterior; one GMM shared by all predicted
    classes instead of one per class.
    """
    outputs, _ = overlapping_classes_pool()
    expected = lfosa_reference(outputs.logits, 2, seed=5)
    # the case is informative: posteriors strictly between 0 and 1, not saturated
    assert ((expected > 1e-6) & (expected < 1 - 1e-6)).sum() > 20

    selection = LfOSA().query(outputs, 30, np.random.default_rng(5))
    np.testing.assert_allclose(selection.scores, expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(selection.known_probability, expected, rtol=1e-9, atol=1e-12)
    assert selection.indices.tolist() == outputs.indices[descending_order_without_near_ties(expected, 30)].tolist()


def test_lfosa_separates_knowns_per_class_where_a_shared_mixture_cannot():
    """Pins the per-class fit by its effect: the 50 rows ranked first are exactly the 25 high-MAV rows of
    each class, although class 0's knowns (MAV ~ 8) look like class 1's unknowns (MAV ~ 8).

    The known answer is the construction itself (and the reference posteriors agree with it).
    Catches: one GMM shared by all predicted classes (it ranks class 1's unknowns with class 0's knowns).
    """
    outputs, is_known = overlapping_classes_pool()
    expected = lfosa_reference(outputs.logits, 2, seed=5)
    assert expected[is_known].min() > expected[~is_known].max()

    chosen = LfOSA().select(outputs, int(is_known.sum()), np.random.default_rng(5))
    assert set(chosen.tolist()) == set(outputs.indices[is_known].tolist())


def test_openmax_scores_the_pool_in_chunks_exactly_as_in_one_piece():
    """The pool is scored `chunk_size` rows at a time (O(chunk x K) memory at 10 million outputs): a chunk size
    that splits the pool unevenly, and one row per chunk, give bit-identical scores and picks."""
    rng = np.random.default_rng(5)
    k, labeled = 6, 60
    targets = np.repeat(np.arange(k), labeled // k)
    labeled_logits = rng.normal(0, 1, (labeled, k)) + 4 * np.eye(k)[targets]
    outputs = PoolOutputs(np.arange(1000, 1103), k, logits=rng.normal(0, 2, (103, k)),
                          labeled_logits=labeled_logits, labeled_targets=targets)
    whole = OpenMaxStrategy(tail_size=5, alpha_rank=3).query(outputs, 10, np.random.default_rng(0))
    for chunk in (10, 1):
        pieces = OpenMaxStrategy(tail_size=5, alpha_rank=3, chunk_size=chunk).query(outputs, 10,
                                                                                   np.random.default_rng(0))
        np.testing.assert_array_equal(pieces.scores, whole.scores)
        np.testing.assert_array_equal(pieces.indices, whole.indices)
