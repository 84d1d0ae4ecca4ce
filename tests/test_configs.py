"""Every dataset config composes, carries its protocol, and reads a fixture in its on-disk layout."""

import numpy as np
import pytest

from conftest import compose_config, dataset_names
from layouts import WRITERS

PAPER = {  # dataset -> (initial %, query size, rounds, epochs, backbone)
    "cifar10": (1, 1500, 10, 100, "resnet"),
    "cifar100": (8, 1500, 10, 100, "resnet"),
    "tinyimagenet": (8, 1500, 10, 100, "resnet"),
}


def test_every_dataset_has_a_config_and_a_fixture():
    assert set(dataset_names()) == set(WRITERS) | {"digits"}


@pytest.mark.parametrize("name", sorted(PAPER))
def test_paper_protocol_needs_no_extra_flag(name):
    cfg = compose_config([f"dataset={name}"])
    init, query, rounds, epochs, backbone = PAPER[name]
    assert (cfg.al.init_percent, cfg.al.query_size, cfg.al.rounds, cfg.trainer.max_epochs) == (init, query, rounds,
                                                                                              epochs)
    assert backbone in cfg.model.encoder._target_
    assert cfg.optimizer.lr == 0.01 and cfg.optimizer.momentum == 0.9 and cfg.optimizer.weight_decay == 5e-4
    assert cfg.data.batch_size == 128
    assert (cfg.scheduler.step_size, cfg.scheduler.gamma) == (20, 0.5)
    assert cfg.strategy.detector.module.temperature == 0.5


def test_command_line_overrides_beat_the_dataset_protocol():
    cfg = compose_config(["dataset=tinyimagenet", "mismatch=0.4", "seed=2", "strategy=random", "model=small_cnn",
                          "trainer.max_epochs=2"])
    assert (cfg.mismatch, cfg.seed, cfg.strategy.name, cfg.trainer.max_epochs) == (0.4, 2, "random", 2)
    assert "small_cnn" in cfg.model.encoder._target_


@pytest.mark.parametrize("name", dataset_names())
def test_dataset_config_loads_its_layout_through_the_datamodule(name, tmp_path):
    if name != "digits":
        WRITERS[name][0](tmp_path)
    cfg = compose_config([f"dataset={name}", f"data_dir={tmp_path}", "al.init_percent=50", "al.init_stratified=true",
                          "mismatch=0.4"]
                         + (["dataset.source.download=false"] if "download" in compose_config(
                             [f"dataset={name}"]).dataset.source else []))
    from osal.loop.data import open_set_data
    split, dm = open_set_data(cfg)
    classes = len(split.class_names)
    assert classes == (cfg.dataset.num_classes or 5)
    assert dm.num_known == int(np.floor(0.4 * classes + 0.5))
    assert sum(dm.pool.counts().values()) == len(dm.pool)
    assert (dm.pool.oracle.answer(dm.pool.labeled) >= 0).all()  # the initial set holds known classes only
    x, y, index = next(dm.training_batches())
    assert x.dtype.is_floating_point and x.shape[1] == cfg.dataset.channels
    assert (y < dm.num_known).all() and index.dtype.is_floating_point is False
    x, y, _ = next(iter(dm.test_dataloader()))
    assert (y < dm.num_known).all()  # accuracy is measured on known classes only
    assert dm.test_dataloader().dataset.num_examples == int((dm.test_labels < dm.num_known).sum())


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["eoal", "eaoa", "mqnet", "bual"])
@pytest.mark.parametrize("name", dataset_names())
def test_the_newer_strategies_run_on_every_dataset_config(name, strategy, tmp_path):
    """EOAL, EAOA, MQNet and BUAL bring their own detectors, heads and state: each runs a query on every dataset's
    layout."""
    from osal.loop.experiment import Experiment
    from osal.records.metrics import read_metrics

    if name != "digits":
        WRITERS[name][0](tmp_path / "data")
    source = compose_config([f"dataset={name}"]).dataset.source
    cfg = compose_config([f"dataset={name}", f"data_dir={tmp_path / 'data'}", f"strategy={strategy}", "mismatch=0.4",
                          "al.init_percent=50", "al.init_stratified=true", "al.rounds=1", "al.query_size=4",
                          "trainer=cpu", "trainer.max_epochs=1", "trainer.enable_progress_bar=false", "logger=none",
                          "model=small_cnn", "data.batch_size=8"]
                         + (["dataset.source.download=false"] if "download" in source else []))
    Experiment(cfg, tmp_path / "run").run()
    rows = read_metrics(tmp_path / "run" / "metrics.csv")
    assert [r["round"] for r in rows] == [0, 1] and rows[1]["queried"] == 4


