"""The estimate a run prints before round 0 against the time the whole run then took, on this machine.

    python benchmarks/estimate_check.py --data-dir DIR "dataset=digits strategy=lfosa" "experiment=mnist_recall"
    python benchmarks/estimate_check.py --data-dir DIR docs/measurements/campaigns/strategy_grid/runs/mnist_*_seed1

Each argument is one run's overrides (trainer=cpu, logger=none and a temporary run directory are added), or a
finished run's directory. For each, the estimate is computed as `src/train.py` computes it
(osal.loop.protocol_estimate: a probe of a few training steps, a 2-epoch Lightning fit and an inference batch,
times the protocol's schedule); then the run is made as a user makes it (a subprocess) and timed by its
summary.json (its rounds: fits, queries, tests, records; data loading and Python start-up left out of both), or
the finished run's rounds are read from its metrics.csv (fits and queries: a run resumed over several
windows has no single loop time). The probe and the runs share the machine with whatever else runs on it.
"""

import argparse
import csv
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "src"))

from machine import describe  # noqa: E402

COMMON = ["trainer=cpu", "logger=none", "trainer.enable_progress_bar=false"]


def estimate(overrides: list) -> tuple[tuple[float, float], str]:
    """((the low and the high estimate of the whole run's seconds), its protocol in words), as the run computes
    them."""
    from hydra import compose, initialize_config_dir

    from osal.build import build
    from osal.loop.data import open_set_data
    from osal.loop.protocol_estimate import estimate_range, probe, protocol_of
    with initialize_config_dir(config_dir=os.path.join(ROOT, "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    strategy = build(cfg.strategy.selector)
    split, datamodule = open_set_data(cfg)
    protocol = protocol_of(cfg, datamodule, strategy.query_model == "detector", tuple(strategy.needs),
                           split.n_known_initial_pool)
    words = (f"{cfg.dataset.name}, {cfg.strategy.name}, {protocol.rounds} x {protocol.query_size}, "
             f"{protocol.schedule.epochs} epochs")
    return estimate_range(protocol, probe(cfg, datamodule)), words


def measured(overrides: list, run_dir: str) -> float:
    """Seconds the run's rounds took: fits, queries, tests and records (summary.json's loop_seconds)."""
    command = [sys.executable, os.path.join(ROOT, "src", "train.py"), *overrides, f"hydra.run.dir={run_dir}",
               "estimate=false"]
    done = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    if done.returncode:
        sys.exit(f"{' '.join(overrides)} failed:\n{done.stderr[-2000:]}")
    with open(os.path.join(run_dir, "summary.json")) as f:
        summary = json.load(f)
    with open(os.path.join(run_dir, "metrics.csv")) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == summary["rows"]
    return float(summary["loop_seconds"])


def finished(run_dir: str) -> tuple[list, float]:
    """(the overrides a finished run was made with, the seconds of its fits and queries)."""
    import yaml
    with open(os.path.join(run_dir, ".hydra", "overrides.yaml")) as f:
        overrides = [o for o in yaml.safe_load(f) if o.split("=")[0] not in ("data_dir", "deadline", "logger",
                                                                            "trainer.enable_progress_bar")]
    with open(os.path.join(run_dir, "metrics.csv")) as f:
        rows = list(csv.DictReader(f))
    if not os.path.exists(os.path.join(run_dir, "summary.json")):
        sys.exit(f"{run_dir} is not a finished run (no summary.json)")
    return overrides, sum(float(r["fit_seconds"]) + float(r["query_seconds"] or 0) for r in rows)


def main(argv: list = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="one quoted string of overrides per run")
    parser.add_argument("--data-dir", default=os.environ.get("OSAL_DATA_DIR", "data"))
    args = parser.parse_args(argv)
    import torch

    from osal.quiet import quiet_lightning
    torch.set_num_threads(1)  # as the run (OMP_NUM_THREADS=1)
    quiet_lightning()
    print(f"machine: {describe()}")
    print(f"{'run':<48}{'estimated':>18}{'measured':>10}  within")
    with tempfile.TemporaryDirectory() as scratch:
        for i, run in enumerate(args.runs):
            done = os.path.isdir(run)
            given, took = finished(run) if done else (shlex.split(run), None)
            overrides = [*given, f"data_dir={args.data_dir}", *COMMON]
            started = time.perf_counter()
            guess, words = estimate(overrides)
            probe_seconds = time.perf_counter() - started
            if not done:
                took = measured(overrides, os.path.join(scratch, f"run{i}"))
            (low, high) = guess
            verdict = "yes" if low <= took <= high else f"{took / high:.2f} x high" if took > high else \
                f"{took / low:.2f} x low"
            print(f"{words:<48}{low:>8.0f} -{high:>7.0f} s{took:>8.0f} s  {verdict}"
                  f"   (probe, data: {probe_seconds:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
