"""Epoch time of osal's Lightning fit against a plain hand-written PyTorch loop on the same work.

    python benchmarks/fit_overhead.py [--dataset digits|mnist] [--data-dir DIR] [--labeled N] [--epochs E]
    python benchmarks/fit_overhead.py --dataset cifar10 --data-dir DIR --trainer gpu --labeled 10000 \
        --variant compiled=model.compile=true --variant fp32=trainer.precision=32-true

Both loops train a fresh classifier module built from the same config, on the same
datamodule, with the same batches in the same order (`training_batches`: the same
shuffle, the same batched augmentation) and the same optimizer and scheduler. The
plain loop is the textbook one: forward, loss, zero_grad, backward, step (under bf16 autocast
and in channels_last when the trainer config asks for bf16-mixed on CUDA). `--variant` adds
Lightning fits with more overrides (torch.compile, another precision) to the table. The table
prints the median epoch time of each (first epoch of every fit left out: warm-up) and
their ratio; fits alternate between the two so machine noise hits both alike.
"""

import argparse
import contextlib
import os
import statistics
import sys
import time

import lightning as L
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))
sys.path.insert(0, HERE)

from machine import describe  # noqa: E402
from osal.build import build  # noqa: E402
from osal.loop.data import open_set_data  # noqa: E402
from osal.loop.progress import RoundProgressBar  # noqa: E402
from osal.quiet import quiet_lightning  # noqa: E402

CONF = os.path.join(HERE, "..", "conf")


def compose(overrides):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    with initialize_config_dir(config_dir=os.path.abspath(CONF), version_base="1.3"):
        return hydra_compose("train", overrides=list(overrides))


class EpochTimer(L.Callback):
    def __init__(self):
        self.seconds = []

    def on_train_epoch_start(self, trainer, module):
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer, module):
        self.seconds.append(time.perf_counter() - self._start)


def lightning_epochs(cfg, dm, epochs: int, progress_bar: bool = False) -> list:
    L.seed_everything(0, verbose=False)
    dm.begin_fit(0, with_invalid=False)
    module = build(cfg.classifier)(num_known=dm.num_known)
    timer = EpochTimer()
    callbacks = [timer] + ([RoundProgressBar(1, 1, "classifier")] if progress_bar else [])
    trainer = build(cfg.trainer, max_epochs=epochs, callbacks=callbacks, logger=False,
                    enable_progress_bar=progress_bar)
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):  # the bar is drawn, not shown
        trainer.fit(module, datamodule=dm)
    return timer.seconds[1:]


def plain_epochs(cfg, dm, epochs: int) -> list:
    L.seed_everything(0, verbose=False)
    dm.begin_fit(0, with_invalid=False)
    cuda = cfg.trainer.accelerator == "gpu"
    device = torch.device("cuda" if cuda else "cpu")
    module = build(cfg.classifier)(num_known=dm.num_known)
    net = module.net.to(device, memory_format=torch.channels_last if cuda else torch.contiguous_format).train()
    configured = module.configure_optimizers()
    optimizer = configured["optimizer"] if isinstance(configured, dict) else configured
    scheduler = configured["lr_scheduler"]["scheduler"] if isinstance(configured, dict) else None
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=str(cfg.trainer.precision) == "bf16-mixed")
    seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        for x, y, _ in dm.training_batches(device):
            with autocast:
                loss = module.loss(net(x.contiguous(memory_format=torch.channels_last) if cuda else x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        if cuda:
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    return seconds[1:]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits", help="a dataset config name")
    parser.add_argument("--data-dir", default=os.environ.get("OSAL_DATA_DIR", "data"))
    parser.add_argument("--labeled", type=int, default=None, help="train on this many labeled examples")
    parser.add_argument("--epochs", type=int, default=6, help="per fit; the first is warm-up")
    parser.add_argument("--repeats", type=int, default=3, help="fits of each kind, alternating")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--trainer", default="cpu", help="trainer config: cpu, gpu, ...")
    parser.add_argument("--variant", action="append", default=[],
                        help="NAME=override[,override...]: one more Lightning fit with these overrides")
    parser.add_argument("overrides", nargs="*", help="more config overrides, e.g. data.batch_size=128")
    args = parser.parse_args(argv)
    quiet_lightning()
    if args.threads:
        torch.set_num_threads(args.threads)
    base = [f"dataset={args.dataset}", f"data_dir={args.data_dir}", f"trainer={args.trainer}", "logger=none",
            "mismatch=0.4"] + args.overrides
    cfg = compose(base)
    variants = {}
    for spec in args.variant:
        name, _, overrides = spec.partition("=")
        variants[name] = compose(base + [o for o in overrides.split(",") if o])
    _, dm = open_set_data(cfg)
    if args.labeled:  # label known pool examples (first ones in index order) up to the asked size
        pool = dm.pool.unlabeled
        known = pool[dm.pool.oracle.answer(pool) >= 0]
        extra = max(args.labeled - len(dm.pool.labeled), 0)
        dm.pool.annotate(known[:extra], round_index=1)
    n = len(dm.pool.labeled)
    print(f"machine: {describe()}")
    print(f"{args.dataset}, model {cfg.model.encoder._target_.rsplit('.', 1)[-1]}, {n} labeled examples, batch "
          f"{cfg.data.batch_size}, pipeline {cfg.data.pipeline}, {args.epochs} epochs per fit x {args.repeats} "
          "fits (first epoch of each fit not counted)")
    print(f"trainer {args.trainer} ({cfg.trainer.precision}); variants: {args.variant or 'none'}", flush=True)
    times = {"plain": [], "lightning": [], "lightning+bar": [], **{name: [] for name in variants}}
    for _ in range(args.repeats):
        times["plain"] += plain_epochs(cfg, dm, args.epochs)
        times["lightning"] += lightning_epochs(cfg, dm, args.epochs, progress_bar=False)
        times["lightning+bar"] += lightning_epochs(cfg, dm, args.epochs, progress_bar=True)
        for name, variant_cfg in variants.items():
            times[name] += lightning_epochs(variant_cfg, dm, args.epochs)
    plain = statistics.median(times["plain"])
    print(f"{'loop':<16}{'median epoch s':>16}{'images/s':>12}{'ratio':>8}")
    for name, seconds in times.items():
        median = statistics.median(seconds)
        print(f"{name:<16}{median:>16.4f}{n / median:>12.0f}{median / plain:>8.3f}")


if __name__ == "__main__":
    main()
