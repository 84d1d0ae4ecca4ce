"""Every knob of every config group, with what it accepts: checked before any data is read, so a bad value
gets one sentence naming it and the fix instead of a numpy, torch or Lightning traceback later.

A rule per dotted key (`*` stands for any one level). tests/test_knobs.py walks every leaf of every composed
config group and fails on a knob without a rule, so a new knob comes with its check.
"""

import fnmatch
import math
import os
from dataclasses import dataclass
from typing import Any, Optional

from omegaconf import DictConfig, ListConfig, OmegaConf

from osal.errors import ConfigError
from osal.targets import check_config_targets

MISSING = object()


@dataclass(frozen=True)
class Rule:
    """What a knob accepts: `kind` (int, number, bool, text, choice, numbers) with its limits."""
    kind: str
    low: Optional[float] = None
    high: Optional[float] = None
    low_open: bool = False  # low itself is refused
    high_open: bool = False  # high itself is refused
    choices: tuple = ()  # a choice's values; for a number, named values it also takes ("auto")
    nullable: bool = False
    example: Any = None  # a valid value, for the message
    why: str = ""  # what the knob is, for the message

    def problem(self, value: Any) -> Optional[str]:
        """Why `value` is refused (the end of a sentence that starts with the knob), or None."""
        if value is None:
            return None if self.nullable else "must be set"
        if self.kind == "bool":
            return None if isinstance(value, bool) else "must be true or false"
        if self.kind == "text":
            return None if isinstance(value, str) else "must be text"
        named = not isinstance(value, bool) and value in self.choices  # True == 1: a flag is no channel count
        if self.kind == "choice":
            return None if named else f"must be one of {', '.join(map(str, self.choices))}"
        if named:  # a named value a number knob also takes ("auto")
            return None
        if self.kind == "numbers":
            if not isinstance(value, (list, tuple, ListConfig)) or not value:
                return "must be a list of numbers, e.g. [0.5, 0.5, 0.5]"
            for item in value:
                problem = self.number_problem(item, "each entry")
                if problem:
                    return problem
            return None
        return self.number_problem(value, "")

    def number_problem(self, value: Any, subject: str) -> Optional[str]:
        lead = f"{subject} " if subject else ""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{lead}must be {'a whole number' if self.kind == 'int' else 'a number'}"
        if self.kind == "int" and not isinstance(value, int):
            return f"{lead}must be a whole number"
        if not math.isfinite(float(value)):
            return f"{lead}must be a finite number"
        too_low = self.low is not None and (value < self.low or (self.low_open and value == self.low))
        too_high = self.high is not None and (value > self.high or (self.high_open and value == self.high))
        if too_low or too_high:
            return f"{lead}must be {self.range_words()}"
        return None

    def range_words(self) -> str:
        if self.low is not None and self.high is not None:
            left, right = ("(" if self.low_open else "["), (")" if self.high_open else "]")
            return f"in {left}{fmt(self.low)}, {fmt(self.high)}{right}"
        if self.low is not None:
            if self.low == 0:
                return "positive" if self.low_open else "zero or more"
            return f"{'above' if self.low_open else 'at least'} {fmt(self.low)}"
        return f"{'below' if self.high_open else 'at most'} {fmt(self.high)}"


def fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


def integer(low: Optional[float] = None, high: Optional[float] = None, **kw) -> Rule:
    return Rule("int", low, high, **kw)


def number(low: Optional[float] = None, high: Optional[float] = None, **kw) -> Rule:
    return Rule("number", low, high, **kw)


def flag(**kw) -> Rule:
    return Rule("bool", **kw)


def text(**kw) -> Rule:
    return Rule("text", **kw)


def choice(*choices: Any, **kw) -> Rule:
    return Rule("choice", choices=tuple(choices), **kw)


FINCH_RELEASE = choice("0.1.9", "0.2.3", example="0.1.9",
                       why="the finch-clust release EOAL reproduces (osal.clustering)")
