"""Whole runs on the embedded digits data through the real Trainer, in-process and from the command line."""

import csv

import numpy as np
import pytest

from osal.data.pool import PoolState
from osal.loop.experiment import Experiment
from osal.records.metrics import COLUMNS, read_metrics

from conftest import FAST, ROOT, compose_config, run_train

pytestmark = pytest.mark.slow  # runs src/train.py, sweeps or whole runs: left out of make test-fast

SHORT = ["al.rounds=2", "al.query_size=40", "trainer.max_epochs=2", "mismatch=0.4"]


@pytest.mark.parametrize("strategy", ["lfosa", "random"])
def test_two_round_run_writes_consistent_metrics(strategy, tmp_path):
    cfg = compose_config(FAST + SHORT + [f"strategy={strategy}"])
    summary = Experiment(cfg, tmp_path).run()
    rows = read_metrics(tmp_path / "metrics.csv")
    with open(tmp_path / "metrics.csv") as f:
        assert next(csv.reader(f)) == COLUMNS
    assert [r["round"] for r in rows] == [0, 1, 2]
    assert summary["final"]["round"] == 2
    first = rows[0]
    assert first["queried"] == 0 and first["precision"] is None and first["recall"] == 0
    for before, row in zip(rows, rows[1:]):
        assert row["n_labeled"] + row["n_invalid"] + row["n_unlabeled"] == 1437
        assert row["queried"] == 40 and 0 <= row["queried_known"] <= 40
        assert row["n_labeled"] - before["n_labeled"] == row["queried_known"]
        assert row["n_invalid"] - before["n_invalid"] == 40 - row["queried_known"]
        assert row["precision"] == pytest.approx(row["queried_known"] / 40, abs=1e-5)
        assert row["recall"] >= before["recall"]
        assert row["query_seconds"] > 0 and row["fit_seconds"] > 0
    for row in rows:
        assert 0.0 <= row["test_accuracy"] <= 1.0 and 0.0 <= row["test_macro_f1"] <= 1.0
    # the last round's pool file agrees with the last row, and the queries are recorded by round
    pool = PoolState.load(tmp_path / "pool_round_02.npz")
    last = rows[-1]
    assert pool.counts() == {k: last[k] for k in ("n_labeled", "n_invalid", "n_unlabeled")}
    assert len(pool.queried_in(1)) == len(pool.queried_in(2)) == 40
    assert (tmp_path / "summary.json").exists()


def test_recall_definitions(tmp_path):
    cfg = compose_config(FAST + SHORT)
    Experiment(cfg, tmp_path).run()
    rows = read_metrics(tmp_path / "metrics.csv")
    initial = rows[0]["n_labeled"]
    n_known_total = initial / rows[0]["recall_incl_initial"]
    queried_known = sum(r["queried_known"] for r in rows)
    assert rows[-1]["recall"] == pytest.approx(queried_known / (n_known_total - initial), abs=1e-5)
    assert rows[-1]["recall_incl_initial"] == pytest.approx((initial + queried_known) / n_known_total, abs=1e-5)


def test_same_seed_same_queries(tmp_path):
    for name in ("a", "b"):
        Experiment(compose_config(FAST + SHORT + ["al.rounds=1"]), tmp_path / name).run()
    a, b = (PoolState.load(tmp_path / n / "pool_round_01.npz") for n in ("a", "b"))
    assert np.array_equal(a.state, b.state) and np.array_equal(a.query_round, b.query_round)


def run_cli(*overrides):
    return run_train(*overrides)


