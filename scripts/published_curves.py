"""Turn the per-query logs the LfOSA authors published (log_AL/*.pkl of github.com/ningkp/LfOSA) into a CSV
that `src/report.py` overlays on a sweep's curves.

    git clone https://github.com/ningkp/LfOSA /tmp/LfOSA
    python scripts/published_curves.py /tmp/LfOSA > docs/measurements/published/lfosa_authors_logs.csv

Each log holds, for queries q = 0..9, `Acc[q]` (the classifier's test accuracy in %, measured BEFORE
query q+1), `Precision[q]` and `Recall[q]` (after query q+1; recall counts the initial labeled set,
osal's `recall_incl_initial`). The CSV puts each on osal's rounds (round r = the state after r
queries): accuracy on rounds 0..9, precision and recall on rounds 1..10. Only the logs of methods
osal implements are taken: LfOSA (AV_temperature, T = 0.5 for known and invalid), its T = 1 and T = 2
ablations, Random and Uncertainty.
"""

import csv
import pickle
import re
import sys
from pathlib import Path

# log file name pattern -> osal strategy
STRATEGIES = [
    (r"temperature_resnet18_cifar100_known(\d+)_init8_batch1500_seed(\d)_AV_temperature_unknown_T0\.5_known_T0\.5"
     r"_modelB_T1\.0\.pkl", "lfosa"),
    (r"temperature_resnet18_cifar100_known(\d+)_init8_batch1500_seed(\d)_AV_temperature_unknown_T1\.0_known_T1\.0"
     r"\.pkl", "lfosa_t1"),
    (r"temperature_resnet18_cifar100_known(\d+)_init8_batch1500_seed(\d)_AV_temperature_unknown_T2\.0_known_T2\.0"
     r"\.pkl", "lfosa_t2"),
    (r"resnet18_cifar100_known(\d+)_init8_batch1500_seed(\d)_random\.pkl", "random"),
    (r"resnet18_cifar100_known(\d+)_init8_batch1500_seed(\d)_uncertainty\.pkl", "uncertainty"),
]
COLUMNS = ["dataset", "mismatch", "setting", "strategy", "seed", "round", "recall_incl_initial", "precision",
           "test_accuracy", "source"]


class NumbersOnly(pickle.Unpickler):
    """The logs are dicts of floats: refuse anything that would run code while loading."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"{module}.{name} is not plain data")


def rows_of(path: Path, strategy: str, known: int, seed: int) -> list:
    with open(path, "rb") as f:
        log = NumbersOnly(f).load()
    queries = sorted(log["Acc"])
    rows = []
    for r in range(len(queries) + 1):
        before, after = (queries[r] if r < len(queries) else None), (queries[r - 1] if r > 0 else None)
        rows.append({"dataset": "cifar100", "mismatch": known / 100, "setting": "", "strategy": strategy, "seed": seed,
                     "round": r,
                     "recall_incl_initial": "" if after is None else f"{log['Recall'][after]:.6g}",
                     "precision": "" if after is None else f"{log['Precision'][after]:.6g}",
                     "test_accuracy": "" if before is None else f"{log['Acc'][before] / 100:.6g}",
                     "source": f"log_AL/{path.name}"})
    return rows


def main(argv) -> int:
    if len(argv) != 1 or not (Path(argv[0]) / "log_AL").is_dir():
        print("usage: python scripts/published_curves.py <a clone of github.com/ningkp/LfOSA>", file=sys.stderr)
        return 2
    rows = []
    for path in sorted((Path(argv[0]) / "log_AL").glob("*.pkl")):
        for pattern, strategy in STRATEGIES:
            match = re.fullmatch(pattern, path.name)
            if match:
                rows += rows_of(path, strategy, int(match.group(1)), int(match.group(2)))
    writer = csv.DictWriter(sys.stdout, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(sorted(rows, key=lambda r: (r["mismatch"], r["strategy"], r["seed"], r["round"])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