PROBABILITY = dict(low=0, high=1)
WEIGHT = number(0, example=0.1, why="a loss weight")
PRECISIONS = ("64-true", "32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64", "32", "16", "bf16",
              64, 32, 16)
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")

DDP_STRATEGIES = ("auto", "ddp")

KNOBS: dict[str, Rule] = {
    # the run
    "seed": integer(0, 2**32 - 1, example=1, why="the run's seed"),
    "fresh": flag(example="true"),
    "estimate": flag(example="false"),
    "deadline": number(0, nullable=True, example="$(( $(date +%s) + 3600 ))",
                       why="a Unix time in seconds, or null for no deadline"),
    "data_dir": text(example="data"),
    "cache_dir": text(example="data/.osal_cache"),
    # the open-set protocol (mismatch, openness and init_percent have their own sentences: osal.data.open_set)
    "al.init_stratified": flag(example="true"),
    "al.query_size": integer(1, example=1500, why="examples per query"),
    "al.rounds": integer(1, example=10, why="the number of queries"),
    # data loading
    "data.batch_size": integer(1, example=128),
    "data.inference_batch_size": integer(1, example=1024),
    "data.num_workers": integer(0, example=0),
    "data.pin_memory": flag(example="false"),
    "data.pipeline": choice("batched", "per_sample", example="batched"),
    "data.memory_budget": number(0, low_open=True, nullable=True, example="8e9", why="bytes"),
    # the dataset
    "dataset.name": text(example="cifar10"),
    "dataset.num_classes": integer(3, nullable=True, example=10),
    "dataset.channels": choice(1, 3, example=3),
    "dataset.image_size": integer(1, nullable=True, example=32),
    "dataset.mean": Rule("numbers", nullable=True, example="[0.5, 0.5, 0.5]"),
    "dataset.std": Rule("numbers", 0, low_open=True, nullable=True, example="[0.25, 0.25, 0.25]"),
    "dataset.augment.crop_padding": integer(0, example=4),
    "dataset.augment.hflip": flag(example="true"),
    "dataset.augment.rotation": number(0, 180, example=15, why="degrees"),
    "dataset.source.download": flag(example="false"),
    "dataset.source.image_size": integer(1, nullable=True, example=32),
    "dataset.source.root": text(nullable=True, example="data/my_images"),
    "dataset.source.cache_dir": text(nullable=True, example="data/.osal_cache"),
    # the network
    "model.bottleneck_dim": integer(1, nullable=True, example=2),
    "model.compile": flag(example="true"),
    "model.channels_last": flag(nullable=True, example="true"),
    "model.compile_options.mode": choice(*COMPILE_MODES, nullable=True, example="reduce-overhead"),
    "model.dropout": number(0, 1, high_open=True, example=0.3),
    "model.encoder.width": integer(1, example=16),
    "model.encoder.in_channels": choice(1, 3, example=3),
    "model.pretrained": text(nullable=True, example="ResNet18_Weights.IMAGENET1K_V1"),
    "model.freeze": flag(example="true"),
    "model.input_mean": Rule("numbers", nullable=True, example="[0.5, 0.5, 0.5]"),
    "model.input_std": Rule("numbers", 0, low_open=True, nullable=True, example="[0.25, 0.25, 0.25]"),
    # optimisation
    "optimizer.lr": number(0, low_open=True, example=0.01, why="the learning rate"),
    "optimizer.momentum": number(0, 1, high_open=True, example=0.9),
    "optimizer.weight_decay": number(0, example=5e-4),
    "scheduler.gamma": number(0, 1, low_open=True, example=0.5),
    "scheduler.step_size": integer(1, example=20, why="epochs between learning-rate drops"),
    # the strategy's networks
    "strategy.name": text(example="lfosa"),
    "strategy.*.train_on_invalid": flag(example="true"),
    "strategy.*.fit_once": flag(example="true"),
    "strategy.*.module.simclr_dim": integer(1, example=128),
    "strategy.*.train_on_unlabeled": integer(0, choices=("all",), example=5000,
                                             why="unlabeled examples also trained on, or all"),
    "strategy.*.module.temperature": number(0, low_open=True, example=0.5),
    "strategy.*.module.cluster_weight": WEIGHT,
    "strategy.*.module.energy_weight": WEIGHT,
    "strategy.*.module.inter_weight": WEIGHT,
    "strategy.*.module.intra_weight": WEIGHT,
    "strategy.*.module.margin_in": number(example=-25.0, why="an energy margin"),
    "strategy.*.module.margin_out": number(example=-7.0, why="an energy margin"),
    "strategy.*.module.pareto_alpha": number(0, 1, low_open=True, example=0.8),
    "strategy.*.module.finch": FINCH_RELEASE,
    "strategy.*.module.check_every": integer(1, example=5, why="epochs between two snapshots"),
    # the strategies' selection knobs
    "strategy.selector.query_model": choice("classifier", "detector", example="detector"),
    "strategy.selector.n_components": integer(2, example=2, why="GMM components"),
    "strategy.selector.max_iter": integer(1, example=10),
    "strategy.selector.tol": number(0, low_open=True, example=0.01),
    "strategy.selector.reg_covar": number(0, example=5e-4),
    "strategy.selector.small_class_probability": number(**PROBABILITY, example=0.5),
    "strategy.selector.tie_break": choice("random", "mav", "loader", example="random"),
    "strategy.selector.mc_samples": integer(2, example=20, why="dropout passes"),
    "strategy.selector.chunk_size": integer(1, example=256),
    "strategy.selector.alpha_rank": integer(1, example=10),
    "strategy.selector.tail_size": integer(3, example=20, why="distances for the Weibull fit"),
    "strategy.selector.neighbours": integer(1, example=10),
    "strategy.selector.candidates": number(1, example=3),
    "strategy.selector.detector_weight": number(**PROBABILITY, example=0.5),
    "strategy.selector.first_detector_weight": number(**PROBABILITY, example=0.5),
    "strategy.selector.pool_reference": flag(example="true"),
    "strategy.selector.top_up": flag(example="true"),
    "strategy.selector.pool_sample_factor": number(0, low_open=True, example=10,
                                                   why="the pool sample's size as a multiple of the labeled set's"),
    "strategy.selector.diversity": flag(example="true"),
    "strategy.selector.exact_neighbours_up_to": integer(2, nullable=True, example=100000,
                                                        why="candidates clustered with exact first neighbours"),
    "strategy.selector.finch": FINCH_RELEASE,
    "strategy.selector.k_initial": integer(1, example=5),
    "strategy.selector.target_precision": number(0, 1, low_open=True, example=0.6),
    "strategy.selector.tolerance": number(0, 1, example=0.05),
    "strategy.selector.step": integer(1, example=1),
    "strategy.selector.subset": integer(1, example=50000, why="pool examples scored per query"),
    "strategy.selector.hidden": integer(1, example=64, why="the meta-network's hidden units"),
    "strategy.selector.epochs": integer(1, example=100, why="the meta-network's epochs per query"),
    "strategy.selector.steps_per_epoch": integer(1, example=100),
    "strategy.selector.batch_size": integer(2, example=32, why="queried examples per meta-network step"),
    "strategy.selector.lr": number(0, low_open=True, example=0.001, why="the meta-network's learning rate"),
    "strategy.selector.margin": number(0, example=1.0, why="the ranking loss's margin"),
    "strategy.selector.uncertainty": choice("least_confidence", "margin", "entropy", example="least_confidence"),
    # Lightning's Trainer
    "trainer.accelerator": choice("auto", "cpu", "gpu", "cuda", "mps", example="auto"),
    "trainer.devices": integer(1, choices=("auto",), example=1),
    "trainer.precision": choice(*PRECISIONS, example="32-true"),
    "trainer.max_epochs": integer(1, example=100),
    "trainer.max_steps": integer(-1, example=600, why="-1: no cap; else the most optimiser steps a fit takes"),
    "trainer.benchmark": flag(example="true"),
    "trainer.deterministic": flag(example="false"),
    "trainer.enable_checkpointing": flag(example="false"),
    "trainer.enable_model_summary": flag(example="false"),
    "trainer.enable_progress_bar": flag(example="true"),
    "trainer.log_every_n_steps": integer(1, example=10),
    "trainer.num_sanity_val_steps": integer(0, example=0),
    "trainer.strategy": choice(*DDP_STRATEGIES, example="ddp", why="one process, or osal's DDP over trainer.devices"),
    "trainer.sync_batchnorm": flag(example="true"),
    "trainer.num_nodes": integer(1, example=1),
    # annotation projects (conf/annotate.yaml)
    "annotate.unknown_below": number(**PROBABILITY, example=0.5, why="the known probability under which "
                                     "`unknown` is suggested"),
    "annotate.thumbnail_pixels": integer(8, example=128),
    "annotate.display_pixels": integer(8, example=112),
    "annotate.label_studio_image_url": text(example="/data/local-files/?d={folder}/{path}"),
    "detector.train_on_invalid": flag(example="true"),
    "detector.module.temperature": number(0, low_open=True, example=0.5),
    "classifier.module.temperature": number(0, low_open=True, example=0.5),
    # loggers (the W&B account itself is checked by osal.report.wandb_check before any data is read)
    "logger.name": text(example="lightning_logs"),
    "logger.version": text(nullable=True, example="''"),
    "logger.project": text(example="osal"),
    "logger.entity": text(nullable=True, example="my-team"),
    "logger.notes": text(nullable=True, example="a note"),
    "logger.offline": flag(example="false"),
    "logger.log_model": flag(example="false"),
    "logger.save_dir": text(example="."),
    "logger._convert_": choice("all", "partial", "none", "object", example="all"),
}

