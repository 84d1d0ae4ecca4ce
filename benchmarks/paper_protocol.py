"""Time the paper's protocol (LfOSA, ResNet18, 100 epochs per fit) and project the whole 10-round run.

    python benchmarks/paper_protocol.py --data-dir DIR --out OUT            # on a GPU, CIFAR-10
    python benchmarks/paper_protocol.py --data-dir DIR --out OUT --smoke    # a CPU check of this script

A full 10-round run is too long for one measurement session, so this runs real `src/train.py`
jobs that together pin down what a round costs, and projects the rest:

1. protocol: the paper's settings for the first `--protocol-rounds` queries (small labeled sets:
   per-epoch overhead dominates);
2. large: the whole known part of the pool labeled at the start (init_percent=100), one query,
   `--large-epochs` epochs per fit (the large sets of late rounds: per-batch time dominates),
   once with each data pipeline (batched on the GPU, and per_sample with loader workers) and once
   with torch.compile.

Every fit's time is modelled as epochs x (a + b x batches) with a (per-epoch overhead) and b
(per-batch time) fitted by least squares to the measured fits of the batched pipeline. The
projection sums that over the protocol's schedule with the labeled set growing as fast as it can
(every query known until the known pool runs out: an upper bound on the work), plus the measured
query, test and set-up times. Every number comes from the runs' metrics.csv and summary.json.
"""

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from machine import describe  # noqa: E402


