"""Pretrained backbones (model.pretrained) and frozen features (model.freeze): every weights source, the errors,
the feature cache, and whole runs on frozen features. Every checkpoint is made here; nothing is downloaded."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import FAST, ROOT, compose_config

SRC = str(ROOT / "src")


def small_encoder(width=16, channels=1, seed=0):
    from osal.models.small_cnn import SmallCNNEncoder
    torch.manual_seed(seed)
    return SmallCNNEncoder(in_channels=channels, width=width)


def encoder_factory(width=16, channels=1):
    import functools

    from osal.models.small_cnn import SmallCNNEncoder
    return functools.partial(SmallCNNEncoder, in_channels=channels, width=width)


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# -- a local checkpoint file -------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["plain", "lightning", "osal"])
def test_a_local_checkpoint_loads_into_the_configured_encoder(tmp_path, layout):
    from osal.models.pretrained import load_backbone
    trained = small_encoder(seed=3)
    state = trained.state_dict()
    if layout == "plain":
        content = state
    elif layout == "lightning":  # an osal module's checkpoint: the encoder under net.network... with other keys
        content = {"state_dict": {f"net.encoder.{k}": v for k, v in state.items()} | {"net.head.weight": torch.ones(2)},
                   "epoch": 3, "global_step": 10}
    else:
        content = {"state_dict": state, "input": {"size": 16, "mean": [0.5], "std": [0.25]}}
    path = tmp_path / f"{layout}.ckpt"
    torch.save(content, path)
    backbone = load_backbone(str(path), encoder_factory(), channels=1)
    assert same_weights(backbone.encoder, trained)
    assert not same_weights(backbone.encoder, small_encoder(seed=4))  # the power of the check above
    assert backbone.out_dim == 64 and backbone.identity.startswith("file:")
    if layout == "osal":  # the input the weights were trained on comes with them
        assert (backbone.size, backbone.mean, backbone.std) == (16, [0.5], [0.25])
    else:
        assert backbone.size is None and backbone.mean is None
    # each call hands out its own copy: fine-tuning one changes no other
    again = load_backbone(str(path), encoder_factory(), channels=1)
    with torch.no_grad():
        next(again.encoder.parameters()).add_(1.0)
    assert same_weights(load_backbone(str(path), encoder_factory(), channels=1).encoder, trained)


def test_a_missing_file_and_a_wrong_architecture_are_one_sentence_each(tmp_path):
    from osal.models.pretrained import PretrainedError, load_backbone
    with pytest.raises(PretrainedError, match=r"nope\.pt does not exist; give the path of a checkpoint file"):
        load_backbone(str(tmp_path / "nope.pt"), encoder_factory(), channels=1)
    path = tmp_path / "wide.pt"
    torch.save(small_encoder(width=16).state_dict(), path)
    with pytest.raises(PretrainedError, match=r"does not fit the configured encoder SmallCNNEncoder: 15 weights have "
                                              r"other shapes .*choose the model \(and model.encoder.width\)"):
        load_backbone(str(path), encoder_factory(width=8), channels=1)
    from osal.models.resnet import resnet18_encoder
    resnet = tmp_path / "resnet.pt"
    torch.save(resnet18_encoder(in_channels=1, width=8).state_dict(), resnet)
    with pytest.raises(PretrainedError, match=r"weights are missing \(e.g. body"):
        load_backbone(str(resnet), encoder_factory(), channels=1)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(PretrainedError, match=r"not a checkpoint torch can read safely"):
        load_backbone(str(junk), encoder_factory(), channels=1)


def test_a_name_of_no_known_source_is_refused():
    from osal.errors import ConfigError
    from osal.models.pretrained import load_backbone
    with pytest.raises(ConfigError, match=r"model.pretrained='imagenet' names no weights osal can load"):
        load_backbone("imagenet", encoder_factory(), channels=1)
    with pytest.raises(ConfigError, match=r"is not a torchvision weights name"):
        load_backbone("ResNet18_Weights.NO_SUCH", encoder_factory(), channels=1)


# -- torchvision and timm, from their own caches ------------------------------------------------
def run_python(code, env):
    """Python in a fresh process (the libraries read their cache settings when imported), offline: an
    unreachable proxy makes any download fail at once instead of fetching from the network."""
    full = {**os.environ, "PYTHONPATH": SRC, "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
            "https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "1", **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=300)


TORCHVISION = """
import torch, torchvision
from osal.models.pretrained import PretrainedError, load_backbone
try:
    backbone = load_backbone("ResNet18_Weights.IMAGENET1K_V1")
