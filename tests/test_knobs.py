"""Every knob of every config group: zero, negative, wrong-type and missing values get one sentence naming the
knob and a valid value (osal.loop.knobs), and what is accepted builds the object it feeds without a traceback;
on the command line, exit status 2 before any data is read."""

import os
import subprocess
import sys

import hydra
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from osal.errors import ConfigError
from osal.knobs import CHECKED_ELSEWHERE, MISSING, check_devices, check_knobs, is_knob, leaves, rule_for

from conftest import ROOT

CONF = os.path.join(ROOT, "conf")
GROUPS = ("strategy", "model", "dataset", "trainer", "scheduler", "optimizer", "logger", "experiment")
TRIED = (0, -1, "abc", None, True, 1e9)


def every_option() -> list:
    return [f"{group}={name[:-5]}" for group in GROUPS for name in sorted(os.listdir(os.path.join(CONF, group)))
            if name.endswith(".yaml")]


@pytest.fixture(scope="module")
def composed():
    """{override: composed config} for every option of every group, composed by Hydra as a run composes it."""
    configs = {}
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        for option in every_option():
            configs[option] = compose("train", overrides=[option])
        configs["annotate"] = compose("annotate")  # an annotation project's knobs
    return configs


def knobs_of(cfg) -> dict:
    return {key: value for key, value in leaves(cfg) if is_knob(key) and key not in CHECKED_ELSEWHERE}


def test_every_knob_of_every_group_has_a_rule_and_its_default_passes(composed):
    without = set()
    for option, cfg in composed.items():
        for key, value in knobs_of(cfg).items():
            if rule_for(key) is None:
                without.add(key)
            else:
                assert rule_for(key).problem(value) is None, f"{option}: default {key}={value!r} is refused"
        check_knobs(cfg)  # the shipped configs pass as a whole
    assert not without, f"knobs without a rule in osal/loop/knobs.py: {sorted(without)}"
    assert len(composed) > 40


def build(cfg, key: str):
    """Build what `key` feeds, as the run builds it: the optimizer, the scheduler, the selector or the Trainer."""
    if key.startswith("optimizer."):
        return hydra.utils.instantiate(cfg.optimizer)([torch.nn.Parameter(torch.zeros(2))])
    if key.startswith("scheduler."):
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
        return hydra.utils.instantiate(cfg.scheduler)(optimizer) if cfg.scheduler else None
    if key.startswith("strategy.selector."):
        return hydra.utils.instantiate(cfg.strategy.selector)
    if key.startswith("trainer."):
        return hydra.utils.instantiate(cfg.trainer, logger=False)
    return None


def test_zero_negative_wrong_type_and_null_values_get_one_sentence_or_work(composed):
    """Each knob with each of TRIED: refused with one sentence that names it and shows a valid value, or
    accepted and then the optimizer, scheduler, selector or Trainer it feeds builds."""
    refused = accepted = 0
    seen = set()
    for option, cfg in composed.items():
        try:
            check_devices(cfg)
        except ConfigError:  # trainer=gpu on a machine without one: the command-line test below covers it
            continue
        for key in knobs_of(cfg):
            if key in seen:
                continue
            seen.add(key)
            for value in TRIED:
                changed = cfg.copy()
                OmegaConf.update(changed, key, value, merge=False)
                try:
                    check_knobs(changed)
                    check_devices(changed)
                except ConfigError as error:
                    message = str(error)
                    assert "\n" not in message and message.startswith(f"{key}=") and "e.g. " in message, message
                    refused += 1
                    continue
                accepted += 1
                build(changed, key)  # raises (and fails the test) if an accepted value breaks what it feeds
    assert refused > 3 * accepted  # most of these values are wrong for most knobs


@pytest.mark.parametrize("key, value", [("seed", -1), ("optimizer.lr", -1), ("optimizer.lr", 0),
                                        ("trainer.max_epochs", "ten"), ("data.batch_size", 0),
                                        ("scheduler.gamma", 0), ("strategy.selector.max_iter", 0),
                                        ("model.dropout", 1), ("trainer.precision", "half"), ("dataset.std", [0])])
def test_named_bad_values(composed, key, value):
    cfg = composed["strategy=lfosa"].copy()
    OmegaConf.update(cfg, key, value, merge=False)
    with pytest.raises(ConfigError, match=f"^{key}="):
        check_knobs(cfg)


def test_a_missing_value_is_named():
    cfg = OmegaConf.create({"optimizer": {"lr": "???", "momentum": 0.9}})
    assert dict(leaves(cfg))["optimizer.lr"] is MISSING
    with pytest.raises(ConfigError, match=r"^optimizer.lr is missing; give it a value, e\.g\. optimizer.lr=0.01$"):
        check_knobs(cfg)


@pytest.mark.slow
@pytest.mark.parametrize("override, words", [
    ("seed=-1", "seed=-1 (the run's seed) must be in [0, 4294967295]"),
    ("optimizer.lr=-1", "optimizer.lr=-1 (the learning rate) must be positive"),
    ("trainer=gpu", "no CUDA GPU" if not torch.cuda.is_available() else None),
    ("data.num_workers=-2", "data.num_workers=-2 must be zero or more"),
    ("strategy=bald strategy.selector.mc_samples=1",
     "strategy.selector.mc_samples=1 (dropout passes) must be at least 2"),
    ("trainer.precision=half", "trainer.precision='half' must be one of"),
])
def test_the_command_line_gets_one_sentence_and_exit_2_before_any_data_is_read(override, words, tmp_path):
    # data_dir does not exist: a check that came after reading data would complain about the data instead
    result = subprocess.run([sys.executable, "src/train.py", "dataset=mnist", f"data_dir={tmp_path / 'none'}",
                             f"hydra.run.dir={tmp_path / 'run'}", *override.split()], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    if words is None and override.startswith("trainer="):
        pytest.skip("this machine has a GPU: trainer=gpu is valid here")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    if words:
        assert words in result.stderr
    assert "mnist" not in result.stderr.lower().replace("dataset=mnist", "")  # no data was looked for
    assert not os.path.exists(tmp_path / "none")
