"""Shared test helpers: compose the real Hydra configs, shrunk for the CPU."""

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

import osal  # noqa: F401  (registers the resolvers the configs use)

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
SHARED_DATA = ROOT.parent / "shared" / "data"

# what every fast in-process run overrides: CPU, no progress bars, no Lightning logger
FAST = ["trainer=cpu", "trainer.enable_progress_bar=false", "logger=none"]


def compose_config(overrides=()):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=list(overrides))


@pytest.fixture
def make_config():
    return compose_config


@pytest.fixture(autouse=True)
def _quiet():
    from osal.quiet import quiet_lightning
    quiet_lightning()
    yield


def dataset_names():
    return sorted(p.stem for p in (CONF / "dataset").glob("*.yaml"))


os.environ.setdefault("WANDB_MODE", "disabled")


def run_train(*args, timeout=600, env=None):
    """`python src/train.py ARGS` from the repository root, as a user would run it; output captured."""
    import subprocess
    import sys
    env = {**(env or os.environ), "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "src/train.py", *args], cwd=ROOT, capture_output=True, text=True,
                          env=env, timeout=timeout)


def open_set(overrides=()):
    """(OpenSetSplit, set-up PoolDataModule) of the composed config, as the research loop builds them."""
    from osal.loop.data import open_set_data
    return open_set_data(compose_config(overrides))


def wait_until_round_saved(run_dir, round_index, process, timeout=300):
    """Return once `run_dir`'s saved state holds round `round_index` (and a moment into the next round's fits),
    or `process` ended, or `timeout` seconds passed."""
    import time

    from osal.records.run_state import load_state
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        saved = load_state(run_dir) if (Path(run_dir) / "state.npz").exists() else None
        if saved is not None and saved.last_round >= round_index:
            time.sleep(0.1)  # into the next round's fits
            return
        time.sleep(0.05)


TIMING_COLUMNS = {"query_seconds", "inference_seconds", "selection_seconds", "fit_seconds"}


def assert_same_records(reference, other, rounds):
    """Two run directories hold the same rounds 0..rounds: metrics.csv row for row (timings aside) and every
    round's pool state."""
    import numpy as np

    from osal.data.pool import PoolState
    from osal.records.metrics import read_metrics

    def untimed(run_dir):
        rows = read_metrics(run_dir / "metrics.csv")
        return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in rows]
    assert untimed(other) == untimed(reference)
    for r in range(rounds + 1):
        a, b = (PoolState.load(d / f"pool_round_{r:02d}.npz") for d in (reference, other))
        assert np.array_equal(a.state, b.state) and np.array_equal(a.query_round, b.query_round)
