"""A report folder may hold runs copied from others: every file the report reads is untrusted input."""


import pytest

from osal.records.metrics import MetricsTable, read_metrics
from osal.stored import DamagedFileError

# -- the checked reader of metrics.csv (files written by osal's own writer, then damaged) --------------------------

def written_metrics(path, rounds=3):
    table = MetricsTable(path)
    for r in range(rounds):
        table.append({"round": r, "n_labeled": 10 + 5 * r, "n_invalid": r, "n_unlabeled": 100 - 5 * r,
                      "queried": 5 if r else 0, "queried_known": 4 if r else 0, "precision": 0.8 if r else None,
                      "recall": 0.1 * r, "recall_incl_initial": 0.2 + 0.1 * r, "test_accuracy": 0.5 + 0.01 * r})
    return path


def test_the_checked_reader_reads_what_osal_wrote_as_read_metrics_does(tmp_path):
    from osal.records.metrics import read_checked_metrics
    path = written_metrics(tmp_path / "metrics.csv")
    assert read_checked_metrics(path, "move it away") == read_metrics(path)


def edit_lines(path, edit):
    lines = path.read_text().splitlines()
    path.write_text("\n".join(edit(lines)) + "\n")


# name: (what is done to the lines of a metrics.csv osal wrote, header first; what the error must say)
READER_DAMAGES = {
    "text cell": (lambda lines: [lines[0], lines[1].replace("10,", "ten,", 1), *lines[2:]],
                  "line 2, column n_labeled: 'ten' is not a number"),
    "extra column": (lambda lines: [lines[0] + ",extra"] + [line + ",1" for line in lines[1:]],
                     "column 'extra', which osal does not write"),
    "extra cell": (lambda lines: [lines[0], lines[1] + ",5", *lines[2:]],
                   "line 2 has 18 cells where its header has 17"),
    "missing column": (lambda lines: [lines[0].replace(",recall,", ","), *lines[1:]], "lacks the column recall"),
    "missing round": (lambda lines: [lines[0], lines[1], lines[3]], "round 1 is missing"),
    "fractional round": (lambda lines: [lines[0], lines[1].replace("0,", "0.5,", 1), *lines[2:]],
                         "round '0.5' is not a whole number"),
    "nan as text": (lambda lines: [lines[0], lines[1], lines[2].replace("0.8", "nan"), lines[3]],
                    "'nan' is not a finite number"),
    "empty": (lambda lines: [], "is empty"),
    "conflict markers": (lambda lines: [lines[0], "<<<<<<< HEAD", lines[1], "=======", lines[1], ">>>>>>> theirs"],
                         "merge-conflict marker on line 2"),
}


@pytest.mark.parametrize("case", sorted(READER_DAMAGES))
def test_the_checked_reader_refuses_what_osal_never_writes_with_one_sentence(tmp_path, case):
    from osal.records.metrics import read_checked_metrics
    damage, said = READER_DAMAGES[case]
    path = written_metrics(tmp_path / "metrics.csv")
    edit_lines(path, damage)
    with pytest.raises(DamagedFileError) as caught:
        read_checked_metrics(path, "move it away")
    message = str(caught.value)
    assert said in message and str(path) in message and "\n" not in message
    assert "move it away" in message or "resolve the conflict" in message
