"""Every user-facing knob is checked before any training starts: one sentence naming the value and the fix."""

import pytest

from osal.errors import ConfigError, OsalError
from osal.loop.experiment import Experiment

from conftest import FAST, compose_config
from layouts import write_image_folder


@pytest.mark.slow
@pytest.mark.parametrize("override, words", [
    ("mismatch=0", "mismatch=0 "),
    ("mismatch=1", "mismatch=1 "),
    ("mismatch=-0.3", "mismatch=-0.3"),
    ("mismatch=1.2", "mismatch=1.2"),
    ("al.query_size=0", "al.query_size=0"),
    ("al.rounds=0", "al.rounds=0"),
    ("al.init_percent=0", "al.init_percent=0"),
    ("al.init_percent=150", "al.init_percent=150"),
    ("al.init_percent=0.5", "no example of known class"),
    ("strategy.detector.module.temperature=0", "temperature=0"),
    ("strategy.detector.module.temperature=-1", "temperature=-1"),
    ("strategy.selector.n_components=1", "n_components=1"),
    ("trainer.max_epochs=0", "trainer.max_epochs=0"),
    ("al.query_size=5000", "larger than the unlabeled pool"),
    ("data.pipeline=fast", "data.pipeline='fast'"),
])
def test_bad_knob_is_refused_before_training(override, words, tmp_path):
    cfg = compose_config(FAST + [override])
    with pytest.raises(ConfigError) as error:
        Experiment(cfg, tmp_path).run()
    message = str(error.value)
    assert words in message and "\n" not in message
    assert not (tmp_path / "metrics.csv").exists()  # nothing was trained


def test_data_dir_holding_a_different_dataset_is_named(tmp_path):
    write_image_folder(tmp_path / "tiny-imagenet-200", classes=5)  # not the Tiny-ImageNet layout at all
    cfg = compose_config(FAST + ["dataset=tinyimagenet", f"data_dir={tmp_path}"])
    with pytest.raises(OsalError, match="wnids.txt"):
        Experiment(cfg, tmp_path / "run").run()


def test_a_dataset_with_the_wrong_number_of_classes_is_refused(tmp_path):
    write_image_folder(tmp_path, classes=5, train_per_class=4)
    # an image folder posing as CIFAR-10 by its config's class count
    cfg = compose_config(FAST + ["dataset=imagefolder", f"data_dir={tmp_path}", "+dataset.num_classes=10",
                                 "al.init_percent=50", "mismatch=0.4", "al.query_size=2"])
    with pytest.raises(ConfigError, match="expects 10 classes but data_dir=.* holds 5"):
        Experiment(cfg, tmp_path / "run").run()