def test_command_line_run_prints_the_table_and_logs_rounds_as_steps(tmp_path):
    result = run_cli("trainer=cpu", "trainer.enable_progress_bar=false", "al.rounds=1", "trainer.max_epochs=1",
                     f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout + result.stderr
    assert "round  labeled  invalid" in out and "results in" in out
    assert len(read_metrics(tmp_path / "metrics.csv")) == 2
    logged = read_metrics(tmp_path / "lightning_logs" / "metrics.csv")
    assert [r["step"] for r in logged] == [0, 1]
    assert logged[1]["queried"] == 40  # digits' own protocol: queries of 40
    assert (tmp_path / ".hydra" / "config.yaml").exists()


@pytest.mark.parametrize("overrides, words", [
    (["mismatch=1.5"], ["mismatch=1.5", "between 0 and 1"]),
    (["mismatch=0"], ["mismatch=0"]),
    (["al.query_size=100000"], ["al.query_size=100000", "lower al.query_size"]),
    (["dataset=mnist", "dataset.source.download=false", "data_dir={tmp}"], ["data_dir='{tmp}'", "MNIST"]),
])
def test_bad_input_is_one_clear_sentence_and_a_nonzero_exit(overrides, words, tmp_path):
    result = run_cli(*[o.format(tmp=tmp_path) for o in overrides], f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(error_lines) == 1, result.stderr[-2000:]
    for word in words:
        assert word.format(tmp=tmp_path) in error_lines[0]


@pytest.mark.parametrize("group", ["dataset", "strategy", "model", "logger"])
def test_an_unknown_option_names_the_choices(group, tmp_path):
    name = "nope"
    result = run_cli(f"{group}={name}", f"hydra.run.dir={tmp_path}")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"Could not find '{group}/{name}'" in result.stderr
    expected_option = {"strategy": "lfosa", "dataset": "cifar10", "model": "resnet18", "logger": "wandb"}[group]
    assert expected_option in result.stderr  # the available options are listed


STRATEGIES = sorted(p.stem for p in (ROOT / "conf" / "strategy").glob("*.yaml"))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_and_ablation_runs_a_round(strategy, tmp_path):
    cfg = compose_config(FAST + ["al.rounds=1", "al.query_size=30", "trainer.max_epochs=1", "mismatch=0.4",
                                 f"strategy={strategy}"])
    Experiment(cfg, tmp_path).run()
    rows = read_metrics(tmp_path / "metrics.csv")
    assert [r["round"] for r in rows] == [0, 1]
    assert rows[1]["queried"] == 30 and rows[1]["n_labeled"] - rows[0]["n_labeled"] == rows[1]["queried_known"]
    assert rows[1]["selection_seconds"] >= 0 and rows[1]["inference_seconds"] >= 0
    if strategy != "random":
        assert rows[1]["inference_seconds"] > 0  # the pool was scored


def test_ablations_change_what_they_say():
    from osal.engine.roles import role_config

    def role(strategy, name):
        module, invalid = role_config(compose_config([f"strategy={strategy}"]), name)
        return module._target_.rsplit(".", 1)[1], invalid, module.get("temperature")

    assert role("lfosa", "detector") == ("DetectorModule", True, 0.5)
    assert role("lfosa_t1", "detector")[2] == 1.0 and role("lfosa_t2", "detector")[2] == 2.0
    assert role("lfosa_no_invalid", "detector")[1] is False
    assert role("lfosa_dichotomy", "detector")[0] == "BinaryDetectorModule"
    assert role("lfosa_no_classifier", "classifier")[:2] == ("DetectorModule", True)
    assert role("lfosa", "classifier")[:2] == ("ClassifierModule", False)
    assert compose_config(["strategy=lfosa_no_detector"]).strategy.selector.query_model == "classifier"
    assert compose_config(["strategy=bald"]).model.dropout > 0


@pytest.mark.parametrize("pipeline", ["batched", "per_sample"])
def test_augmented_colour_images_train_through_either_data_pipeline(pipeline, tmp_path):
    from layouts import write_image_folder

    write_image_folder(tmp_path / "data", classes=5, train_per_class=8, test_per_class=2, size=12)
    cfg = compose_config(FAST + ["dataset=imagefolder", f"data_dir={tmp_path / 'data'}", "model=small_cnn",
                                 "mismatch=0.4", "al.init_percent=50", "al.init_stratified=true",
                                 "al.query_size=4", "al.rounds=1", "trainer.max_epochs=2", "data.batch_size=4",
                                 f"data.pipeline={pipeline}", f"cache_dir={tmp_path / 'cache'}"])
    assert dict(cfg.dataset.augment) == {"crop_padding": 4, "hflip": True, "rotation": 15}
    summary = Experiment(cfg, tmp_path / "run").run()
    rows = read_metrics(tmp_path / "run" / "metrics.csv")
    assert summary["rows"] == 2 and rows[1]["queried"] == 4 and rows[1]["fit_seconds"] > 0
    assert any((tmp_path / "cache").iterdir())  # the decoded PNGs were cached on the way
