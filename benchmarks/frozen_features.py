"""Frozen features against training from scratch: round time and final metrics of whole runs, on this machine.

    python scripts/pretrain_backbone.py --data-dir data --dataset tinyimagenet --width 32 --epochs 3 \
        --out data/backbones/small_cnn32_tinyimagenet32.pt
    python benchmarks/frozen_features.py --data-dir data --backbone data/backbones/small_cnn32_tinyimagenet32.pt

Each strategy runs twice on the CIFAR-10 copy under the CPU protocol (experiment=cifar10_recall: the small CNN,
12 queries of 1,500, 8 epochs a fit): trained from scratch (the small CNN, width 16, as the strategy campaign),
and as heads on frozen features of the pretrained backbone (model.pretrained=... model.freeze=true). The first
frozen run embeds the 60,000 images (timed apart, as `embed_s`); the later ones read the features back from the
cache. Every run is a subprocess as a user starts it; a round's time is its fits and its query (metrics.csv).
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from machine import describe  # noqa: E402

COMMON = ["trainer=cpu", "logger=none", "trainer.enable_progress_bar=false", "experiment=cifar10_recall"]


def run(overrides: list, run_dir: str) -> dict:
    """One whole run; its rows and its wall time."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, os.path.join(ROOT, "src", "train.py"), *COMMON, *overrides,
                           f"hydra.run.dir={run_dir}"], cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"a run failed ({' '.join(overrides)}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    with open(os.path.join(run_dir, "metrics.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    with open(os.path.join(run_dir, "summary.json")) as f:
        summary = json.load(f)
    said = done.stderr.splitlines() + done.stdout.splitlines()
    embed = sum(float(line.split(" in ")[1].split(" s")[0]) for line in said
                if " images in " in line and line.strip().startswith("embedded"))
    return {"rows": rows, "wall": wall, "summary": summary, "embed": embed}


def describe_run(mode: str, strategy: str, result: dict) -> dict:
    rows = result["rows"]
    rounds = rows[1:]
    round_seconds = [float(r["fit_seconds"]) + float(r["query_seconds"]) for r in rounds]
    last = rows[-1]
    queried = sum(int(r["queried"]) for r in rounds)
    known = sum(int(r["queried_known"]) for r in rounds)
    return {"mode": mode, "strategy": strategy, "round_s": sum(round_seconds) / len(round_seconds),
            "query_s": sum(float(r["query_seconds"]) for r in rounds) / len(rounds),
            "embed_s": result["embed"], "run_s": result["wall"], "precision": known / max(queried, 1),
            "recall": float(last["recall"]), "accuracy": float(last["test_accuracy"]),
            "accuracy_0": float(rows[0]["test_accuracy"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--backbone", required=True,
                        help="a checkpoint of the small CNN (scripts/pretrain_backbone.py)")
    parser.add_argument("--width", type=int, default=32, help="the backbone's small-CNN width")
    parser.add_argument("--strategies", nargs="+", default=["lfosa", "random"])
    parser.add_argument("--mismatch", default="0.2")
    parser.add_argument("--seed", default="1")
    parser.add_argument("--modes", nargs="+", default=["frozen", "scratch"], choices=["frozen", "scratch"])
    parser.add_argument("--out", help="also write the table to this file")
    args = parser.parse_args()
    backbone = os.path.abspath(args.backbone)
    lines = []
    with tempfile.TemporaryDirectory(prefix="osal-frozen-") as tmp:
        data = [f"data_dir={os.path.abspath(args.data_dir)}", f"mismatch={args.mismatch}", f"seed={args.seed}"]
        frozen = [f"model.encoder.width={args.width}", f"model.pretrained={backbone}", "model.freeze=true",
                  f"cache_dir={os.path.join(tmp, 'cache')}"]
        results = []
        for mode in args.modes:
            for strategy in args.strategies:
                overrides = data + [f"strategy={strategy}"] + (frozen if mode == "frozen" else [])
                print(f"running {mode} {strategy} ...", flush=True)
                results.append(describe_run(mode, strategy, run(overrides, os.path.join(tmp, f"{mode}_{strategy}"))))
    lines.append(describe())
    lines.append(f"CIFAR-10 (JPEG copy), mismatch {args.mismatch}, seed {args.seed}, experiment=cifar10_recall "
                 "(12 queries of 1,500, pool of 50,000); frozen: heads on the features of "
                 f"{os.path.relpath(backbone, ROOT)}")
    header = (f"{'mode':8} {'strategy':10} {'round_s':>8} {'query_s':>8} {'embed_s':>8} {'run_s':>8} "
              f"{'precision':>9} {'recall':>7} {'acc_0':>6} {'acc':>6}")
    lines += [header, "-" * len(header)]
    for r in results:
        lines.append(f"{r['mode']:8} {r['strategy']:10} {r['round_s']:8.1f} {r['query_s']:8.2f} {r['embed_s']:8.1f} "
                     f"{r['run_s']:8.0f} {r['precision']:9.3f} {r['recall']:7.3f} {r['accuracy_0']:6.3f} "
                     f"{r['accuracy']:6.3f}")
    text = "\n".join(lines)
    print(text)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
