"""BUAL: the shared contract, known answers of its score worked out by hand, its state, and its detector module fit by
a real Lightning Trainer."""

from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from osal.errors import ConfigError
from osal.models.negative_learning import BUALDetectorModule, BUALQueryNetwork, negative_learning_loss
from osal.models.network import build_network
from osal.models.small_cnn import SmallCNNEncoder
from osal.strategies.base import PoolOutputs
from osal.strategies.bual import BUALStrategy

from strategy_contract import StrategyContract


class TestBUALContract(StrategyContract):
    logit_columns = 2 * 3 + 1

    def make_strategy(self):
        return BUALStrategy()


class TestBUALContractAfterUnknowns(StrategyContract):
    """Once an unknown was queried, the auxiliary network's predicted unknowns are left out (and filled up from)."""

    logit_columns = 2 * 3 + 1

    def make_strategy(self):
        strategy = BUALStrategy(uncertainty="margin")
        strategy.observe(10, 6)
        return strategy


# -- known answers ---------------------------------------------------------------------------
# K = 2, five pool examples at global indices 10..50. The negative-learning sums of 4 snapshots, the classifier's
# softmax P and the auxiliary softmax are given directly (logits = log of the probabilities).
NL_SUMS = np.array([[3.0, 1.0], [2.0, 2.0], [3.5, 0.5], [0.8, 3.2], [2.5, 1.5]])
P = np.array([[0.9, 0.1], [0.6, 0.4], [0.55, 0.45], [0.3, 0.7], [0.95, 0.05]])
AUX = np.array([[0.5, 0.2, 0.3], [0.6, 0.3, 0.1], [0.1, 0.2, 0.7], [0.2, 0.45, 0.35], [0.45, 0.35, 0.2]])
INDICES = np.array([10, 20, 30, 40, 50])


def outputs_of(aux=AUX, nl=NL_SUMS, p=P, indices=INDICES) -> PoolOutputs:
    return PoolOutputs(indices, 2, logits=np.concatenate([np.log(aux), nl], axis=1), classifier_logits=np.log(p))


def strategy_with(ratio: float, unknowns_seen: bool, uncertainty: str = "least_confidence") -> BUALStrategy:
    strategy = BUALStrategy(uncertainty)
    strategy.load_state_dict({"ratio": ratio, "unknowns_seen": unknowns_seen})
    return strategy


def test_least_confidence_before_any_unknown_by_hand():
    """max NL = [3, 2, 3.5, 3.2, 2.5] -> t1 = [2/3, 0, 1, 0.8, 1/3]; max P = [.9, .6, .55, .7, .95] ->
    t2 = [.875, .125, 0, .375, 1]. Ratio 0: t1 alone; ratio 0.5: t1 + t2 / 2 = [1.104, .0625, 1, .9875, .833]."""
    rng = np.random.default_rng(0)
    assert strategy_with(0.0, False).select(outputs_of(), 5, rng).tolist() == [20, 50, 10, 40, 30]
    selection = strategy_with(0.5, False).query(outputs_of(), 5, rng)
    assert selection.indices.tolist() == [20, 50, 40, 30, 10]
    np.testing.assert_allclose(selection.scores, -np.array([2 / 3 + 0.4375, 0.0625, 1.0, 0.9875, 1 / 3 + 0.5]))


def test_least_confidence_after_unknowns_leaves_the_predicted_unknowns_last():
    """Example 30 is predicted unknown (aux argmax = K). Candidates 10, 20, 40, 50: aux unknown probability
    [.3, .1, .35, .2] -> t3 = [.8, 0, 1, .4]; t1 = [5/6, 0, 1, 5/12]; t2 = [6/7, 0, 2/7, 1];
    temp = t3 t1 + 0.5 (1 - t3) t2 = [.752, 0, 1, .467]."""
    selection = strategy_with(0.5, True).query(outputs_of(), 5, np.random.default_rng(0))
    assert selection.indices.tolist() == [20, 50, 10, 40, 30]
    temp = np.array([0.8 * 5 / 6 + 0.5 * 0.2 * 6 / 7, 0.0, 1.0, 0.4 * 5 / 12 + 0.5 * 0.6 * 1.0])
    np.testing.assert_allclose(selection.scores[[0, 1, 3, 4]], -temp)
    assert selection.scores[2] < selection.scores.min(initial=np.inf, where=np.arange(5) != 2)
    # a budget within the candidates never reaches the predicted unknown
    assert strategy_with(0.5, True).select(outputs_of(), 3, np.random.default_rng(0)).tolist() == [20, 50, 10]


