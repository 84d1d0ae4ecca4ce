"""Reorganising the code changes no result: fixed-seed runs give the records recorded before (issue 12).

tests/baselines/<case>/ holds what tests/baselines/equivalence.py produced with main at 72e4724; each case is
run again with this checkout and compared with `equivalence.differences`: every pick exactly (each
pool_round_XX.npz, an annotation session's batches), metrics.csv's count columns exactly, and the classifier's
test metrics and the known probabilities within a stated tolerance, since their last bits depend on the CPU's
floating-point kernels (the module docstring of equivalence.py says how much and why). The comparison must
still catch a changed pick or a changed formula: the tests at the end change the records as such a bug would
and check that it does. Under another torch build the picks themselves may move: re-record the baselines from
a known-good commit with `python tests/baselines/equivalence.py record --root <that checkout>`.
"""

import csv
import io
import json
import shutil
import sys

import numpy as np
import pytest

from conftest import ROOT, SHARED_DATA

sys.path.insert(0, str(ROOT / "tests" / "baselines"))
import equivalence  # noqa: E402

BASELINES = ROOT / "tests" / "baselines"


def recorded_with_another_torch():
    recorded = json.loads((BASELINES / "machine.json").read_text())["torch"]
    here = equivalence.machine()["torch"]
    return None if recorded == here else (recorded, here)


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory):
    if not (SHARED_DATA / "materialize.py").exists():
        pytest.skip(f"no shared real data at {SHARED_DATA} (a development-only folder) for the MNIST case")
    return equivalence.materialize_mnist(tmp_path_factory.mktemp("mnist"))


@pytest.mark.slow
@pytest.mark.parametrize("case", equivalence.CASES)
def test_records_equal_the_baseline(case, tmp_path, request):
    other_torch = recorded_with_another_torch()
    if other_torch:
        pytest.skip(f"baselines recorded with torch {other_torch[0]}, this is {other_torch[1]}; re-record them")
    mnist = request.getfixturevalue("mnist_dir") if equivalence.needs_mnist(case) else None
    produced = equivalence.produce(case, ROOT, tmp_path / case, mnist)
    assert equivalence.differences(case, BASELINES / case, produced) == []


# -- the comparison keeps its power: what a bug would change is caught ------------------------------------------

def copy_of(case, tmp_path):
    copy = tmp_path / case
    shutil.copytree(BASELINES / case, copy)
    return copy


def rewrite_metrics(directory, change):
    path = directory / "metrics.csv"
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    for row in rows:
        change(row)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(out.getvalue())


@pytest.mark.parametrize("case", equivalence.CASES)
def test_a_baseline_equals_itself(case):
    assert equivalence.differences(case, BASELINES / case, BASELINES / case) == []


def test_test_metrics_within_the_tolerance_pass_and_beyond_it_fail(tmp_path):
    case = "mnist_lfosa"  # the case whose last round moved by 0.0006 on an AVX2 machine
    moved = copy_of(case, tmp_path / "moved")
    rewrite_metrics(moved, lambda row: row.update(test_accuracy=f"{float(row['test_accuracy']) + 0.0006:.6g}"))
    assert equivalence.differences(case, BASELINES / case, moved) == []
    changed = copy_of(case, tmp_path / "changed")
    rewrite_metrics(changed, lambda row: row.update(test_accuracy=f"{float(row['test_accuracy']) + 0.01:.6g}"))
    assert len(equivalence.differences(case, BASELINES / case, changed)) == 3


def f1_of_the_macro_averages(row):
    """A classic formula bug: F1 of macro precision and recall instead of the macro average of the F1s."""
    p, r = float(row["test_macro_precision"]), float(row["test_macro_recall"])
    row["test_macro_f1"] = f"{2 * p * r / (p + r):.6g}"


def recall_with_the_initial_set(row):
    """Eq. 1 replaced by the authors' code's recall (initial labels counted as found)."""
    row["recall"] = row["recall_incl_initial"]


def precision_over_the_labeled_set(row):
    row["precision"] = f"{int(row['queried_known']) / int(row['n_labeled']):.6g}" if row["precision"] else ""


@pytest.mark.parametrize("bug", [f1_of_the_macro_averages, recall_with_the_initial_set,
                                 precision_over_the_labeled_set])
def test_a_changed_metric_formula_is_caught(tmp_path, bug):
    caught = []
    for case in equivalence.TRAIN_CASES:
        changed = copy_of(case, tmp_path)
        rewrite_metrics(changed, bug)
        caught += equivalence.differences(case, BASELINES / case, changed)
    assert caught, f"{bug.__name__} went unnoticed"


def test_one_changed_pick_is_caught(tmp_path):
    case = "digits_lfosa"
    changed = copy_of(case, tmp_path)
    path = changed / "pool_round_03.npz"
    with np.load(path) as data:
        arrays = {key: data[key].copy() for key in data.files}
    queried = np.flatnonzero(arrays["query_round"] == 3)
    never = np.flatnonzero(arrays["query_round"] == -1)
    arrays["query_round"][[queried[0], never[0]]] = -1, 3  # one example swapped for another
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)
    assert equivalence.differences(case, BASELINES / case, changed) == [f"{case}/pool_round_03.npz: query_round "
                                                                        "differs"]


def test_a_changed_annotation_pick_or_probability_is_caught(tmp_path):
    case = "annotate_digits"
    for key, change in (("indices", lambda b: b["indices"].reverse()),
                        ("suggestions", lambda b: b["suggestions"].__setitem__(0, "9")),
                        ("known probabilities", lambda b: b["known_probability"].__setitem__(0, 0.5))):
        changed = copy_of(case, tmp_path / key.replace(" ", "_"))
        record = json.loads((changed / "batches.json").read_text())
        change(record["batches"][1])
        (changed / "batches.json").write_text(json.dumps(record))
        assert equivalence.differences(case, BASELINES / case, changed) == [
            f"{case}/batches.json batch 2: {key} differ{'s' if key != 'known probabilities' else ''}"]
