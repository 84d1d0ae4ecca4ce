"""EOAL: the shared contract, FINCH in bounded memory, and known answers of its scores, picks and losses."""

import warnings

import numpy as np
import pytest
import torch
from scipy.special import softmax

from osal import clustering
from osal.strategies.base import PoolOutputs
from osal.strategies.eoal import EOALStrategy

from strategy_contract import StrategyContract


class TestEOALContract(StrategyContract):
    logit_columns = 3 * StrategyContract.num_known + 1  # K+1 detector logits, then 2K one-vs-all logits

    def make_strategy(self):
        return EOALStrategy()


def test_first_neighbours_and_partitions_equal_finch_with_its_dense_matrix():
    from finch import FINCH
    rng = np.random.default_rng(0)
    x = (rng.normal(0, 1, (3000, 16)) + rng.integers(0, 5, 3000)[:, None] * 2).astype(np.float32)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    np.testing.assert_array_equal(clustering.first_neighbours(x, chunk=700), similarity.argmax(axis=1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected, counts, required = FINCH(x, req_clust=4, distance="cosine", verbose=False)
    labels, ours, ours_required = clustering.partitions(x, required=4, finch="0.2.3")  # the installed release
    np.testing.assert_array_equal(labels, expected)
    assert ours == list(counts) and np.array_equal(ours_required, required)


def test_the_hierarchy_without_a_required_count_equals_finch_level_by_level():
    """EOAL's round-robin reads FINCH's whole hierarchy of the candidates. The package's levels above the first
    take a dense matrix of the cluster means (180 GB at 150,000 candidates: it crashed the selection benchmark);
    osal.clustering.hierarchy finds every level's first neighbours in chunks and must give FINCH's partitions."""
    from finch import FINCH
    rng = np.random.default_rng(1)
    for n, dim, groups in ((3000, 16, 12), (8000, 32, 40)):
        centres = rng.normal(0, 3, (groups, dim))
        x = (centres[rng.integers(0, groups, n)] + rng.normal(0, 1, (n, dim))).astype(np.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # the first level from the same chunked first neighbours, as osal gave FINCH before
            expected, counts, _ = FINCH(x, initial_rank=clustering.first_neighbours(x), distance="cosine",
                                        verbose=False, ann_threshold=10 ** 9)
        labels, ours, required = clustering.partitions(x, finch="0.2.3")
        assert required is None and ours == list(counts) and len(ours) >= 3
        np.testing.assert_array_equal(labels, np.asarray(expected).reshape(n, -1))


def one_vs_all_logits(k, rows):
    """Logits whose one-vs-all probabilities are `rows` (p of "class k" for each head)."""
    p = np.asarray(rows, dtype=np.float64)
    positive = np.log(p / (1 - p))  # softmax([0, z]) = sigmoid(z)
    return np.concatenate([np.zeros_like(positive), positive], axis=1)


def test_closed_set_entropy_is_the_mean_binary_entropy_of_the_heads_in_bits():
    k = 2
    heads = [[0.5, 0.5], [0.9, 0.1], [0.99, 0.2]]
    detector = np.array([[2.0, 0.0, 0.0]] * 3)
    outputs = PoolOutputs(np.arange(3), k, logits=np.concatenate([detector, one_vs_all_logits(k, heads)], axis=1),
                          features=np.zeros((3, 4)))
    binary = lambda p: -(p * np.log2(p) + (1 - p) * np.log2(1 - p))  # noqa: E731
    expected = [np.mean([binary(p) for p in row]) for row in heads]
    np.testing.assert_allclose(EOALStrategy().entropies(outputs), expected, rtol=1e-6)


def test_the_distance_entropy_to_the_unknown_clusters_is_subtracted():
    k = 2
    rng = np.random.default_rng(1)
    centres = np.array([[10.0, 0.0, 0.0], [0.0, 10.0, 0.0]])
    invalid = np.concatenate([c + rng.normal(0, 0.1, (20, 3)) for c in centres])
    pool = np.array([[5.0, 5.0, 0.0], [10.0, 0.0, 0.0], [0.0, 0.0, 10.0]])
    logits = np.concatenate([np.tile([2.0, 0.0, 0.0], (3, 1)), one_vs_all_logits(k, [[0.9, 0.1]] * 3)], axis=1)
    outputs = PoolOutputs(np.arange(3), k, logits=logits, features=pool, invalid_features=invalid)
    found = clustering.centres(invalid, clustering.clusters(invalid, k))
    distances = np.linalg.norm(pool[:, None, :] - found[None, :, :], axis=2)
    closeness = softmax(-distances, axis=1)
    distance_entropy = -(closeness * np.log(closeness)).sum(axis=1) / np.log(2)
    closed = -(0.9 * np.log2(0.9) + 0.1 * np.log2(0.1))
    np.testing.assert_allclose(EOALStrategy().entropies(outputs), closed - distance_entropy, rtol=1e-6)
    # halfway between the two unknown clusters: the highest distance entropy, so the lowest score
    assert EOALStrategy().entropies(outputs).argmin() == 0


def test_picks_go_round_the_clusters_lowest_score_first_and_only_predicted_knowns():
    k = 2
    rng = np.random.default_rng(2)
    groups = np.array([[20.0, 0, 0], [0, 20.0, 0], [0, 0, 20.0]])
    features = np.concatenate([g + rng.normal(0, 0.3, (10, 3)) for g in groups])
    score_heads = rng.uniform(0.55, 0.99, (30, k))
    detector = np.tile([3.0, 0.0, 0.0], (30, 1))
    detector[[0, 10, 20]] = [0.0, 0.0, 3.0]  # predicted unknown: never a candidate while candidates remain
    outputs = PoolOutputs(np.arange(30) + 100, k, logits=np.concatenate([detector, one_vs_all_logits(k, score_heads)],
                                                                          axis=1), features=features)
    strategy = EOALStrategy()
    score = strategy.entropies(outputs)
    chosen = strategy.select(outputs, 6, np.random.default_rng(0)) - 100
    assert not set(chosen.tolist()) & {0, 10, 20}
    group = chosen // 10
    assert sorted(np.bincount(group, minlength=3).tolist()) == [2, 2, 2]  # two from each of the three groups
    for g in range(3):  # each group gives its lowest scores
        members = [i for i in range(10 * g, 10 * g + 10) if i not in (0, 10, 20)]
        lowest = sorted(members, key=lambda i: score[i])[:2]
        assert sorted(chosen[group == g].tolist()) == sorted(lowest)
    # without diversity: the six lowest scores among the candidates
    candidates = [i for i in range(30) if i not in (0, 10, 20)]
    plain = EOALStrategy(diversity=False).select(outputs, 6, np.random.default_rng(0)) - 100
    assert plain.tolist() == sorted(candidates, key=lambda i: score[i])[:6]
    # more than the candidates: the predicted unknowns fill the batch
    full = strategy.select(outputs, 30, np.random.default_rng(0)) - 100
    assert sorted(full.tolist()) == list(range(30))


def module(k=2):
    from osal.models.modules import OneVsAllDetectorModule
    from osal.models.network import build_network
    from osal.models.small_cnn import SmallCNNEncoder
    return OneVsAllDetectorModule(k, lambda num_outputs: build_network(lambda: SmallCNNEncoder(1, 4), num_outputs),
                                  lambda params: torch.optim.SGD(params, lr=0.1))


def test_the_one_vs_all_loss_before_and_after_unknowns_were_queried():
    k = 2
    m = module(k)
    z = torch.tensor([[0.3, -0.2, 1.0, 0.5], [0.1, 0.4, -0.3, 0.8], [0.0, 0.2, 0.6, -0.1]])  # 2 "not", 2 "is"
    y = torch.tensor([0, 1, 2])
    p = torch.softmax(z.view(3, 2, k), dim=1)
    pos, neg = -torch.log(p[:, 1] + 1e-8), -torch.log(p[:, 0] + 1e-8)
    # before: OVANet's loss on the known rows
    m.with_unknowns = False
    expected = 0.5 * ((pos[0, 0] + pos[1, 1]) / 2 + (neg[0, 1] + neg[1, 0]) / 2)
    torch.testing.assert_close(m.one_vs_all_loss(z[:2], y[:2]), expected)
    # after: the known part weighted 1 - alpha, the unknown row pushed toward 1/2 with alpha / K
    m.with_unknowns = True
    alpha = 0.8
    expected = 0.5 * (1 - alpha) * ((pos[0, 0] + pos[1, 1]) / 2 + (neg[0, 1] + neg[1, 0]) / 2) \
        + 0.5 * (alpha / k) * (pos[2].sum() + neg[2].sum())
    torch.testing.assert_close(m.one_vs_all_loss(z, y), expected)


def test_the_cluster_loss_pulls_each_unknown_to_its_centre():
    m = module(2)
    m._centres = torch.tensor([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]])
    m._cluster_of = torch.tensor([-1, -1, 0, 2])
    features = torch.tensor([[9.0, 9.0], [1.0, 1.0], [0.0, 1.0], [6.0, 7.0]])
    y = torch.tensor([0, 1, 2, 2])
    index = torch.tensor([0, 1, 2, 3])
    d = torch.cdist(features[2:], m._centres)
    own = torch.tensor([0, 2])
    true = d[torch.arange(2), own]
    others = [[1, 2], [0, 1]]
    inter = torch.stack([torch.log1p(sum(torch.exp(true[i] - d[i, j]) for j in others[i])) for i in range(2)])
    torch.testing.assert_close(m.cluster_loss(features, y, index), 0.1 * true.mean() + inter.mean())
    assert m.cluster_loss(features[:2], y[:2], index[:2]).item() == 0.0  # no unknown in the batch


def test_first_neighbours_hold_a_bounded_number_of_similarities_and_still_find_every_neighbour(monkeypatch):
    """At a million candidates 2,048 rows of similarities would be 8 GB: the chunk shrinks to keep
    SIMILARITIES floats, here made small enough that 3,000 points go 100 rows at a time."""
    rng = np.random.default_rng(2)
    x = rng.normal(0, 1, (3000, 8)).astype(np.float32)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    monkeypatch.setattr(clustering, "SIMILARITIES", 3000 * 100)
    np.testing.assert_array_equal(clustering.first_neighbours(x), similarity.argmax(axis=1))


def test_approximate_first_neighbours_above_the_threshold_keep_finchs_partitions():
    """Above `exact_up_to` points the first neighbours come from a tree of k-means cells: on well-separated
    groups they stay inside the group, the hierarchy finds the same groups, and a second call gives the same
    answer."""
    from osal import clustering
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(25, 32)) * 10
    group = rng.integers(0, 25, 4000)
    features = (centres[group] + rng.normal(size=(4000, 32))).astype(np.float32)
    exact = clustering.first_neighbours(features, exact_up_to=None)
    approximate = clustering.first_neighbours(features, exact_up_to=1000)
    assert np.array_equal(approximate, clustering.first_neighbours(features, exact_up_to=1000))  # repeatable
    assert (approximate != np.arange(4000)).all()  # never oneself
    assert (group[approximate] == group).mean() > 0.99
    assert (approximate == exact).mean() > 0.9  # mostly the very same neighbour
    from sklearn.metrics import adjusted_rand_score
    labels, counts = clustering.hierarchy(features, exact_up_to=1000)
    exact_labels, exact_counts = clustering.hierarchy(features, exact_up_to=None)
    assert len(counts) == len(exact_counts) >= 2
    for level in range(len(counts)):  # the same partitions, up to a few points
        assert adjusted_rand_score(exact_labels[:, level], labels[:, level]) > 0.95


def test_points_whose_probed_lists_hold_no_other_point_get_their_exact_neighbour():
    from osal import clustering
    rng = np.random.default_rng(1)
    features = rng.normal(size=(3000, 8)).astype(np.float32)
    features[:5] = rng.normal(size=(5, 8)) * 1e3  # far out: their lists may hold only themselves
    nearest = clustering.approximate_first_neighbours(clustering.unit_rows(features), probes=1)
    assert (nearest >= 0).all() and (nearest != np.arange(3000)).all()


def test_the_tree_of_cells_at_two_levels_finds_neighbours_inside_their_groups(monkeypatch):
    """With more leaves than MAX_CELLS the points are split twice (sqrt(N / leaf) cells, then leaves): the
    neighbours found still lie in the point's own group, are mostly the exact ones, and repeat."""
    from osal import clustering
    monkeypatch.setattr(clustering, "MAX_CELLS", 16)
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(40, 16)) * 10
    group = rng.integers(0, 40, 6000)
    unit = clustering.unit_rows(centres[group] + rng.normal(size=(6000, 16)))
    levels = []
    spied = clustering.most_similar_centres
    monkeypatch.setattr(clustering, "most_similar_centres",
                        lambda unit, rows, centres, count: levels.append(len(centres)) or spied(unit, rows, centres,
                                                                                               count))
    nearest = clustering.approximate_first_neighbours(unit, leaf=32)
    assert len(levels) > 2 * 14  # 188 leaves > 16: 14 top cells, then each split again
    assert (nearest != np.arange(6000)).all() and (nearest >= 0).all()
    assert (group[nearest] == group).mean() > 0.99
    exact = clustering.first_neighbours(unit, exact_up_to=None)
    assert (nearest == exact).mean() > 0.85
    assert np.array_equal(nearest, clustering.approximate_first_neighbours(unit, leaf=32))