def test_the_strategy_grid_is_every_strategy_under_a_protocol_that_can_reach_most_knowns():
    """experiment=strategy_grid sweeps every strategy config but LfOSA's ablations and consensus's design-set
    variants (docs/design.md); its budget is 30% of MNIST, the old protocol's is not."""
    from pathlib import Path

    from hydra import compose, initialize_config_dir

    from conftest import CONF
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=strategy_grid"], return_hydra_config=True)
        old = compose("train", overrides=["dataset=mnist"])
    swept = set(cfg.hydra.sweeper.params.strategy.split(","))
    ablations = {p.stem for pattern in ("lfosa_*.yaml", "consensus_*.yaml")
                 for p in Path(CONF / "strategy").glob(pattern)}
    assert swept == {p.stem for p in Path(CONF / "strategy").glob("*.yaml")} - ablations
    assert {"eoal", "eaoa", "consensus"} <= swept
    assert cfg.hydra.sweeper.params.mismatch == "0.2,0.3,0.4" and cfg.hydra.sweeper.params.seed == "1,2,3,4"
    pool, known_at_04 = 60_000, 0.4 * 60_000
    assert cfg.al.query_size * cfg.al.rounds == 0.3 * pool
    assert cfg.al.query_size * cfg.al.rounds >= 0.75 * known_at_04  # most of the known pool is within reach
    assert old.al.query_size * old.al.rounds / (0.4 * pool) < 0.15  # the old protocol is kept, and capped


def test_the_strategy_campaigns_cifar10_runs_are_the_cifar10_recall_protocol():
    """The campaign's grid and `experiment=cifar10_recall` must not drift apart: the same run, composed both ways."""

    from osal.campaign.grid import compose_experiment, expand
    grid = expand(compose_experiment(["experiment=strategy_campaign"]))
    names = [run.name for run in grid]
    # (a) 18, (b) 18, (b2) consensus_top 6, (c) 7 strategies x 3 mismatches x 2 datasets x 2 seeds, (d) 72, (e) 36
    assert len(names) == len(set(names)) == 18 + 18 + 6 + 84 + 72 + 36
    assert names.index("mnist_mismatch0.2_consensus_top_seed1") == 36  # right after stage (b)
    assert {name.split("_")[-2] for name in names[-36:]} == {"mqnet", "bual"}  # the last stage: MQNet and BUAL
    run = next(r for r in grid if r.name == "cifar10_cpu_mismatch0.3_eoal_seed2")
    in_campaign = compose_experiment(["experiment=strategy_campaign", *run.overrides], with_hydra=False)
    alone = compose_experiment(["experiment=cifar10_recall", "mismatch=0.3", "strategy=eoal", "seed=2",
                                "trainer=cpu"], with_hydra=False)
    assert what_runs(in_campaign) == what_runs(alone)
    mnist = next(r for r in grid if r.name == "mnist_mismatch0.4_bald_seed3")
    assert what_runs(compose_experiment(["experiment=strategy_campaign", *mnist.overrides], with_hydra=False)) == \
        what_runs(compose_experiment(["experiment=mnist_recall", "mismatch=0.4", "strategy=bald", "seed=3",
                                      "trainer=cpu"], with_hydra=False))


def what_runs(cfg):
    """A resolved config without the campaign's own list of stages."""
    from omegaconf import OmegaConf
    return {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k != "campaign"}
