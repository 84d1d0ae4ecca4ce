"""Pretrained backbones: torchvision weights, timm models, or a local checkpoint file (`model.pretrained`).

`load_backbone(spec, encoder, channels)` gives a `Backbone`: the feature extractor (its classification head
removed), how wide its features are, the input side and normalisation its weights expect, and an identity
string that changes whenever its weights do (what the frozen-feature cache is keyed by).

Which source a spec names:
    * a path to an existing file, or a name ending in .pt/.pth/.ckpt/.safetensors: a local checkpoint of the
      configured encoder (`model.encoder`): a plain state_dict, a Lightning checkpoint, or a dict of osal's own
      (`{"state_dict": ..., "input": {"size", "mean", "std"}}`, what scripts/pretrain_backbone.py writes);
    * `<Model>_Weights.<NAME>` (e.g. ResNet18_Weights.IMAGENET1K_V1): torchvision's weights, through
      torchvision's own API (downloaded into torch.hub's cache where the network allows);
    * `timm:<name>` (e.g. timm:resnet18.a1_in1k): a timm model with its pretrained weights (downloaded into
      the Hugging Face cache where the network allows).
Without network, the error says which file to put where.
"""

import copy
import hashlib
import os
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from osal.errors import ConfigError, OsalError, brief

LOCAL_SUFFIXES = (".pt", ".pth", ".ckpt", ".safetensors")


class PretrainedError(OsalError):
    """A pretrained backbone cannot be had as configured: missing weights, a wrong file, no network."""


@dataclass
class Backbone:
    """A feature extractor with what its weights expect of their input."""

    encoder: nn.Module               # images normalised as `mean`/`std` say, `size` x `size` -> (B, out_dim)
    out_dim: int
    size: Optional[int]              # the side the weights were trained at; None: as the data come
    mean: Optional[Sequence[float]]  # the weights' normalisation; None: the dataset's
    std: Optional[Sequence[float]]
    channels: int                    # input channels the weights take (a grey image is repeated to 3)
    identity: str                    # changes whenever the weights do


def source_of(spec: str) -> str:
    """'file', 'torchvision' or 'timm': which kind of weights `spec` names."""
    spec = str(spec)
    if spec.startswith("timm:"):
        return "timm"
    if os.path.isfile(os.path.expanduser(spec)) or spec.lower().endswith(LOCAL_SUFFIXES) or os.sep in spec:
        return "file"
    if "_Weights." in spec:
        return "torchvision"
    raise ConfigError(f"model.pretrained={spec!r} names no weights osal can load: give a checkpoint file, "
                      "a torchvision weights name (e.g. ResNet18_Weights.IMAGENET1K_V1) or timm:<model name> "
                      "(e.g. timm:resnet18.a1_in1k)")


_LOADED: dict = {}


def load_backbone(spec: str, encoder: Optional[Callable[[], nn.Module]] = None, channels: int = 3) -> Backbone:
    """The backbone `spec` names (module docstring), loaded once per process; every call returns its own copy
    of the network, so that a fine-tuned copy never changes the next one.

    `encoder`: the configured encoder's factory (a local checkpoint's architecture); `channels`: the data's.
    """
    key = (str(spec), repr(encoder), int(channels))
    if key not in _LOADED:
        kind = source_of(spec)
        if kind == "file":
            if encoder is None:
                raise ConfigError(f"model.pretrained={spec} is a checkpoint file, which needs model.encoder "
                                  "(its architecture) to load into")
            _LOADED[key] = _from_file(os.path.expanduser(str(spec)), encoder)
        elif kind == "torchvision":
            _LOADED[key] = _from_torchvision(str(spec))
        else:
            _LOADED[key] = _from_timm(str(spec)[len("timm:"):])
    backbone = _LOADED[key]
    return Backbone(copy.deepcopy(backbone.encoder), backbone.out_dim, backbone.size, backbone.mean, backbone.std,
                    backbone.channels, backbone.identity)