def test_the_leaf_scans_per_point_stay_the_same_as_the_points_grow(monkeypatch):
    """Linear time: each point is compared with about probes[0] x probes[1] leaves of `leaf` points, whatever N
    (here 8,000 and 32,000 points, two levels each), never with a share of all of them."""
    from osal import clustering
    monkeypatch.setattr(clustering, "MAX_CELLS", 100)
    scanned = []
    exact_step = clustering._nearest_among

    def counting(unit, queries, base, best_similarity, best):
        scanned.append(len(queries) * len(base))
        return exact_step(unit, queries, base, best_similarity, best)

    monkeypatch.setattr(clustering, "_nearest_among", counting)
    per_point = []
    for n in (8000, 32000):
        scanned.clear()
        unit = clustering.unit_rows(np.random.default_rng(4).normal(size=(n, 8)))
        clustering.approximate_first_neighbours(unit, probes=(3, 2), leaf=32)
        per_point.append(sum(scanned) / n)
    assert per_point[0] < 3 * 2 * 32 * 3  # a few leaves of about 32 points each, never thousands
    assert per_point[1] < 1.3 * per_point[0]


def test_identical_points_are_compared_with_each_other_rather_than_split_forever():
    from osal import clustering
    unit = clustering.unit_rows(np.ones((2000, 4)))
    nearest = clustering.approximate_first_neighbours(unit, leaf=32)
    assert (nearest != np.arange(2000)).all() and (nearest >= 0).all()


def test_probes_must_name_a_cell_per_level():
    from osal import clustering
    unit = clustering.unit_rows(np.random.default_rng(5).normal(size=(100, 4)))
    with pytest.raises(ValueError, match="probes"):
        clustering.approximate_first_neighbours(unit, probes=(4, 0))