except PretrainedError as error:
    print("ERROR", error)
else:
    reference = torchvision.models.resnet18()
    reference.load_state_dict(torch.load({file!r}))
    print("LOADED", backbone.out_dim, backbone.size, backbone.mean,
          torch.equal(backbone.encoder.conv1.weight, reference.conv1.weight),
          type(backbone.encoder.fc).__name__)
"""


def test_torchvision_weights_load_from_torch_hubs_cache_and_say_where_they_go(tmp_path):
    import torchvision
    hub = tmp_path / "torch"
    file = hub / "hub" / "checkpoints" / "resnet18-f37072fd.pth"  # the name torchvision's weights enum gives
    result = run_python(TORCHVISION.format(file=str(file)), {"TORCH_HOME": str(hub)})
    assert "ERROR torchvision could not get the weights ResNet18_Weights.IMAGENET1K_V1" in result.stdout, result.stderr
    assert f"put resnet18-f37072fd.pth into {file.parent}" in result.stdout
    file.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18().state_dict(), file)
    result = run_python(TORCHVISION.format(file=str(file)), {"TORCH_HOME": str(hub)})
    assert "LOADED 512 224 [0.485, 0.456, 0.406] True Identity" in result.stdout, result.stdout + result.stderr


TIMM = """
import torch
from osal.models.pretrained import PretrainedError, load_backbone
try:
    backbone = load_backbone("timm:resnet18.a1_in1k")
except PretrainedError as error:
    print("ERROR", error)
else:
    from safetensors.torch import load_file
    reference = load_file({file!r})
    same = torch.equal(backbone.encoder.conv1.weight, reference["conv1.weight"])
    print("LOADED", backbone.out_dim, backbone.size, same)
