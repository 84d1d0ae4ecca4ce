"""A report folder may hold runs copied from others: every file the report reads is untrusted input.

A run whose files cannot be used is left out of the table and listed with one sentence naming the file and
the fix; the report goes on with the others, and exits 2 with one sentence when none is left. Two copies of
one run (the same config, result-neutral settings aside) count once.
"""

import hashlib
import os
import shutil
import subprocess
import sys

import pytest

from osal.records.metrics import MetricsTable, read_metrics
from osal.stored import DamagedFileError

from conftest import FAST, ROOT, compose_config, run_train

RUN = ["trainer=cpu", "trainer.enable_progress_bar=false", "logger=none", "mismatch=0.4", "al.rounds=2",
       "trainer.max_epochs=1"]
SEED1, SEED2 = "0_digits_mismatch0.4_lfosa_seed1", "1_digits_mismatch0.4_lfosa_seed2"


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
                  "line 2 holds 'ten' as n_labeled, where a number belongs"),
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


# -- which runs are copies of one run ---------------------------------------------------------------------------------

def test_of_copies_of_one_run_the_finished_counts_and_another_seed_or_setting_is_no_copy(tmp_path):
    """Configs as Hydra saves them (composed, then written by OmegaConf.save), read back as the report reads them."""
    from omegaconf import OmegaConf

    from osal.report.duplicates import one_of_each
    from osal.report.run_config import run_config

    def run(name, overrides, finished, reached):
        path = tmp_path / name / ".hydra" / "config.yaml"
        path.parent.mkdir(parents=True)
        OmegaConf.save(compose_config(FAST + ["dataset=mnist", *overrides]), path)
        return {"dir": str(tmp_path / name), "config": run_config(path, "move it away")[1], "finished": finished,
                "reached": reached}

    unfinished = run("a", ["seed=1"], False, 1)
    # where the data was read from (split.source.root copies it) and how it was fed change no result
    finished = run("b", ["seed=1", "data_dir=/elsewhere", "data.num_workers=3"], True, 2)
    other_seed = run("c", ["seed=2"], True, 2)
    longer = run("d", ["seed=1", "al.rounds=3"], True, 3)  # al.rounds changes where a run ends
    other_lr = run("e", ["seed=1", "optimizer.lr=0.01"], True, 2)
    counted, duplicates = one_of_each([unfinished, finished, other_seed, longer, other_lr])
    assert counted == [finished, other_seed, longer, other_lr]
    assert duplicates == [(finished, [unfinished])]


# -- the report over run folders copied from others -----------------------------------------------------------------

@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Two finished LfOSA runs (seeds 1 and 2, rounds 0..2), copied and damaged by each test."""
    root = tmp_path_factory.mktemp("sweep")
    result = run_train("-m", *RUN, "seed=1,2", f"hydra.sweep.dir={root}")
    assert result.returncode == 0, result.stderr[-3000:]
    return root


def copy_of(sweep, tmp_path):
    folder = tmp_path / "runs"
    shutil.copytree(sweep, folder, symlinks=True)
    return folder


def report(root, tmp_path):
    return subprocess.run([sys.executable, "src/report.py", str(root), "--out", str(tmp_path / "report"),
                           "--no-figures"], cwd=ROOT, capture_output=True, text=True, timeout=300)


def snapshot(folder):
    """Every file under `folder` with a hash of its bytes (links as their target), to see nothing changed."""
    files = {}
    for directory, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(directory, name)
            files[path] = os.readlink(path) if os.path.islink(path) else \
                hashlib.sha256(open(path, "rb").read()).hexdigest()
    return files


def row(text, strategy="lfosa"):
    return next(line for line in text.splitlines() if line.startswith(f"| digits | 0.4 | {strategy} |"))


def edit_metrics(run, edit_rows):
    """Rewrite a run's metrics.csv, its lines (header first) passed through `edit_rows`."""
    path = run / "metrics.csv"
    path.write_text("\n".join(edit_rows(path.read_text().splitlines())) + "\n")


def text_cell(run):
    edit_metrics(run, lambda lines: [*lines[:2], "1,abc" + lines[2][lines[2].index(",", 2):], *lines[3:]])


def extra_column(run):
    edit_metrics(run, lambda lines: [lines[0] + ",extra"] + [line + ",1" for line in lines[1:]])


def conflict_markers(run):
    # a merge of two copies of the file, each side with its own round 2
    edit_metrics(run, lambda lines: [*lines[:3], "<<<<<<< HEAD", lines[3], "=======", lines[3].replace("2,", "2,1", 1),
                                     ">>>>>>> theirs"])


def empty_final_recall(run):
    recall = (run / "metrics.csv").read_text().splitlines()[0].split(",").index("recall")
    edit_metrics(run, lambda lines: [*lines[:3], ",".join("" if i == recall else cell
                                                          for i, cell in enumerate(lines[3].split(",")))])


def missing_middle_round(run):
    edit_metrics(run, lambda lines: [lines[0], lines[1], lines[3]])


def text_seed(run):
    path = run / ".hydra" / "config.yaml"
    path.write_text(path.read_text().replace("seed: 2\n", "seed: two\n"))


def dangling_metrics_link(run):
    (run / "metrics.csv").unlink()
    os.symlink("/nonexistent/metrics.csv", run / "metrics.csv")