# checked elsewhere with their own sentences (osal.data.open_set), or not knobs at all
CHECKED_ELSEWHERE = ("mismatch", "openness", "al.init_percent")
NOT_KNOBS = ("*._target_", "*._partial_", "_target_", "_partial_", "campaign.*", "hydra.*",
             "strategy.detector", "strategy.classifier")  # null: the strategy has no such network


def rule_for(key: str) -> Optional[Rule]:
    if key in KNOBS:
        return KNOBS[key]
    for pattern, rule in KNOBS.items():
        if "*" in pattern and fnmatch.fnmatchcase(key, pattern) and key.count(".") == pattern.count("."):
            return rule
    return None


def leaves(cfg: DictConfig, prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted key, value) of every leaf of `cfg` set in it (not an interpolation); MISSING for `???`."""
    found = []
    for key in cfg.keys():
        name = f"{prefix}{key}"
        if OmegaConf.is_missing(cfg, key):
            found.append((name, MISSING))
            continue
        if OmegaConf.is_interpolation(cfg, key):  # a copy of another knob (${model}), checked where it is set
            continue
        value = cfg[key]
        if isinstance(value, DictConfig):
            found += leaves(value, name + ".")
        else:
            found.append((name, OmegaConf.to_object(value) if isinstance(value, ListConfig) else value))
    return found


def is_knob(key: str) -> bool:
    return not any(fnmatch.fnmatchcase(key, pattern) for pattern in NOT_KNOBS)


def check_knobs(cfg: DictConfig) -> None:
    """Raise ConfigError, one sentence, for the first knob of `cfg` whose value its rule refuses."""
    for key, value in leaves(cfg):
        if not is_knob(key) or key in CHECKED_ELSEWHERE:
            continue
        rule = rule_for(key)
        if rule is None:
            continue
        if value is MISSING:
            raise ConfigError(f"{key} is missing; give it a value, e.g. {key}={rule.example}")
        problem = rule.problem(value)
        if problem:
            what = f" ({rule.why})" if rule.why else ""
            raise ConfigError(f"{key}={value!r}{what} {problem}; e.g. {key}={rule.example}")


def ddp_processes_wanted(trainer_cfg: DictConfig) -> int:
    """How many processes (devices x nodes) the trainer config asks for: more than one is a DDP run."""
    import torch
    devices = trainer_cfg.get("devices", 1)
    accelerator = str(trainer_cfg.get("accelerator", "auto"))
    if isinstance(devices, (list, tuple, ListConfig)):
        per_node = len(devices)
    elif devices == "auto":  # Lightning's auto: every GPU when training on GPUs, one CPU process
        on_gpu = accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available()
        per_node = torch.cuda.device_count() if on_gpu else 1
    else:
        per_node = int(devices)
    return per_node * int(trainer_cfg.get("num_nodes", 1) or 1)


def check_devices(cfg: DictConfig) -> None:
    """The Trainer's accelerator must exist on this machine: Lightning would raise deep inside Hydra."""
    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    if accelerator in ("gpu", "cuda"):
        import torch
        if not torch.cuda.is_available():
            raise ConfigError(f"trainer.accelerator={accelerator} but this machine has no CUDA GPU; run with "
                              "trainer=cpu (or trainer.accelerator=auto)")
        devices = cfg.trainer.get("devices", 1)
        if isinstance(devices, int) and devices > torch.cuda.device_count():
            raise ConfigError(f"trainer.devices={devices} but this machine has {torch.cuda.device_count()} CUDA "
                              f"GPU(s); lower trainer.devices")
    devices = cfg.trainer.get("devices", 1)
    if accelerator == "cpu" and isinstance(devices, int) and devices > (os.cpu_count() or 1):
        raise ConfigError(f"trainer.devices={devices} CPU processes but this machine has {os.cpu_count()} cores; "
                          "lower trainer.devices")
    if accelerator == "mps":
        import torch
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ConfigError("trainer.accelerator=mps but this machine has no Apple GPU; run with trainer=cpu")
    check_ddp(cfg)