def run_job(name, overrides, out, python, timeout):
    """Run src/train.py into out/name; returns (seconds, return code)."""
    run_dir = os.path.join(out, name)
    command = [python, os.path.join(ROOT, "src", "train.py"), *overrides, f"hydra.run.dir={run_dir}",
               "trainer.enable_progress_bar=false", "logger=csv"]
    print(f"== {name}: {' '.join(overrides)}", flush=True)
    start = time.perf_counter()
    try:
        code = subprocess.run(command, timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        code = "timeout"
    seconds = time.perf_counter() - start
    print(f"== {name}: exit {code} after {seconds:.0f} s", flush=True)
    return seconds, code


def read_run(out, name):
    """(rows of metrics.csv as dicts of floats, summary.json or {}) of a finished or partial run."""
    path = os.path.join(out, name, "metrics.csv")
    if not os.path.exists(path):
        return [], {}
    with open(path) as f:
        rows = [{k: float(v) if v not in ("", None) else float("nan") for k, v in row.items()}
                for row in csv.DictReader(f)]
    summary_path = os.path.join(out, name, "summary.json")
    summary = json.load(open(summary_path)) if os.path.exists(summary_path) else {}
    return rows, summary


def fits_of(rows, epochs, batch_size):
    """Per row: (fits, batches per epoch summed over its fits, fit seconds, images trained)."""
    out = []
    for r, row in enumerate(rows):
        n_cls = row["n_labeled"]
        n_det = rows[r - 1]["n_labeled"] + rows[r - 1]["n_invalid"] if r > 0 else 0
        sizes = [n for n in (n_det, n_cls) if n > 0]
        batches = sum(math.ceil(n / batch_size) for n in sizes)
        out.append((len(sizes), batches, row["fit_seconds"], epochs * sum(sizes)))
    return out


def fit_cost_model(fit_rows, epochs_per_row):
    """Least-squares (a, b) of fit_seconds = epochs x (fits x a + batches x b)."""
    design = np.array([[e * f, e * b] for (f, b, _, _), e in zip(fit_rows, epochs_per_row)], dtype=float)
    target = np.array([s for (_, _, s, _) in fit_rows], dtype=float)
    (a, b), *_ = np.linalg.lstsq(design, target, rcond=None)
    return max(a, 0.0), max(b, 0.0)


def schedule(initial, known_total, query_size, rounds):
    """(n_detector, n_classifier) per round 0..R, the labeled set growing as fast as it can."""
    out = []
    for r in range(rounds + 1):
        n_det = initial + query_size * (r - 1) if r > 0 else 0
        out.append((n_det, min(initial + query_size * r, known_total)))
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--mismatch", default="0.2")
    parser.add_argument("--trainer", default="gpu")
    parser.add_argument("--epochs", type=int, default=100, help="per fit in the paper's protocol")
    parser.add_argument("--rounds", type=int, default=10, help="queries of the run to project")
    parser.add_argument("--protocol-rounds", type=int, default=2, help="queries actually run with the protocol")
    parser.add_argument("--large-epochs", type=int, default=10)
    parser.add_argument("--workers", type=int, default=12, help="loader processes of the per_sample pipeline")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--timeout", type=int, default=240, help="seconds per job")
    parser.add_argument("--smoke", action="store_true", help="digits on the CPU, tiny epochs: checks the script")
    parser.add_argument("--only-report", action="store_true", help="read the runs already in --out")
    args = parser.parse_args(argv)
    if args.smoke:
        args.dataset, args.trainer, args.epochs, args.large_epochs, args.workers = "digits", "cpu", 3, 2, 0
        args.mismatch, args.compile = "0.4", False
    os.makedirs(args.out, exist_ok=True)

    base = [f"dataset={args.dataset}", f"data_dir={args.data_dir}", f"mismatch={args.mismatch}", "strategy=lfosa",
            f"trainer={args.trainer}", "seed=1", "fresh=true"]
    large = base + ["al.init_percent=100", "al.rounds=1", f"trainer.max_epochs={args.large_epochs}"]
    jobs = [
        ("protocol", base + [f"al.rounds={args.protocol_rounds}", f"trainer.max_epochs={args.epochs}"],
         args.epochs),
        ("large_batched", large, args.large_epochs),
        ("large_per_sample", large + ["data.pipeline=per_sample", f"data.num_workers={args.workers}",
                                      f"data.pin_memory={str(args.trainer != 'cpu').lower()}"], args.large_epochs),
    ]
    if args.compile:
        jobs.append(("large_compiled", large + ["model.compile=true"], args.large_epochs))
    wall = {}
    if not args.only_report:
        for name, overrides, _ in jobs:
            wall[name] = run_job(name, overrides, args.out, args.python, args.timeout)

    from hydra import compose, initialize_config_dir
    with initialize_config_dir(config_dir=os.path.join(ROOT, "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"dataset={args.dataset}", f"mismatch={args.mismatch}"])
    batch_size, query_size = int(cfg.data.batch_size), int(cfg.al.query_size)

    lines = [f"machine: {describe()}",
             f"{args.dataset}, mismatch {args.mismatch}, LfOSA, {cfg.model.encoder._target_.rsplit('.', 1)[-1]}, "
             f"batch {batch_size}, trainer={args.trainer}", ""]
    lines += ["| run | pipeline | epochs/fit | rows | training images | fit s | images/s | query s/round | set-up s |",
              "|---|---|---|---|---|---|---|---|---|"]
    measured = {}
    for name, overrides, epochs in jobs:
        rows, summary = read_run(args.out, name)
        if not rows:
            why = wall.get(name, ('', '?'))[1]
            lines.append(f"| {name} | - | {epochs} | 0 | - | - | - | - | - |  (no rows: {why})")
            continue
        fits = fits_of(rows, epochs, batch_size)
        images = sum(f[3] for f in fits)
        seconds = sum(f[2] for f in fits)
        queries = [row["query_seconds"] for row in rows[1:]]
        measured[name] = {"rows": rows, "fits": fits, "epochs": epochs, "summary": summary,
                          "throughput": images / seconds if seconds else float("nan"),
                          "query": float(np.mean(queries)) if queries else float("nan")}
        pipeline = "per_sample" if "per_sample" in name else ("batched+compile" if "compiled" in name else "batched")
        lines.append(f"| {name} | {pipeline} | {epochs} | {len(rows)} | {images:,.0f} | {seconds:.1f} | "
                     f"{images / seconds:,.0f} | {measured[name]['query']:.2f} | "
                     f"{summary.get('setup_seconds', float('nan')):.1f} |")
    if "protocol" in measured:
        lines += ["", "Seconds per round of the protocol run (fit = detector + classifier; query = inference + "
                  "selection):", "", "| round | labeled | invalid | fit s | query s | precision |",
                  "|---|---|---|---|---|---|"]
        for row in measured["protocol"]["rows"]:
            lines.append(f"| {int(row['round'])} | {int(row['n_labeled'])} | {int(row['n_invalid'])} | "
                         f"{row['fit_seconds']:.1f} | {row['query_seconds']:.2f} | {row['precision']:.3f} |")

    batched = [measured[n] for n in ("protocol", "large_batched") if n in measured]
    if batched and "protocol" in measured:
        fit_rows = [f for m in batched for f in m["fits"]]
        epochs_per_row = [m["epochs"] for m in batched for _ in m["fits"]]
        a, b = fit_cost_model(fit_rows, epochs_per_row)
        protocol = measured["protocol"]
        first = protocol["rows"][0]
        known_total = first["n_labeled"] / first["recall_incl_initial"]
        plan = schedule(int(first["n_labeled"]), int(round(known_total)), query_size, args.rounds)
        summary = protocol["summary"]
        other = (summary.get("loop_seconds", float("nan")) - sum(r["fit_seconds"] + r["query_seconds"]
                                                                 for r in protocol["rows"])) / len(protocol["rows"])
        query = float(np.nanmean([m["query"] for m in batched]))

        def project(per_epoch, per_batch):
            fits = sum(args.epochs * (sum(n > 0 for n in sizes) * per_epoch +
                                      sum(math.ceil(n / batch_size) for n in sizes if n > 0) * per_batch)
                       for sizes in plan)
            return fits + args.rounds * query + (args.rounds + 1) * other + summary.get("setup_seconds", 0.0)

        lines += ["", f"Cost model fitted to the batched runs' {len(fit_rows)} rows: {a * 1000:.1f} ms per epoch "
                  f"per fit + {b * 1000:.2f} ms per batch of {batch_size}; query {query:.1f} s per round, test and "
                  f"records {other:.1f} s per round, set-up {summary.get('setup_seconds', 0.0):.0f} s.",
                  f"Schedule projected: {args.rounds} queries of {query_size}, {args.epochs} epochs per fit, labeled "
                  f"set from {plan[0][1]} growing by {query_size} per query up to {int(round(known_total))} (upper "
                  "bound).", ""]
        total = project(a, b)
        lines.append(f"| pipeline | projected {args.rounds}-round run |")
        lines.append("|---|---|")
        lines.append(f"| batched | {total / 60:.1f} min |")
        for name, label in (("large_per_sample", "per_sample"), ("large_compiled", "batched+compile")):
            if name in measured and "large_batched" in measured:
                # per-batch time scaled by the measured throughput ratio on the same large sets
                ratio = measured["large_batched"]["throughput"] / measured[name]["throughput"]
                lines.append(f"| {label} (per-batch time x {ratio:.2f}, measured on the large sets) | "
                             f"{project(a, b * ratio) / 60:.1f} min |")
    report = "\n".join(lines)
    print(report)
    with open(os.path.join(args.out, "paper_protocol.md"), "w") as f:
        f.write(report + "\n")


if __name__ == "__main__":
    main()
