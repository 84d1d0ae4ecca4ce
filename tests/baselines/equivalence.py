"""Fixed-seed runs whose records must not change when the code is reorganised (issue 12).

`produce(case, root, out, mnist_dir)` runs one case with the checkout at `root` (its
src/train.py or src/annotate.py, as a user would) and writes what is compared into `out`:

    metrics.csv            the run's metrics.csv without its time columns
    pool_round_XX.npz      the run's pool state after each round, as written
    batches.json           (annotation) every batch: indices, suggestions, known probabilities

`python tests/baselines/equivalence.py record [--root CHECKOUT]` writes them under
tests/baselines/<case>/; tests/test_equivalence.py produces them again with this checkout and
compares them with `differences`. The baselines were recorded from main at 72e4724, before issue 12's
changes.

What is compared exactly and what within a tolerance (`differences`): every pick is exact (each
pool_round_XX.npz array for array; an annotation batch's indices, suggestions and known count), and so is
every metrics.csv column computed from counts (the counts, precision, recall). The test metrics of the
classifier and the annotation's known probabilities come out of float training and inference, whose last
bits depend on the CPU's kernels (AVX2 and AVX-512 sum in different orders): after a few epochs those bits
can move a test prediction or two. They are compared within TEST_METRIC_TOLERANCE (half a point, or two
test examples where the known-class test set is small) and KNOWN_PROBABILITY_TOLERANCE; a changed formula
moves them by far more (tests/test_equivalence.py checks that such changes are caught).
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


# metrics.csv columns computed from counts alone: equal on every machine
EXACT_COLUMNS = ("round", "n_labeled", "n_invalid", "n_unlabeled", "queried", "queried_known", "precision", "recall",
                 "recall_incl_initial")
TEST_METRIC_TOLERANCE = 0.005
TEST_EXAMPLES_TOLERATED = 2  # predictions a kernel's rounding may flip, for a small test set
KNOWN_PROBABILITY_TOLERANCE = 1e-3


def test_metric_tolerance(n_test: int) -> float:
    """How far a test metric may move on another CPU's kernels, for a known-class test set of `n_test`."""
    return max(TEST_METRIC_TOLERANCE, TEST_EXAMPLES_TOLERATED / max(n_test, 1))


def known_test_examples(case: str) -> int:
    """The size of the case's known-class test set (digits: 36 per class in the 1 in 5 test split; MNIST:
    about 1,000 per class), for the test metrics' tolerance."""
    overrides = TRAIN_CASES.get(case, ())
    mismatch = next((float(o.split("=")[1]) for o in overrides if o.startswith("mismatch=")), 0.2)
    known = round(mismatch * 10)
    return known * (1000 if "dataset=mnist" in overrides else 35)


def differences(case: str, expected: Path, produced: Path) -> list:
    """What differs between the recorded baseline of `case` and a produced one, within the rules above."""
    import numpy as np
    found = []
    want_names = sorted(p.name for p in expected.iterdir())
    got_names = sorted(p.name for p in produced.iterdir())
    if want_names != got_names:
        return [f"{case}: files {got_names}, recorded {want_names}"]
    for path in sorted(expected.iterdir()):
        other = produced / path.name
        if path.suffix == ".npz":
            with np.load(path) as want, np.load(other) as got:
                if sorted(want.files) != sorted(got.files):
                    found.append(f"{case}/{path.name}: arrays {sorted(got.files)}, recorded {sorted(want.files)}")
                    continue
                found += [f"{case}/{path.name}: {key} differs" for key in want.files
                          if not np.array_equal(want[key], got[key])]
        elif path.name == "metrics.csv":
            found += _metrics_differences(case, path.read_text(), other.read_text())
        elif path.name == "batches.json":
            found += _batch_differences(case, json.loads(path.read_text()), json.loads(other.read_text()))
        elif path.read_text() != other.read_text():
            found.append(f"{case}/{path.name} differs")
    return found


def _metrics_differences(case: str, want_text: str, got_text: str) -> list:
    want, got = list(csv.DictReader(io.StringIO(want_text))), list(csv.DictReader(io.StringIO(got_text)))
    if want_text.splitlines()[0] != got_text.splitlines()[0] or len(want) != len(got):
        return [f"{case}/metrics.csv: columns or rounds differ"]
    tolerance = test_metric_tolerance(known_test_examples(case))
    found = []
    for want_row, got_row in zip(want, got):
        for column, recorded in want_row.items():
            value = got_row[column]
            if column in EXACT_COLUMNS or not recorded or not value:
                same = value == recorded
            else:
                same = abs(float(value) - float(recorded)) <= tolerance
            if not same:
                found.append(f"{case}/metrics.csv round {want_row['round']}: {column} {value}, recorded {recorded}")
    return found


def _batch_differences(case: str, want: dict, got: dict) -> list:
    found = []
    if len(want["batches"]) != len(got["batches"]):
        return [f"{case}/batches.json: {len(got['batches'])} batches, recorded {len(want['batches'])}"]
    for want_batch, got_batch in zip(want["batches"], got["batches"]):
        for key in ("number", "indices", "suggestions", "queried_known"):
            if want_batch[key] != got_batch[key]:
                found.append(f"{case}/batches.json batch {want_batch['number']}: {key} differs")
        far = [i for i, (a, b) in enumerate(zip(want_batch["known_probability"], got_batch["known_probability"]))
               if abs(a - b) > KNOWN_PROBABILITY_TOLERANCE]
        if far or len(want_batch["known_probability"]) != len(got_batch["known_probability"]):
            found.append(f"{case}/batches.json batch {want_batch['number']}: known probabilities differ")
    total, recorded = got["pool_known_probability_sum"], want["pool_known_probability_sum"]
    if abs(total - recorded) > KNOWN_PROBABILITY_TOLERANCE * max(1.0, abs(recorded)):
        found.append(f"{case}/batches.json: pool known probability sum {total}, recorded {recorded}")
    return found


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