def test_fewer_candidates_than_the_budget_are_filled_with_the_least_unknown_looking():
    """Examples 30 (aux unknown .7) and 50 (.5) are predicted unknown. Candidates 10, 20, 40: t3 = [.8, 0, 1],
    t1 = [5/6, 0, 1], t2 = [1, 0, 1/3], temp = [.767, 0, 1]; then 50 before 30."""
    aux = AUX.copy()
    aux[4] = [0.3, 0.2, 0.5]
    strategy = strategy_with(0.5, True)
    selection = strategy.query(outputs_of(aux=aux), 5, np.random.default_rng(0))
    assert selection.indices.tolist() == [20, 10, 40, 50, 30]
    assert np.argsort(-selection.scores, kind="stable").tolist() == [1, 0, 3, 4, 2]  # the scores rank alike
    np.testing.assert_allclose(selection.scores[[0, 1, 3]], -np.array([0.8 * 5 / 6 + 0.1, 0.0, 1.0]))


def official_temp(nl, p, aux, ratio, kind):
    """The official main.py score, step by step over index-ordered lists (the reference, not the implementation)."""
    def value(prob):
        prob = np.asarray(prob)
        if kind == "least_confidence":
            return prob.max(1)
        if kind == "margin":
            return np.array([abs(sorted(row)[-1] - sorted(row)[-2]) for row in prob])
        return np.sum(prob * np.log(prob + 1e-10), axis=1)

    def scaled(v):
        return (v - v.min()) / (v.max() - v.min())
    keep = [i for i in range(len(nl)) if aux is None or int(np.argmax(aux[i])) != aux.shape[1] - 1]
    temp1, temp2 = scaled(value(nl[keep])), scaled(value(p[keep]))
    if aux is None:
        return keep, temp1 + ratio * temp2
    temp3 = scaled(aux[keep, -1])
    return keep, temp3 * temp1 + ratio * (1 - temp3) * temp2


@pytest.mark.parametrize("kind", ["least_confidence", "margin", "entropy"])
@pytest.mark.parametrize("seen", [False, True])
@pytest.mark.parametrize("ratio", [0.0, 0.7])
def test_every_uncertainty_ranks_as_the_official_score(kind, seen, ratio):
    rng = np.random.default_rng(7)
    n, k = 40, 3
    nl = rng.dirichlet(np.ones(k), size=n) * 21  # 21 snapshots' sums
    p = rng.dirichlet(np.ones(k), size=n)
    aux = rng.dirichlet(np.ones(k + 1) * 2, size=n)
    indices = np.sort(rng.choice(1000, n, replace=False))
    outputs = PoolOutputs(indices, k, logits=np.concatenate([np.log(aux), nl], axis=1), classifier_logits=np.log(p))
    keep, temp = official_temp(nl, p, aux if seen else None, ratio, kind)
    expected = np.asarray(keep)[np.argsort(temp)]
    unknown = sorted(set(range(n)) - set(keep), key=lambda i: aux[i, -1])
    chosen = strategy_with(ratio, seen, kind).select(outputs, n, np.random.default_rng(0))
    assert chosen.tolist() == indices[np.concatenate([expected, unknown]).astype(int)].tolist()
    # the pool handed over in another row order gives the same query
    shuffled = np.random.default_rng(1).permutation(n)
    again = PoolOutputs(indices[shuffled], k, logits=outputs.logits[shuffled],
                        classifier_logits=outputs.classifier_logits[shuffled])
    assert strategy_with(ratio, seen, kind).select(again, n, np.random.default_rng(0)).tolist() == chosen.tolist()