# -- a local checkpoint ----------------------------------------------------------------------
def _file_hash(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def read_checkpoint(path: str) -> tuple[dict, dict]:
    """(state_dict, input description) of a checkpoint file, read without running code from it."""
    if not os.path.isfile(path):
        raise PretrainedError(f"model.pretrained={path} does not exist; give the path of a checkpoint file "
                              "(a state_dict or a Lightning checkpoint)")
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file
            content: Any = load_file(path)
        else:  # weights_only: a file from someone else runs no code of theirs here
            content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - every unreadable file gets the same sentence
        raise PretrainedError(f"model.pretrained={path} is not a checkpoint torch can read safely ({brief(error)}); "
                              "give a state_dict or a Lightning checkpoint saved with torch.save") from None
    if not isinstance(content, dict):
        raise PretrainedError(f"model.pretrained={path} holds a {type(content).__name__}, not a state_dict; "
                              "save the network's state_dict() (or a Lightning checkpoint)")
    described = content.get("input") if isinstance(content.get("input"), dict) else {}
    state = content.get("state_dict", content)
    state = {k: v for k, v in state.items() if torch.is_tensor(v)}
    if not state:
        raise PretrainedError(f"model.pretrained={path} holds no weights; save the network's state_dict() "
                              "(or a Lightning checkpoint)")
    return state, described


def matching_prefix(state: dict, wanted: dict) -> tuple[str, int]:
    """The key prefix under which `state` holds most of `wanted`'s keys ('network.encoder.' for a Lightning
    checkpoint of an osal module, '' for an encoder's own state_dict), and how many it holds."""
    best, found = "", 0
    candidates = {""}
    for key in state:
        for name in wanted:
            if key.endswith(name):
                candidates.add(key[: len(key) - len(name)])
    for prefix in sorted(candidates):
        n = sum(prefix + name in state for name in wanted)
        if n > found:
            best, found = prefix, n
    return best, found


def _from_file(path: str, encoder_factory: Callable[[], nn.Module]) -> Backbone:
    state, described = read_checkpoint(path)
    encoder = encoder_factory()
    wanted = encoder.state_dict()
    prefix, found = matching_prefix(state, wanted)
    architecture = type(encoder).__name__
    missing = [name for name in wanted if prefix + name not in state]
    wrong_shape = [name for name in wanted
                   if prefix + name in state and state[prefix + name].shape != wanted[name].shape]
    if missing or wrong_shape:
        first = wrong_shape[0] if wrong_shape else None
        what = (f"{len(missing)} of its {len(wanted)} weights are missing (e.g. {missing[0]})" if missing else
                f"{len(wrong_shape)} weights have other shapes (e.g. {first}: "
                f"{tuple(state[prefix + first].shape)} in the file, {tuple(wanted[first].shape)} here)")
        raise PretrainedError(f"model.pretrained={path} does not fit the configured encoder {architecture}: {what}; "
                              "choose the model (and model.encoder.width) it was trained with, or a checkpoint of "
                              "this architecture")
    encoder.load_state_dict({name: state[prefix + name] for name in wanted})
    size = described.get("size")
    mean, std = described.get("mean"), described.get("std")
    return Backbone(encoder, int(encoder.out_dim), int(size) if size else None, mean, std,
                    channels=_in_channels(encoder), identity=f"file:{_file_hash(path)}")


def _in_channels(encoder: nn.Module) -> int:
    first = next((m for m in encoder.modules() if isinstance(m, nn.Conv2d)), None)
    return int(first.in_channels) if first is not None else 3


def _drop_classifier(model: nn.Module) -> int:
    """Replace the last Linear layer (the classification head) by the identity; its input width."""
    last = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last = name
    if last is None:
        raise PretrainedError(f"{type(model).__name__} has no linear classification head to remove")
    parent_name, _, child = last.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    width = parent.get_submodule(child).in_features
    setattr(parent, child, nn.Identity())
    return int(width)


# -- torchvision ------------------------------------------------------------------------------
def _from_torchvision(spec: str) -> Backbone:
    import torchvision.models as tvm
    try:
        weights = tvm.get_weight(spec)
    except (ValueError, KeyError, AttributeError):
        raise ConfigError(f"model.pretrained={spec} is not a torchvision weights name; see "
                          "torchvision.models.list_models() and their *_Weights enums "
                          "(e.g. ResNet18_Weights.IMAGENET1K_V1)") from None
    name = next(m for m in tvm.list_models() if tvm.get_model_weights(m) is type(weights))
    model = tvm.get_model(name, weights=None)
    try:
        state = weights.get_state_dict(progress=False, check_hash=True)
    except Exception as error:  # noqa: BLE001 - no network, a proxy, a half-written file: the same way out
        file = os.path.basename(weights.url)
        where = os.path.join(torch.hub.get_dir(), "checkpoints")
        raise PretrainedError(f"torchvision could not get the weights {spec} ({brief(error)}); download {weights.url} "
                              f"where there is network and put {file} into {where} (torch.hub's cache, "
                              "$TORCH_HOME/hub/checkpoints)") from None
    model.load_state_dict(state)
    width = _drop_classifier(model)
    preset = weights.transforms()
    size = getattr(preset, "crop_size", None)
    size = int(size[0] if isinstance(size, (list, tuple)) else size) if size else None
    return Backbone(model, width, size, list(preset.mean), list(preset.std), channels=3,
                    identity=f"torchvision:{spec}:{os.path.basename(weights.url)}")


# -- timm -------------------------------------------------------------------------------------
def _from_timm(name: str) -> Backbone:
    try:
        import timm
    except ImportError:
        raise ConfigError(f"model.pretrained=timm:{name} needs timm; install it with pip install 'osal[pretrained]' "
                          "(or pip install timm)") from None
    if not timm.list_models(name.split(".")[0], pretrained=True) and not timm.is_model(name):
        raise ConfigError(f"model.pretrained=timm:{name} is not a timm model; see timm.list_models(pretrained=True)")
    try:
        model = timm.create_model(name, pretrained=True, num_classes=0)
    except Exception as error:  # noqa: BLE001 - offline hub, a missing file: one way out
        cfg = timm.models.get_pretrained_cfg(name)
        hub = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
        from huggingface_hub.constants import HF_HUB_CACHE
        where = (f"download the Hugging Face repository {hub} where there is network (hf download {hub}) and copy "
                 f"its folder models--{hub.replace('/', '--')} into {HF_HUB_CACHE}" if hub else
                 "give a local checkpoint file instead")
        raise PretrainedError(f"timm could not get the weights of {name} ({brief(error)}); {where}") from None
    config = timm.data.resolve_data_config({}, model=model)
    size = int(config["input_size"][-1])
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    return Backbone(model, int(model.num_features), size, list(config["mean"]), list(config["std"]),
                    channels=int(config["input_size"][0]),
                    identity=f"timm:{name}:{cfg.get('hf_hub_id') or ''}:{cfg.get('tag') or ''}")


# -- the backbone as an encoder of dataset-normalised images ----------------------------------
class PretrainedEncoder(nn.Module):
    """A Backbone fed the dataset's normalised images: undoes that normalisation, resizes to the weights' side,
    repeats a grey channel to three, normalises as the weights expect. `out_dim` features."""

    def __init__(self, backbone: Backbone, data_mean: Optional[Sequence[float]] = None,
                 data_std: Optional[Sequence[float]] = None) -> None:
        super().__init__()
        self.backbone = backbone.encoder
        self.out_dim = backbone.out_dim
        self.size, self.channels = backbone.size, backbone.channels
        restate = backbone.mean is not None and backbone.std is not None
        if restate and (data_mean is None or data_std is None):
            raise ConfigError("a pretrained backbone with its own normalisation needs dataset.mean and dataset.std "
                              "(the normalisation the images arrive with); set them")
        self.restate = restate
        if restate:
            self.register_buffer("data_mean", _column(data_mean), persistent=False)
            self.register_buffer("data_std", _column(data_std), persistent=False)
            self.register_buffer("mean", _column(backbone.mean), persistent=False)
            self.register_buffer("std", _column(backbone.std), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.restate:
            x = x * self.data_std + self.data_mean
        if x.shape[1] == 1 and self.channels == 3:
            x = x.expand(-1, 3, -1, -1)
        if self.size and x.shape[-1] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        if self.restate:
            x = (x - self.mean) / self.std
        return self.backbone(x)


def _column(values: Sequence[float]) -> torch.Tensor:
    return torch.tensor([float(v) for v in values]).view(1, -1, 1, 1)