def check_ddp(cfg: DictConfig) -> None:
    """Several processes run as osal's DDP (one process group for the whole run: trainer.strategy is auto or
    ddp, its rule says), and a step's batch is split evenly between them."""
    processes = ddp_processes_wanted(cfg.trainer)
    if processes == 1:
        return
    batch_size = cfg.get("data", {}).get("batch_size")
    if isinstance(batch_size, int):
        batch_per_process(batch_size, processes)


def batch_per_process(batch_size: int, processes: int) -> int:
    """The examples each of `processes` DDP processes takes a step, so that a step still trains on
    `batch_size`: refused in one sentence when they cannot share it evenly."""
    if batch_size % processes:
        raise ConfigError(f"data.batch_size={batch_size} cannot be split evenly over {processes} DDP processes; "
                          f"give a multiple of {processes} (each process takes batch_size / {processes} a step)")
    return batch_size // processes


def check_config(cfg: DictConfig, one_process: bool = False, source: str = "the config") -> None:
    """Every `_target_`, every knob of `cfg` and the devices it asks for: the one check a run or an annotation
    command makes before anything is built or read. `one_process`: the command trains on one device (the
    annotation commands); `source`: where the config came from, for the sentence."""
    check_config_targets(cfg, source)
    check_knobs(cfg)
    check_devices(cfg)
    processes = ddp_processes_wanted(cfg.trainer)
    if one_process and processes > 1:
        raise ConfigError(f"trainer.devices={cfg.trainer.get('devices')} (x trainer.num_nodes) asks for {processes} "
                          "processes, but the annotation commands train on one device; set trainer.devices=1 (DDP "
                          "is for research runs of src/train.py)")
