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
