"""How many runs at once pay on one GPU: aggregate training images/s with 1, 2, 4 and 8 concurrent runs, eager
and with CUDA graphs (torch.compile mode reduce-overhead), in one command.

    python benchmarks/packing.py --data-dir DIR                       # on a GPU: CIFAR-10, ResNet18, batch 128
    python benchmarks/packing.py --dataset digits --trainer cpu --concurrency 1,2 --modes eager --epochs 3

Each run is a process that fits a classifier as the research loop does (osal's datamodule and
module, a fresh Lightning Trainer) on a fixed labeled set (`--labeled` known-class examples, batch
128) for `--epochs` epochs. The runs of one measurement load their data, wait for one another, then
train together; the rate counts the epochs after the first (compilation and warm-up are in the
first), aggregated over the span in which all of them trained. The campaign runner's runs at once
per GPU (src/campaign.py --per-gpu) come from this table (docs/benchmarks.md).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "src"))

from machine import describe  # noqa: E402

MODES = {"eager": [], "reduce-overhead": ["model.compile=true", "model.compile_options.mode=reduce-overhead"]}


def worker(args) -> None:
    """One run: load, signal ready, wait for the others, fit, write the epoch times."""
    import lightning as L
    from hydra import compose, initialize_config_dir

    from osal.engine.fit import fit_role
    from osal.loop.data import open_set_data
    from osal.quiet import quiet_lightning

    quiet_lightning()
    overrides = [f"dataset={args.dataset}", "mismatch=0.4", f"trainer={args.trainer}",
                 f"trainer.max_epochs={args.epochs}", "trainer.enable_progress_bar=false", "logger=none",
                 f"al.init_percent={args.percent}", *MODES[args.mode]]
    if args.data_dir:
        overrides.append(f"data_dir={args.data_dir}")
    with initialize_config_dir(config_dir=os.path.join(ROOT, "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    run_dir = os.path.join(args.barrier, f"run{args.worker}")
    _, datamodule = open_set_data(cfg)
    labeled = len(datamodule.pool.labeled)

    ends = []

    class EpochTimes(L.Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            if pl_module.device.type == "cuda":
                import torch
                torch.cuda.synchronize()
            ends.append(time.time())

    open(os.path.join(args.barrier, f"ready{args.worker}"), "w").close()
    while len([n for n in os.listdir(args.barrier) if n.startswith("ready")]) < args.count:
        time.sleep(0.05)
    start = time.time()
    fit_role(cfg, "classifier", 0, datamodule, [EpochTimes()], root_dir=run_dir)
    result = {"labeled": labeled, "start": start, "ends": ends}
    with open(os.path.join(args.barrier, f"result{args.worker}.json"), "w") as f:
        json.dump(result, f)


def measure(args, mode: str, count: int) -> dict:
    """Start `count` runs of `mode` together; returns the aggregate and per-run steady rates."""
    barrier = tempfile.mkdtemp(prefix="packing-")
    command = [sys.executable, os.path.abspath(__file__), "--worker-of", barrier, "--count", str(count),
               "--mode", mode, "--dataset", args.dataset, "--trainer", args.trainer, "--epochs", str(args.epochs),
               "--percent", str(args.percent)] + (["--data-dir", args.data_dir] if args.data_dir else [])
    processes = [subprocess.Popen(command + ["--worker", str(i)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True) for i in range(count)]
    for process in processes:
        _, err = process.communicate(timeout=args.timeout)
        if process.returncode:
            raise SystemExit(f"a {mode} run of {count} failed:\n{err[-3000:]}")
    results = [json.load(open(os.path.join(barrier, f"result{i}.json"))) for i in range(count)]
    # steady state: the epochs after each run's first, over the span in which every run trained
    begin = max(r["ends"][0] for r in results)
    end = min(r["ends"][-1] for r in results)
    images = 0.0
    for r in results:
        inside = [(a, b) for a, b in zip(r["ends"][:-1], r["ends"][1:]) if a >= begin and b <= end]
        images += r["labeled"] * len(inside)
        r["rate"] = r["labeled"] * (len(r["ends"]) - 1) / (r["ends"][-1] - r["ends"][0])
    aggregate = images / (end - begin) if end > begin else sum(r["rate"] for r in results)
    first_epoch = max(r["ends"][0] - r["start"] for r in results)
    return {"mode": mode, "count": count, "aggregate": aggregate,
            "per_run": sum(r["rate"] for r in results) / count, "first_epoch": first_epoch,
            "labeled": results[0]["labeled"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--trainer", default="gpu")
    parser.add_argument("--concurrency", default="1,2,4,8")
    parser.add_argument("--modes", default="eager,reduce-overhead")
    parser.add_argument("--epochs", type=int, default=6, help="epochs per run; the first is left out of the rate")
    parser.add_argument("--percent", type=float, default=25.0, help="al.init_percent: the labeled set's size "
                        "(25% of CIFAR-10's 4 known classes = 5,000 images)")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file "
                        "(scripts/gpu_window.sh picks the campaign's runs per GPU from it)")
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--worker-of", dest="barrier", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="eager", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        worker(args)
        return 0
    print(f"machine: {describe()}")
    print(f"{args.dataset}, classifier fit, batch 128, {args.epochs} epochs per run (rate over epochs 2..)")
    print(f"{'mode':<16} {'runs':>4} {'images/s':>10} {'per run':>9} {'x one run':>9} {'1st epoch s':>11}")
    rows = []
    for mode in args.modes.split(","):
        alone = None
        for count in (int(c) for c in args.concurrency.split(",")):
            row = measure(args, mode, count)
            alone = alone or row["aggregate"]
            rows.append(row)
            print(f"{mode:<16} {count:>4} {row['aggregate']:>10,.0f} {row['per_run']:>9,.0f} "
                  f"{row['aggregate'] / alone:>9.2f} {row['first_epoch']:>11.1f}", flush=True)
            if args.json:  # written after every row, so a window cut short keeps what was measured
                with open(args.json, "w") as f:
                    json.dump({"machine": describe(), "epochs": args.epochs, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
