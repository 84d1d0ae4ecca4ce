"""Seconds per round and per whole default run of `src/train.py`, per dataset and data pipeline.

    python benchmarks/run_time.py [--datasets digits mnist] [--data-dir DIR] [--pipelines batched per_sample]

Each job is the dataset's default protocol (its config file), LfOSA, run as a user runs it
(a subprocess, logger=none, no progress bar) into a temporary folder. The table splits a
round into fitting (detector + classifier), the query (inference + selection) and the rest
(testing, records), read from the run's metrics.csv and summary.json; `wall` is the whole
command, Python start-up and data loading included.
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


def run(dataset, pipeline, data_dir, out, extra):
    run_dir = os.path.join(out, f"{dataset}_{pipeline}")
    command = [sys.executable, os.path.join(ROOT, "src", "train.py"), f"dataset={dataset}", f"data_dir={data_dir}",
               f"data.pipeline={pipeline}", "logger=none", "trainer.enable_progress_bar=false",
               f"hydra.run.dir={run_dir}", *extra]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        print(f"{dataset}/{pipeline} failed:\n{result.stderr[-2000:]}", file=sys.stderr)
        return None
    with open(os.path.join(run_dir, "metrics.csv")) as f:
        rows = list(csv.DictReader(f))
    with open(os.path.join(run_dir, "summary.json")) as f:
        summary = json.load(f)
    fit = sum(float(r["fit_seconds"]) for r in rows)
    query = sum(float(r["query_seconds"]) for r in rows)
    rest = summary["loop_seconds"] - fit - query
    return {"rounds": len(rows) - 1, "wall": wall, "setup": summary["setup_seconds"], "fit": fit, "query": query,
            "rest": rest, "per_round": summary["loop_seconds"] / len(rows),
            "recall": float(rows[-1]["recall"]), "accuracy": float(rows[-1]["test_accuracy"])}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["digits"])
    parser.add_argument("--data-dir", default=os.environ.get("OSAL_DATA_DIR", "data"))
    parser.add_argument("--pipelines", nargs="+", default=["batched", "per_sample"])
    parser.add_argument("overrides", nargs="*", help="more config overrides for every job")
    args = parser.parse_args(argv)
    print(f"machine: {describe()}")
    print("seconds; a round = one row of metrics.csv (round 0 fits the classifier only)")
    print(f"{'dataset':<10}{'pipeline':<12}{'rounds':>7}{'wall':>8}{'set-up':>8}{'fit':>8}{'query':>8}{'rest':>8}"
          f"{'s/round':>9}{'recall':>8}{'acc':>7}", flush=True)
    with tempfile.TemporaryDirectory() as out:
        for dataset in args.datasets:
            for pipeline in args.pipelines:
                r = run(dataset, pipeline, args.data_dir, out, args.overrides)
                if r is None:
                    continue
                print(f"{dataset:<10}{pipeline:<12}{r['rounds']:>7}{r['wall']:>8.1f}{r['setup']:>8.1f}{r['fit']:>8.1f}"
                      f"{r['query']:>8.1f}{r['rest']:>8.1f}{r['per_round']:>9.1f}{r['recall']:>8.3f}"
                      f"{r['accuracy']:>7.3f}", flush=True)


if __name__ == "__main__":
    main()
