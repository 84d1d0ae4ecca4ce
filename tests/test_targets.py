"""Configs that would run code: every `_target_` osal instantiates must be on its allow-list (osal.targets),
whether it comes from osal's own configs, the command line, an annotation project's config.yaml or a
campaign's grid; anything else is refused in one sentence before anything runs, and no file appears."""

import os
import shutil
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from osal.build import build
from osal.errors import ConfigError
from osal.targets import allowed, check_config_targets, check_overrides, command_line_overrides

from conftest import CONF, ROOT, compose_config

# what a config from someone else might name: each writes a file or runs a program the moment it is built
HARMFUL = ["builtins.open", "shutil.copyfile", "numpy.savetxt", "os.system", "subprocess.run", "builtins.exec",
           "osal.strategies.eoal.np.savetxt",          # starts like an osal strategy, is numpy's function
           "osal.atomic.atomic_write_text",            # osal's own, but a function that writes any file
           "osal.loop.output_check.Callback",          # Hydra's base class imported into an osal module
           "torch.optim.sgd.os.system",                # under torch.optim, not an optimiser
           "torch.save", "lightning.pytorch.loggers.csv_logs.os.makedirs",
           " osal.strategies.random.RandomStrategy", "", None, 3]


def yaml_targets():
    """Every `_target_` written in conf/."""
    found = set()
    for path in CONF.rglob("*.yaml"):
        for line in path.read_text().splitlines():
            if line.strip().startswith("_target_:"):
                found.add(line.split(":", 1)[1].split("#")[0].strip())
    return sorted(found)


@pytest.mark.parametrize("target", yaml_targets())
def test_every_target_of_osals_own_configs_is_allowed(target):
    assert allowed(target), target


@pytest.mark.parametrize("target", ["torch.optim.AdamW", "torch.optim.lr_scheduler.CosineAnnealingLR",
                                    "lightning.pytorch.loggers.TensorBoardLogger",
                                    "hydra._internal.core_plugins.basic_launcher.BasicLauncher",
                                    "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher",
                                    "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher",
                                    "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"])
def test_the_families_osals_groups_name_are_allowed_beyond_the_members_it_uses(target):
    assert allowed(target), target


@pytest.mark.parametrize("target", HARMFUL)
def test_anything_else_is_refused(target):
    assert not allowed(target)


@pytest.mark.parametrize("overrides", [[], ["strategy=eoal", "logger=wandb", "scheduler=none"],
                                       ["strategy=consensus", "hydra/launcher=local"],
                                       ["strategy=eaoa", "hydra/launcher=slurm"]])
def test_composed_configs_hydra_part_included_pass_whole(overrides):
    from hydra import compose, initialize_config_dir
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    check_config_targets(cfg, "the config")


def test_a_target_made_by_a_resolver_or_nested_in_a_list_is_found():
    cfg = OmegaConf.create({"a": {"b": [{"c": {"_target_": "numpy.savetxt"}}]}})
    with pytest.raises(ConfigError, match=r"sets a\.b\.0\.c\._target_=numpy\.savetxt"):
        check_config_targets(cfg, "x.yaml")
    made = OmegaConf.create({"a": "${oc.create:{_target_: shutil.copyfile}}"})
    with pytest.raises(ConfigError, match="shutil.copyfile"):
        check_config_targets(made, "x.yaml")
    logging_factory = {"handlers": {"h": {"()": "os.system"}}}
    with pytest.raises(ConfigError, match=r"handlers\.h\.\(\)=os\.system"):
        check_config_targets(logging_factory, "x.yaml")


def test_build_refuses_before_instantiating(tmp_path):
    planted = tmp_path / "planted.txt"
    cfg = OmegaConf.create({"_target_": "numpy.savetxt", "fname": str(planted), "X": [1.0]})
    with pytest.raises(ConfigError, match="numpy.savetxt"):
        build(cfg)
    assert not planted.exists()
    # the same config with an allowed target is built
    assert type(build(compose_config().strategy.selector)).__name__ == "LfOSA"