# name: (what is done to seed 2's run folder, what the report must say of it)
DAMAGES = {
    "text cell": (text_cell, "line 3 holds 'abc' as n_labeled, where a number belongs"),
    "extra column": (extra_column, "column 'extra', which osal does not write"),
    "another Hydra app": (lambda run: (run / ".hydra" / "config.yaml").write_text("db:\n  driver: mysql\nuser: me\n"),
                          "is not an osal run's config (it lacks dataset.name"),
    "conflict markers": (conflict_markers, "merge-conflict marker on line 4"),
    "empty final recall": (empty_final_recall, "has no recall in round 2"),
    "missing middle round": (missing_middle_round, "round 1 is missing"),
    "empty metrics.csv": (lambda run: (run / "metrics.csv").write_text(""), "metrics.csv is empty"),
    "invalid YAML": (lambda run: (run / ".hydra" / "config.yaml").write_text("seed: [1\n"), "is not valid YAML"),
    "text seed": (text_seed, "seed is 'two', not a whole number"),
    "broken overrides": (lambda run: (run / ".hydra" / "overrides.yaml").write_text("a: [\n"), "is not valid YAML"),
    "not UTF-8": (lambda run: (run / "metrics.csv").write_bytes(b"\xff\xfe\x00round"), "is not UTF-8"),
    "copied without .hydra": (lambda run: shutil.rmtree(run / ".hydra"), "holds metrics.csv but no .hydra/config.yaml"),
    "dangling metrics link": (dangling_metrics_link, "there is no such file or folder"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(DAMAGES))
def test_a_run_with_unusable_files_is_listed_with_the_reason_and_the_report_goes_on(sweep, tmp_path, case):
    root = copy_of(sweep, tmp_path)
    damage, said = DAMAGES[case]
    damage(root / SEED2)
    before = snapshot(root)
    result = report(root, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    text = (tmp_path / "report" / "report.md").read_text()
    cells = [c.strip() for c in row(text).strip("|").split("|")]
    assert cells[3] == "1" and "±" not in row(text) and "nan" not in row(text)  # seed 1 alone
    assert "Runs left out, their files unusable (1):" in text
    listed = next(line for line in text.splitlines() if str(root / SEED2) in line and line.startswith("- "))
    assert said in listed, listed
    assert said in result.stdout
    assert snapshot(root) == before  # the runs were only read


@pytest.mark.slow
def test_a_symlink_loop_in_the_folder_does_not_stop_the_report(sweep, tmp_path):
    root = copy_of(sweep, tmp_path)
    os.symlink("..", root / SEED2 / "up")  # a folder that holds the folder it is in
    os.symlink(root / SEED2, root / SEED2 / "itself")
    result = report(root, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| 2 |" in row((tmp_path / "report" / "report.md").read_text())


@pytest.mark.slow
def test_when_no_run_is_usable_the_report_is_one_sentence_and_exit_2(sweep, tmp_path):
    root = copy_of(sweep, tmp_path)
    for name in (SEED1, SEED2):
        (root / name / ".hydra" / "config.yaml").write_text("db:\n  driver: mysql\n")
    result = report(root, tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: no run under ") and result.stderr.count("\n") == 1
    assert "2 run folders were left out" in result.stderr and "lacks dataset.name" in result.stderr
    assert not (tmp_path / "report" / "report.md").exists()


@pytest.mark.slow
def test_two_copies_of_one_run_count_once_and_the_duplicate_is_named(sweep, tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    shutil.copytree(sweep / SEED1, root / "mine")
    shutil.copytree(sweep / SEED1, root / "from_a_colleague")
    # a result-neutral setting differs (where the data was read from): still the same run
    config = root / "mine" / ".hydra" / "config.yaml"
    config.write_text(config.read_text().replace("data_dir: ", "data_dir: /elsewhere #"))
    result = report(root, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    text = (tmp_path / "report" / "report.md").read_text()
    cells = [c.strip() for c in row(text).strip("|").split("|")]
    assert cells[3] == "1" and "±" not in row(text)
    duplicate = next(line for line in text.splitlines() if "duplicate" in line.lower() and line.startswith("- "))
    assert str(root / "from_a_colleague") in duplicate and str(root / "mine") in duplicate


@pytest.mark.slow
def test_a_copy_beside_another_seed_leaves_two_runs_not_three(sweep, tmp_path):
    root = copy_of(sweep, tmp_path)
    shutil.copytree(sweep / SEED1, root / "copy_of_seed1")
    result = report(root, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    text = (tmp_path / "report" / "report.md").read_text()
    assert [c.strip() for c in row(text).strip("|").split("|")][3] == "2"
    assert "Duplicate runs, each counted once (1):" in text


@pytest.mark.slow
def test_a_published_curves_file_with_a_text_number_is_one_sentence_naming_it(sweep, tmp_path):
    published = tmp_path / "published"
    published.mkdir()
    (published / "theirs.csv").write_text("dataset,mismatch,setting,strategy,seed,round,recall_incl_initial,precision,"
                                          "test_accuracy,source\ndigits,zero point four,,lfosa,1,0,,,0.5,a log\n")
    result = subprocess.run([sys.executable, "src/report.py", str(sweep), "--out", str(tmp_path / "report"),
                             "--no-figures", "--published", str(published)], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr and result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: {published / 'theirs.csv'} line 2: mismatch 'zero point four' is not "
                                    "a number")
    assert "--no-published" in result.stderr
    assert not (tmp_path / "report").exists()