def test_a_constant_score_counts_as_zero_instead_of_dividing_by_zero():
    nl = np.full((5, 2), 2.0)  # every row the same negative-learning sums
    selection = strategy_with(1.0, False).query(outputs_of(nl=nl), 5, np.random.default_rng(0))
    assert np.isfinite(selection.scores).all()
    assert selection.indices.tolist() == [30, 20, 40, 10, 50]  # by the classifier's term alone: max P ascending


def test_other_column_counts_and_uncertainties_are_refused_in_one_sentence():
    with pytest.raises(ValueError, match="strategy=bual"):
        BUALStrategy().select(PoolOutputs(INDICES, 2, logits=np.zeros((5, 3)), classifier_logits=np.zeros((5, 2))), 2,
                              np.random.default_rng(0))
    with pytest.raises(ConfigError, match="uncertainty='variance'") as error:
        BUALStrategy("variance")
    assert "\n" not in str(error.value) and "least_confidence" in str(error.value)


def test_observe_keeps_the_precision_and_whether_an_unknown_was_seen_and_the_state_round_trips():
    strategy = BUALStrategy()
    assert strategy.state_dict() == {"ratio": 0.0, "unknowns_seen": False}
    strategy.observe(10, 10)
    assert strategy.state_dict() == {"ratio": 1.0, "unknowns_seen": False}
    strategy.observe(0, 0)  # nothing asked: nothing learned
    assert strategy.ratio == 1.0
    strategy.observe(8, 6)
    strategy.observe(4, 4)  # an unknown once seen stays seen: the auxiliary network keeps being trained
    assert strategy.state_dict() == {"ratio": 1.0, "unknowns_seen": True}
    import json
    restored = BUALStrategy()
    restored.load_state_dict(json.loads(json.dumps(strategy.state_dict())))
    assert restored.state_dict() == strategy.state_dict()


# -- the detector module ---------------------------------------------------------------------
K = 2


def small_network(num_outputs):
    return build_network(lambda: SmallCNNEncoder(1, 4), num_outputs)


def make_module(check_every=2):
    return BUALDetectorModule(K, small_network, lambda params: torch.optim.SGD(params, lr=0.05, momentum=0.9),
                              check_every=check_every)


class TinyData(L.LightningDataModule):
    """A real datamodule of 8x8 images with targets 0..K-1 (labeled), K (queried unknowns) and -1 (unlabeled), and
    the one thing the module reads of a pool: its invalid set."""

    def __init__(self, targets, invalid=(0,)):
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(len(targets), 1, 8, 8, generator=generator)
        self.y = torch.as_tensor(targets)
        self.pool = SimpleNamespace(invalid=np.asarray(invalid, dtype=np.int64))

    def train_dataloader(self):
        return DataLoader(TensorDataset(self.x, self.y, torch.arange(len(self.y))), batch_size=8, shuffle=True,
                          generator=torch.Generator().manual_seed(1))


def trainer(epochs):
    return L.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False)


def test_the_negative_learning_loss_is_minus_the_mean_log_of_one_minus_the_complementary_probability():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0], [20.0, -5.0, 0.0]])
    complementary = torch.tensor([0, 1, 0])
    p = torch.softmax(logits, dim=1)
    picked = p[torch.arange(3), complementary]
    expected = -torch.log(torch.clamp(1 - picked, min=1e-5, max=1.0)).mean()
    torch.testing.assert_close(negative_learning_loss(logits, complementary), expected)


def test_complementary_labels_avoid_the_labeled_class_and_cover_every_class_for_unlabeled_rows():
    module = make_module()
    targets = torch.tensor([0, 1] * 500 + [-1] * 1000)
    labels = module.complementary_labels(targets)
    assert ((labels >= 0) & (labels < K)).all()
    assert (labels[:1000] != targets[:1000]).all()
    assert set(labels[1000:].tolist()) == {0, 1}