"""


def test_timm_weights_load_from_the_hugging_face_cache_and_say_where_they_go(tmp_path):
    timm = pytest.importorskip("timm", reason="timm is an optional extra (pip install 'osal[pretrained]')")
    from safetensors.torch import save_file
    cache = tmp_path / "hf" / "hub"
    repo = cache / "models--timm--resnet18.a1_in1k"
    file = repo / "snapshots" / ("0" * 40) / "model.safetensors"
    env = {"HF_HOME": str(tmp_path / "hf")}
    result = run_python(TIMM.format(file=str(file)), env)
    assert "ERROR timm could not get the weights of resnet18.a1_in1k" in result.stdout, result.stderr
    assert f"copy its folder models--timm--resnet18.a1_in1k into {cache}" in result.stdout
    file.parent.mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text("0" * 40)  # the layout the Hugging Face hub's download leaves
    save_file(timm.create_model("resnet18.a1_in1k", pretrained=False).state_dict(), str(file))
    result = run_python(TIMM.format(file=str(file)), env)
    assert "LOADED 512 224 True" in result.stdout, result.stdout + result.stderr


# -- a backbone as the encoder of dataset-normalised images --------------------------------------
def test_the_pretrained_encoder_feeds_the_backbone_what_its_weights_expect():
    from osal.models.pretrained import Backbone, PretrainedEncoder

    class Seen(torch.nn.Module):
        out_dim = 3

        def forward(self, x):
            self.x = x
            return x.mean(dim=(2, 3))
    seen = Seen()
    backbone = Backbone(seen, 3, size=8, mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25], channels=3, identity="t")
    encoder = PretrainedEncoder(backbone, data_mean=[0.2], data_std=[0.1])
    pixels = torch.rand(2, 1, 4, 4)
    encoder((pixels - 0.2) / 0.1)  # a grey 4x4 image as the datamodule normalises it
    assert seen.x.shape == (2, 3, 8, 8)
    resized = torch.nn.functional.interpolate(pixels.expand(-1, 3, -1, -1), size=(8, 8), mode="bilinear")
    expected = (resized - 0.5) / 0.25
    assert torch.allclose(seen.x, expected, atol=1e-5)
    from osal.errors import ConfigError
    with pytest.raises(ConfigError, match="needs dataset.mean and dataset.std"):
        PretrainedEncoder(backbone)


# -- frozen features ------------------------------------------------------------------------------
def checkpoint(tmp_path, width=16, channels=1, name="backbone.pt"):
    path = tmp_path / name
    torch.save(small_encoder(width, channels, seed=7).state_dict(), path)
    return path


def test_features_are_embedded_once_and_read_back_keyed_by_weights_and_images(tmp_path):
    from osal.models.frozen import FrozenFeatures, embed_images
    path = checkpoint(tmp_path)
    cache = tmp_path / "cache"
    frozen = FrozenFeatures(str(path), encoder_factory(), 1, str(cache), batch_size=7)
    images = np.random.default_rng(0).integers(0, 256, (20, 8, 8, 1), dtype=np.uint8)
    first = frozen.embed(images, [0.5], [0.25])
    files = list((cache / "features").glob("*.npy"))
    assert first.shape == (20, 64) and first.dtype == np.float32 and len(files) == 1
    # in batches of 7 as one batch of 20: embedding is per image
    whole = embed_images(frozen.backbone(), images, [0.5], [0.25], batch_size=20)
    np.testing.assert_allclose(first, whole, rtol=1e-5, atol=1e-5)
    # the second time, read from the file: a changed file proves it was read, not recomputed
    np.save(files[0], first + 1)
    assert np.array_equal(frozen.embed(images, [0.5], [0.25]), first + 1)
    # other images, other weights: other keys
    frozen.embed(images[::-1].copy(), [0.5], [0.25])
    other = FrozenFeatures(str(checkpoint(tmp_path, name="other.pt")), encoder_factory(), 1, str(cache))
    torch.save(small_encoder(seed=8).state_dict(), tmp_path / "other.pt")
    other.embed(images, [0.5], [0.25])
    assert len(list((cache / "features").glob("*.npy"))) == 3
    # a damaged file is embedded again, not read
    files[0].write_bytes(b"damaged")
    np.testing.assert_allclose(frozen.embed(images, [0.5], [0.25]), first, rtol=1e-5, atol=1e-5)


def frozen_overrides(tmp_path, *more):
    path = checkpoint(tmp_path)
    return FAST + [f"model.pretrained={path}", "model.freeze=true", f"cache_dir={tmp_path / 'cache'}",
                   "al.rounds=2", "trainer.max_epochs=3", *more]


def test_a_frozen_run_trains_heads_on_features_and_resumes_as_it_ran(tmp_path):
    from osal.loop.data import open_set_data
    from osal.loop.experiment import Experiment

    from conftest import assert_same_records
    split, datamodule = open_set_data(compose_config(frozen_overrides(tmp_path)))
    assert datamodule.frozen and tuple(datamodule.train_images.shape) == (len(datamodule.pool), 64)
    x, _, _ = next(iter(datamodule.pool_dataloader()))
    assert x.shape[1:] == (64,)
    Experiment(compose_config(frozen_overrides(tmp_path)), tmp_path / "through").run()
    Experiment(compose_config(frozen_overrides(tmp_path, "al.rounds=1")), tmp_path / "resumed").run()
    Experiment(compose_config(frozen_overrides(tmp_path)), tmp_path / "resumed").run()
    assert_same_records(tmp_path / "through", tmp_path / "resumed", rounds=2)
    # the heads are small networks on the features: a classifier is a Linear layer on 64 features
    from osal.records.metrics import read_metrics
    assert [r["round"] for r in read_metrics(tmp_path / "through" / "metrics.csv")] == [0, 1, 2]


@pytest.mark.slow
@pytest.mark.parametrize("strategy", sorted(p.stem for p in (ROOT / "conf" / "strategy").glob("*.yaml")))
def test_every_strategy_runs_on_frozen_features(tmp_path, strategy):
    from osal.loop.experiment import Experiment
    from osal.records.metrics import read_metrics
    cfg = compose_config(frozen_overrides(tmp_path, f"strategy={strategy}", "al.rounds=1"))
    Experiment(cfg, tmp_path / "run").run()
    rows = read_metrics(tmp_path / "run" / "metrics.csv")
    assert [r["round"] for r in rows] == [0, 1] and rows[1]["queried"] == 40


def test_freeze_without_weights_and_a_missing_file_are_refused_before_the_data(tmp_path):
    from conftest import run_train
    result = run_train("model.freeze=true", f"hydra.run.dir={tmp_path / 'a'}")
    assert result.returncode != 0
    assert "model.freeze=true needs model.pretrained" in result.stderr + result.stdout
    result = run_train(f"model.pretrained={tmp_path / 'nope.pt'}", "model.freeze=true",
                       f"hydra.run.dir={tmp_path / 'b'}")
    assert result.returncode != 0
    out = result.stderr + result.stdout
    assert "nope.pt does not exist" in out and "Traceback" not in out
    assert not Path(tmp_path / "b" / "metrics.csv").exists()


# -- annotation with a backbone ------------------------------------------------------------------
def test_an_annotation_project_suggests_from_frozen_features_of_a_backbone_it_keeps(tmp_path):
    from osal.annotate import session
    from osal.annotate.create import create_project
    from osal.annotate.project import CONFIG_FILE, Project
    from osal.stored import DamagedFileError

    from annotation_helpers import DIGITS, KNOWN, fill_sheet
    from annotation_helpers import FAST as ANNOTATE_FAST
    folder = tmp_path / "digits"
    truth = dict(DIGITS.write_digits(str(folder), count=120, known=KNOWN, initial=2))
    assert truth
    backbone = checkpoint(tmp_path, name="mine.pt")
    directory = tmp_path / "project"
    create_project(directory, folder / "images", list(KNOWN), folder / "initial.csv",
                   ANNOTATE_FAST + [f"model.pretrained={backbone}", "model.freeze=true"])
    # the project keeps its own copy of the backbone and names it by its file name
    assert (directory / "backbone.pt").read_bytes() == backbone.read_bytes()
    assert "pretrained: backbone.pt" in (directory / CONFIG_FILE).read_text()
    backbone.unlink()  # nothing outside the project is read again
    batch = session.next_batch(Project(directory))
    assert len(list((directory / "features").glob("*.npy"))) == 1  # the pool, embedded once
    (sheet,) = (directory / "batches").glob("batch_*/answers.csv")
    assert batch
    fill_sheet(sheet, (folder, truth))
    session.import_answers(Project(directory), sheet)
    session.next_batch(Project(directory))
    assert len(list((directory / "features").glob("*.npy"))) == 1  # read back, not embedded again
    # a config.yaml pointing outside the project is refused
    text = (directory / CONFIG_FILE).read_text().replace("pretrained: backbone.pt", "pretrained: ../mine.pt")
    (directory / CONFIG_FILE).write_text(text)
    with pytest.raises(DamagedFileError, match=r"model.pretrained=../mine.pt lies outside the project"):
        Project(directory)


# -- runs recorded before these knobs existed --------------------------------------------------------
def without_new_knobs(config):
    """A resolved config as runs recorded before model.pretrained/model.freeze saved it: the knobs absent from the
    model config and every copy of it, and no data.features."""
    import copy
    old = copy.deepcopy(config)
    old["data"].pop("features")

    def strip(node):
        if isinstance(node, dict):
            if "encoder" in node and "bottleneck_dim" in node:  # a model config, or a copy of it
                for key in ("pretrained", "freeze", "input_mean", "input_std"):
                    node.pop(key, None)
            for value in node.values():
                strip(value)
    strip(old)
    return old


def test_runs_recorded_before_the_backbone_knobs_resume_and_count_as_copies():
    from omegaconf import OmegaConf

    from osal.records.settings import differences_that_matter
    from osal.report.duplicates import result_settings
    now = OmegaConf.to_container(compose_config(FAST + ["dataset=mnist", "strategy=lfosa"]), resolve=True)
    before = without_new_knobs(now)
    assert "freeze" not in before["classifier"]["network"] and "freeze" in now["classifier"]["network"]
    assert differences_that_matter(before, now) == []
    assert result_settings(before) == result_settings(now)
    # a frozen run is another run, and so is one that starts from weights
    frozen = OmegaConf.to_container(compose_config(FAST + ["dataset=mnist", "strategy=lfosa", "model.freeze=true",
                                                           "model.pretrained=w.pt"]), resolve=True)
    assert {"model.freeze", "model.pretrained", "classifier.network.freeze"} <= set(
        differences_that_matter(before, frozen))
    assert result_settings(before) != result_settings(frozen)


def test_an_export_of_a_frozen_project_holds_its_backbone(tmp_path):
    from osal.annotate.create import create_project
    from osal.annotate.export import export
    from osal.annotate.project import Project

    from annotation_helpers import DIGITS, KNOWN
    from annotation_helpers import FAST as ANNOTATE_FAST
    folder = tmp_path / "digits"
    DIGITS.write_digits(str(folder), count=60, known=KNOWN, initial=2)
    backbone = checkpoint(tmp_path, name="mine.pt")
    directory = tmp_path / "project"
    create_project(directory, folder / "images", list(KNOWN), folder / "initial.csv",
                   ANNOTATE_FAST + [f"model.pretrained={backbone}", "model.freeze=true"])
    out = Path(export(Project(directory), str(tmp_path / "export")))
    assert (out / "models" / "backbone.pt").read_bytes() == backbone.read_bytes()
    config = (out / "models" / "config.yaml").read_text()
    assert "pretrained: backbone.pt" in config and str(tmp_path) not in config
    assert "heads on the features" in (out / "models" / "model.json").read_text()


def test_the_frozen_campaign_is_the_cpu_protocol_on_the_kept_backbone():
    """experiment=frozen_campaign: 108 runs (3 stages, seeds 1-3), each the CIFAR-10 CPU protocol of
    experiment=cifar10_recall with heads on the kept backbone's features; the backbone loads into its encoder."""
    from osal.campaign.grid import compose_experiment, expand
    from osal.models.pretrained import load_backbone
    grid = expand(compose_experiment(["experiment=frozen_campaign"]))
    assert len(grid) == 27 + 45 + 36 and grid[0].name == "cifar10_cpu_mismatch0.2_lfosa_seed1"
    run = next(r for r in grid if r.name == "cifar10_cpu_mismatch0.3_eoal_seed2")
    cfg = compose_experiment(["experiment=frozen_campaign", *run.overrides], with_hydra=False)
    alone = compose_experiment(["experiment=cifar10_recall", "mismatch=0.3", "strategy=eoal", "seed=2",
                                "model.encoder.width=32", "model.freeze=true", "trainer=cpu",
                                f"model.pretrained={cfg.model.pretrained}"], with_hydra=False)
    from omegaconf import OmegaConf
    strip = {"campaign", "hydra"}
    assert ({k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k not in strip} ==
            {k: v for k, v in OmegaConf.to_container(alone, resolve=True).items() if k not in strip})
    backbone = load_backbone(str(ROOT / cfg.model.pretrained), encoder_factory(width=32, channels=3), channels=3)
    assert backbone.out_dim == 128 and backbone.size == 32 and len(backbone.mean) == 3
