"""`src/train.py` on a run directory that may come from someone else (committed, cloned, a folder reused by hand):
its files are untrusted input.

An unknown experiment ends in Hydra's list of experiments, before anything is written.
"""

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import MissingConfigException
from omegaconf import open_dict

from conftest import CONF, run_train

SMALL = ["mismatch=0.4", "al.rounds=1", "trainer.max_epochs=1"]
# what the command-line tests run: the CSV logger on, so lightning_logs/ is written too
CLI = ["trainer=cpu", "trainer.enable_progress_bar=false", *SMALL]


def composed(overrides):
    """(task config, Hydra's own config) of `train.yaml` with `overrides`, as Hydra composes them for a job."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=list(overrides), return_hydra_config=True)
    hydra_cfg = cfg.hydra
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg, hydra_cfg


# -- 5. an unknown experiment -------------------------------------------------------------------------------

def test_an_unknown_experiment_is_refused_with_the_list_of_experiments():
    with pytest.raises(MissingConfigException) as caught:
        composed(["experiment=mnist_recal"])
    message = str(caught.value)
    assert "experiment/mnist_recal" in message and "mnist_recall" in message and "reproduce_cifar10" in message
    composed(["experiment=mnist_recall"])  # a known one still composes, and none at all is the default
    assert "campaign" not in composed([])[0]


@pytest.mark.slow
def test_an_unknown_experiment_on_the_command_line_lists_the_experiments_and_writes_nothing(tmp_path):
    result = run_train(*CLI, "experiment=mnist_recal", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "Could not find 'experiment/mnist_recal'" in result.stderr and "mnist_recall" in result.stderr
    assert "classes (" not in result.stdout and not (tmp_path / "run").exists()