def test_a_fit_keeps_a_snapshot_every_check_and_the_query_network_sums_them():
    torch.manual_seed(0)
    module = make_module(check_every=2)
    classifier = small_network(K)
    before = {k: v.clone() for k, v in classifier.state_dict().items()}
    module.start_from(classifier)
    trainer(4).fit(module, datamodule=TinyData([0, 1, 2, -1] * 6, invalid=[5]))
    assert len(module.net.snapshots) == 4 // 2 + 1  # epochs 0 and 2, and after the last (4)
    assert all(torch.equal(v, before[k]) for k, v in classifier.state_dict().items())  # the copy was trained
    assert not torch.equal(module.nl.network.encoder.body[0][0].weight, classifier.encoder.body[0][0].weight)
    network = module.net.eval().to("cpu", memory_format=torch.channels_last)
    with torch.inference_mode():
        features, logits = network.forward_features(torch.randn(5, 1, 8, 8).contiguous(
            memory_format=torch.channels_last))
    assert logits.shape == (5, 2 * K + 1) and len(features) == 5
    torch.testing.assert_close(logits[:, K + 1:].sum(dim=1), torch.full((5,), 3.0))
    assert logits[:, :K + 1].abs().sum() > 0  # the auxiliary network was trained: its logits, not zeros
    assert network.channels_last is None
    assert module.trainer.callback_metrics["train_loss"].isfinite()


def test_a_non_multiple_epoch_count_has_no_snapshot_after_the_last_epoch():
    module = make_module(check_every=2)
    trainer(3).fit(module, datamodule=TinyData([0, 1, -1] * 6, invalid=[5]))
    assert len(module.net.snapshots) == 2  # epochs 0 and 2


@pytest.mark.parametrize("invalid", [[], [5]])
def test_the_auxiliary_network_learns_only_once_the_invalid_set_holds_examples(invalid):
    torch.manual_seed(0)
    module = make_module()
    aux_before = {k: v.clone() for k, v in module.net.aux.state_dict().items()}
    nl_before = module.nl.head.weight.detach().clone()
    trainer(2).fit(module, datamodule=TinyData([0, 1, 2, -1] * 6 if invalid else [0, 1, -1] * 8, invalid))
    aux_changed = any(not torch.equal(v, aux_before[k]) for k, v in module.net.aux.state_dict().items())
    assert aux_changed == bool(invalid)
    assert not torch.equal(module.nl.head.weight, nl_before)  # the negative-learning head learns either way
    with torch.inference_mode():
        logits = module.net.eval()(torch.randn(3, 1, 8, 8))
    assert (logits[:, :K + 1].abs().sum() > 0) == bool(invalid)  # zeros where no auxiliary network was trained


def test_the_query_network_without_snapshots_still_gives_every_column():
    network = BUALQueryNetwork(small_network(K + 1), K).eval()
    with torch.inference_mode():
        features, logits = network.forward_features(torch.randn(2, 1, 8, 8))
    assert logits.shape == (2, 2 * K + 1) and (logits[:, K + 1:] == 0).all()


# -- the real loop ---------------------------------------------------------------------------
@pytest.mark.slow
def test_a_continued_run_equals_the_uninterrupted_one(tmp_path):
    """The last query's precision and whether an unknown was seen are kept with the run's state and the last
    classifier (which the negative-learning network continues from) is fit again on resume: a run continued after
    round 1 gives the records of one that ran through."""
    from osal.loop.experiment import Experiment
    from osal.records.metrics import read_metrics
    from osal.records.run_state import load_state

    from conftest import FAST, compose_config
    base = FAST + ["strategy=bual", "mismatch=0.4", "trainer.max_epochs=3", "al.query_size=60",
                   "strategy.detector.module.check_every=1"]
    Experiment(compose_config(base + ["al.rounds=3"]), tmp_path / "through").run()
    Experiment(compose_config(base + ["al.rounds=1"]), tmp_path / "continued").run()
    state = load_state(tmp_path / "continued").strategy_state
    assert state["ratio"] > 0.0 and state["unknowns_seen"]  # the first answers moved it
    Experiment(compose_config(base + ["al.rounds=3"]), tmp_path / "continued").run()
    rows = [read_metrics(d / "metrics.csv") for d in (tmp_path / "through", tmp_path / "continued")]
    assert [r["round"] for r in rows[0]] == [0, 1, 2, 3] and all(r["queried"] == 60 for r in rows[0][1:])
    untimed = [[{k: v for k, v in row.items() if not k.endswith("seconds")} for row in table] for table in rows]
    assert untimed[0] == untimed[1]
    assert (load_state(tmp_path / "continued").strategy_state == load_state(tmp_path / "through").strategy_state)
