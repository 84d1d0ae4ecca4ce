"""Fixed-seed runs whose records must not change when the code is reorganised (issue 12).

`produce(case, root, out, mnist_dir)` runs one case with the checkout at `root` (its
src/train.py or src/annotate.py, as a user would) and writes what is compared into `out`:

    metrics.csv            the run's metrics.csv without its time columns
    pool_round_XX.npz      the run's pool state after each round, as written
    batches.json           (annotation) every batch: indices, suggestions, known probabilities

`python tests/baselines/equivalence.py record [--root CHECKOUT]` writes them under
tests/baselines/<case>/; tests/test_equivalence.py produces them again with this checkout and
compares byte for byte. The baselines were recorded from main at 72e4724, before issue 12's changes.
"""

import argparse
import csv
import io
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TIME_COLUMNS = ("query_seconds", "inference_seconds", "selection_seconds", "fit_seconds")
FAST = ["trainer=cpu", "trainer.enable_progress_bar=false", "logger=none"]

# name -> overrides of src/train.py; "{mnist}" is a folder holding MNIST/raw (materialized from ../shared/data)
TRAIN_CASES = {
    # the default job: LfOSA's detector, GMMs, the classifier tested each round
    "digits_lfosa": ["seed=3"],
    # classifier-queried, MC dropout scores reduced during inference
    "digits_bald": ["strategy=bald", "seed=4", "al.rounds=3"],
    # the labeled set's features as well as the pool's
    "digits_coreset": ["strategy=coreset", "seed=5", "al.rounds=3"],
    # a strategy that replaces the classifier (trained on labeled + invalid) and queries with it
    "digits_lfosa_no_classifier": ["strategy=lfosa_no_classifier", "seed=6", "al.rounds=3"],
    # labeled logits and targets (class means of the correctly classified)
    "digits_openmax": ["strategy=openmax", "seed=7", "al.rounds=3", "mismatch=0.4"],
    # the real MNIST, reduced to stay quick
    "mnist_lfosa": ["dataset=mnist", "dataset.source.download=false", "data_dir={mnist}", "mismatch=0.3",
                    "al.rounds=2", "al.query_size=300", "trainer.max_epochs=2", "seed=2"],
}
ANNOTATE_CASES = ("annotate_digits",)
CASES = tuple(TRAIN_CASES) + ANNOTATE_CASES


def needs_mnist(case: str) -> bool:
    return "{mnist}" in " ".join(TRAIN_CASES.get(case, ()))


def machine() -> dict:
    """Where a baseline was recorded: float results may differ in the last bits on another CPU or torch."""
    import torch
    model = ""
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    return {"cpu": model or platform.processor(), "torch": torch.__version__.split("+")[0],
            "python": platform.python_version()}


def _run(args, root, timeout=900):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "WANDB_MODE": "disabled"}
    done = subprocess.run([sys.executable, *args], cwd=root, capture_output=True, text=True, env=env,
                          timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n"
                           f"{done.stderr[-3000:]}")
    return done


def strip_time_columns(text: str) -> str:
    rows = list(csv.DictReader(io.StringIO(text)))
    columns = [c for c in text.splitlines()[0].split(",") if c not in TIME_COLUMNS]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def produce_train(case: str, root, out: Path, mnist_dir=None) -> None:
    run_dir = out / "run"
    overrides = [o.replace("{mnist}", str(mnist_dir)) for o in TRAIN_CASES[case]]
    _run(["src/train.py", *FAST, *overrides, f"hydra.run.dir={run_dir}"], root)
    with open(run_dir / "metrics.csv") as f:
        (out / "metrics.csv").write_text(strip_time_columns(f.read()))
    for pool_file in sorted(run_dir.glob("pool_round_*.npz")):
        shutil.copy(pool_file, out / pool_file.name)
    shutil.rmtree(run_dir)


def produce_annotate(root, out: Path) -> None:
    """init on 300 digit PNGs (classes 0, 1, 2), two batches answered from the ground truth, a third asked."""
    sys.path.insert(0, str(Path(root) / "scripts"))
    try:
        import digits_to_pngs
    finally:
        sys.path.pop(0)
    images = out / "digits"
    digits_to_pngs.write_digits(str(images), count=300, known=("0", "1", "2"), initial=2)
    project = out / "project"
    knobs = ["dataset.channels=1", "trainer=cpu", "trainer.max_epochs=4", "al.query_size=20", "seed=3"]
    _run(["src/annotate.py", "-p", str(project), "init", "--images", str(images / "images"), "--classes", "0,1,2",
          "--labels", str(images / "initial.csv"), *knobs], root)
    for number in (1, 2, 3):
        _run(["src/annotate.py", "-p", str(project), "next"], root)
        if number < 3:
            sheet = project / "batches" / f"batch_{number:02d}" / "answers.csv"
            digits_to_pngs.fill_answers(str(images / "truth.csv"), str(sheet), ("0", "1", "2"))
            _run(["src/annotate.py", "-p", str(project), "import", str(sheet)], root)
    import numpy as np
    with np.load(project / "state.npz") as data:
        batches = json.loads(str(data["meta"]))["batches"]
        known = data["known_probability"]
    # probabilities to 6 digits, as the answer sheet shows 3: the comparison is of the choices made
    record = {"batches": [{k: b[k] for k in ("number", "indices", "suggestions", "queried_known")} |
                          {"known_probability": [round(p, 6) for p in b["known_probability"]]} for b in batches],
              "pool_known_probability_sum": round(float(np.nansum(known)), 4)}
    (out / "batches.json").write_text(json.dumps(record, indent=1) + "\n")
    shutil.rmtree(project)
    shutil.rmtree(images)


def produce(case: str, root, out, mnist_dir=None) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if case in ANNOTATE_CASES:
        produce_annotate(root, out)
    else:
        produce_train(case, root, out, mnist_dir)
    return out


def materialize_mnist(dest) -> Path:
    """MNIST/raw under `dest` from the shared copy (tests and this script only; the product never reads it)."""
    shared = HERE.parents[2] / "shared" / "data"
    if not (Path(dest) / "MNIST" / "raw").is_dir():
        _run([str(shared / "materialize.py"), str(dest), "mnist"], HERE)
    return Path(dest)


def main() -> None:
    parser = argparse.ArgumentParser(description="record the fixed-seed baselines of tests/test_equivalence.py")
    parser.add_argument("command", choices=["record"])
    parser.add_argument("--root", default=str(HERE.parents[1]), help="the checkout whose code records them")
    parser.add_argument("--cases", nargs="*", default=list(CASES))
    parser.add_argument("--mnist-dir", default="/tmp/osal-equivalence-mnist")
    args = parser.parse_args()
    for case in args.cases:
        mnist = materialize_mnist(args.mnist_dir) if needs_mnist(case) else None
        target = HERE / case
        if target.exists():
            shutil.rmtree(target)
        produce(case, args.root, target, mnist)
        print(f"recorded {case}: {sorted(p.name for p in target.iterdir())}", flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=args.root, capture_output=True,
                            text=True).stdout.strip()
    (HERE / "machine.json").write_text(json.dumps({**machine(), "commit": commit}, indent=1) + "\n")


if __name__ == "__main__":
    main()