def test_command_line_overrides_are_read_as_hydra_reads_them():
    argv = ["-m", "--config-dir", "strategy.selector._target_=x", "seed=1,2", "+a.b={_target_:os.system}",
            "-cn", "train", "hydra.run.dir=r"]
    assert command_line_overrides(argv) == ["seed=1,2", "+a.b={_target_:os.system}", "hydra.run.dir=r"]
    with pytest.raises(ConfigError, match=r"a\.b\._target_=os\.system"):
        check_overrides(command_line_overrides(argv))
    with pytest.raises(ConfigError, match="numpy.savetxt"):  # one value of a sweep is enough
        check_overrides(["strategy.selector._target_=osal.strategies.random.RandomStrategy,numpy.savetxt"])
    check_overrides(["strategy=random", "optimizer._target_=torch.optim.AdamW", "seed=1,2,3", "not an override"])


@pytest.mark.slow
@pytest.mark.parametrize("overrides", [
    lambda plant: [f"strategy.selector={{_target_:numpy.savetxt,fname:'{plant}',X:[1]}}"],
    lambda plant: ["+hydra.callbacks.x._target_=numpy.savetxt", f"+hydra.callbacks.x.fname='{plant}'",
                   "+hydra.callbacks.x.X=[1]"],
    lambda plant: ["-m", "seed=1,2", f"strategy.selector={{_target_:numpy.savetxt,fname:'{plant}',X:[1]}}"],
], ids=["selector", "hydra_callback", "multirun"])
def test_train_py_refuses_a_foreign_target_on_its_command_line_and_writes_nothing(tmp_path, overrides):
    plant = tmp_path / "site-packages" / "zz.pth"
    plant.parent.mkdir()
    done = subprocess.run([sys.executable, "src/train.py", *overrides(plant), "trainer=cpu", "logger=none",
                           f"hydra.run.dir={tmp_path / 'run'}", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "numpy.savetxt, which is not one of the things osal builds" in done.stderr
    assert not plant.exists()
    assert not (tmp_path / "run").exists() and not (tmp_path / "sweep").exists()


@pytest.mark.slow
def test_an_annotation_projects_config_cannot_plant_a_file(tmp_path):
    from osal.annotate.create import create_project
    from osal.annotate.project import CONFIG_FILE

    from annotation_helpers import DIGITS, FAST, KNOWN
    folder = tmp_path / "digits"
    DIGITS.write_digits(str(folder), count=60, known=KNOWN, initial=2)
    project = tmp_path / "project"
    create_project(project, folder / "images", list(KNOWN), folder / "initial.csv", FAST)
    config = OmegaConf.load(project / CONFIG_FILE)
    plant = tmp_path / "site-packages" / "zz.pth"
    plant.parent.mkdir()
    config.strategy.selector = {"_target_": "numpy.savetxt", "fname": str(plant), "X": [1]}
    OmegaConf.save(config, project / CONFIG_FILE)
    before = {p: p.read_bytes() for p in project.rglob("*") if p.is_file()}
    for command in (["next"], ["status"], ["export", "--to", str(tmp_path / "export")]):
        done = subprocess.run([sys.executable, "src/annotate.py", "-p", str(project), *command], cwd=ROOT,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 2, (command, done.stderr)
        assert "Traceback" not in done.stderr
        assert f"{project / CONFIG_FILE} sets strategy.selector._target_=numpy.savetxt" in done.stderr
        assert not plant.exists()
    assert {p: p.read_bytes() for p in project.rglob("*") if p.is_file()} == before
    assert not (tmp_path / "export").exists()
    shutil.rmtree(folder)
    assert not os.path.exists(plant)


def test_the_persons_own_class_is_allowed_by_naming_it_in_the_environment(monkeypatch):
    own = "conftest.SomeoneElsesClass"
    assert not allowed(own)
    monkeypatch.setenv("OSAL_EXTRA_TARGETS", f" {own} ,other.Thing")
    assert allowed(own) and allowed("other.Thing")
    assert not allowed("numpy.savetxt")  # naming one class allows that one only
    with pytest.raises(ConfigError, match="OSAL_EXTRA_TARGETS"):
        check_overrides(["strategy.selector._target_=numpy.savetxt"])
