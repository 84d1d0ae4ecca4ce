"""Annotation with a person as the oracle, driven through its files: a scripted annotator fills the sheets.

One small project (300 digits written as PNGs, 3 wanted classes, tiny fits) is created once;
every malformed answer file is tried on its first batch and must change nothing.
"""

import csv
import json
import shutil

import numpy as np
import pytest

from osal.annotate import session
from osal.annotate.cli import main
from osal.annotate.create import create_project
from osal.annotate.export import export, predict
from osal.annotate.project import AnnotationError, Project
from osal.data.oracle import UNKNOWN, HumanOracle, Oracle, SimulatedOracle

from annotation_helpers import (  # noqa: F401
    DIGITS,
    FAST,
    KNOWN,
    digits,
    fill_sheet,
    first_batch,
    label_studio_export,
    read_sheet,
    state_bytes,
    truthful,
    write_sheet,
)


# -- one oracle interface -------------------------------------------------------------------
def test_human_and_simulated_oracles_answer_through_one_code_path(first_batch):
    labels = np.array([0, 5, 1, 2, 7, 1])
    project = Project(first_batch)
    states = []
    for oracle in (SimulatedOracle(labels, 3), HumanOracle([4, 1, 3, 0], [UNKNOWN, UNKNOWN, 2, 0], 3)):
        assert isinstance(oracle, Oracle)
        datamodule = project.datamodule(images=np.zeros((len(labels), 8, 8, 1), dtype=np.uint8))
        pool = datamodule.pool
        pool.oracle = oracle
        assert pool.annotate([0, 1, 3, 4], round_index=1) == {"queried": 4, "queried_known": 2}
        states.append((pool.pool_state.state.tolist(), pool.answers.tolist()))
    assert states[0] == states[1]
    with pytest.raises(KeyError, match="no answer for pool index 5"):
        HumanOracle([0], [1], 3).answer([0, 5])


# -- init ---------------------------------------------------------------------------------
def _init_case(tmp_path, digits, images=None, classes=KNOWN, labels=None, rows=None, overrides=FAST):
    folder, _ = digits
    if rows is not None:
        labels = tmp_path / "labels.csv"
        write_sheet(labels, rows, columns=("path", "class"))
    create_project(tmp_path / "project", images or folder / "images", list(classes),
                   labels or folder / "initial.csv", overrides)


INIT_ERRORS = {
    "missing folder": (dict(images="/nonexistent/images"), "image folder /nonexistent/images does not exist"),
    "duplicated class": (dict(classes=("0", "1", "0")), "wanted class '0' is listed more than once"),
    "one class": (dict(classes=("0",)), "give at least two"),
    "class named unknown": (dict(classes=("0", "Unknown")), "cannot be used"),
    "missing labels file": (dict(labels="/nonexistent.csv"), "initial labels file /nonexistent.csv does not exist"),
    "bad override": (dict(overrides=["strategy=nonsense"]), "do not compose"),
    "mqnet": (dict(overrides=FAST + ["strategy=mqnet"]), "strategy=mqnet runs in src/train.py but not in annotation"),
    "bual": (dict(overrides=FAST + ["strategy=bual"]), "strategy=bual runs in src/train.py but not in annotation"),
    "class not wanted": (dict(rows=[{"path": "digit_0000.png", "class": "seven"}]),
                         "row 2: class 'seven' of digit_0000.png is not one of: 0, 1, 2, unknown"),
    "path not in folder": (dict(rows=[{"path": "elsewhere/x.png", "class": "0"}]),
                           "row 2: path 'elsewhere/x.png' is not an image in"),
    "labeled twice": (dict(rows=[{"path": "digit_0000.png", "class": "0"}, {"path": "digit_0000.png", "class": "1"}]),
                      "row 3: digit_0000.png is labeled again (first in row 2)"),
    "class without example": (dict(rows=[{"path": "digit_0000.png", "class": "0"},
                                         {"path": "digit_0001.png", "class": "1"}]),
                              "hold no image of wanted class '2'"),
}


@pytest.mark.parametrize("case", sorted(INIT_ERRORS))
def test_init_refuses_bad_input_and_creates_nothing(case, tmp_path, digits):
    kwargs, message = INIT_ERRORS[case]
    with pytest.raises(AnnotationError) as error:
        _init_case(tmp_path, digits, **kwargs)
    assert message in str(error.value)
    assert not (tmp_path / "project").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]


def test_init_refuses_an_existing_project(first_batch, digits):
    folder, _ = digits
    with pytest.raises(AnnotationError, match="already holds an annotation project"):
        create_project(first_batch, folder / "images", list(KNOWN), folder / "initial.csv", FAST)


def test_init_records_the_initial_labels(first_batch, digits):
    _, truth = digits
    project = Project(first_batch)
    assert project.class_names == list(KNOWN) and len(project.paths) == 300
    initial = project.pool.queried_in(0)
    assert len(initial) == 6 and list(project.pool.labeled) == sorted(initial.tolist())
    assert [project.class_names[project.answers[i]] for i in initial] == [truth[project.paths[i]] for i in initial]


# -- the batch files ------------------------------------------------------------------------
def test_next_writes_the_batch_three_ways(first_batch):
    project = Project(first_batch)
    batch = project.pending
    assert batch["number"] == 1 and len(batch["indices"]) == 20
    assert not set(batch["indices"]) & set(project.pool.queried_in(0).tolist())
    directory = project.batch_dir(1)
    rows = read_sheet(f"{directory}/answers.csv")
    assert list(rows[0]) == ["item", "path", "suggestion", "known_probability", "answer"]
    assert [r["path"] for r in rows] == [project.paths[i] for i in batch["indices"]]
    assert all(r["answer"] == "" and r["suggestion"] in KNOWN + ("unknown",) for r in rows)
    probabilities = [float(r["known_probability"]) for r in rows]
    assert all(0 <= p <= 1 for p in probabilities)
    assert probabilities == sorted(probabilities, reverse=True)  # LfOSA asks the most probably known first
    with open(f"{directory}/tasks.json") as f:
        tasks = json.load(f)
    assert [t["data"]["path"] for t in tasks] == [r["path"] for r in rows]
    prediction = tasks[0]["predictions"][0]
    assert prediction["result"][0]["value"]["choices"] == [rows[0]["suggestion"]]
    assert prediction["result"][0]["from_name"] == "choice" and prediction["result"][0]["to_name"] == "image"
    config = open(f"{directory}/labeling_config.xml").read()
    assert all(f'<Choice value="{c}"/>' in config for c in KNOWN + ("unknown",))
    assert '<Image name="image" value="$image"/>' in config
    sheet = open(f"{directory}/contact_sheet.html").read()
    assert sheet.count("data:image/png;base64,") == 20 and "image-rendering: pixelated" in sheet
    assert sheet.count('<button data-answer="unknown">') == 20 and "Download batch_01_answers.csv" in sheet
    assert sheet.index(rows[0]["path"]) < sheet.index(rows[1]["path"])  # cards in the order queried


def test_next_refuses_while_a_batch_waits(first_batch):
    with pytest.raises(AnnotationError, match="batch 1 is still waiting for answers"):
        session.next_batch(Project(first_batch))


# -- malformed answers: a clear list of the offending rows, and nothing applied -------------------
def _other_pool_image(project):
    return project.paths[int(project.pool.unlabeled[~np.isin(project.pool.unlabeled,
                                                               project.pending["indices"])][0])]


def _malformed(kind, rows, project):
    if kind == "missing item":
        return rows[1:], "item 1: " + rows[0]["path"] + " is not answered"
    if kind == "answered twice":
        return rows + [dict(rows[3], answer="unknown")], f"row 22: {rows[3]['path']} is answered again (first in row 5)"
    if kind == "not a wanted class":
        rows[2]["answer"] = "seven"
        return rows, f"row 4: answer 'seven' for {rows[2]['path']} is not one of: 0, 1, 2, unknown"
    if kind == "path outside the batch":
        other = _other_pool_image(project)
        rows[4]["path"] = other
        return rows, f"row 6: path '{other}' is not in batch 1"
    if kind == "path outside the folder":
        rows[4]["path"] = "../elsewhere.png"
        return rows, "row 6: path '../elsewhere.png' is not in batch 1"
    if kind == "empty answer":
        rows[5]["answer"] = " "
        return rows, f"row 7: {rows[5]['path']} has no answer"
    raise AssertionError(kind)


MALFORMED = ["missing item", "answered twice", "not a wanted class", "path outside the batch",
             "path outside the folder", "empty answer"]


@pytest.mark.parametrize("kind", MALFORMED)
def test_malformed_answer_sheet_is_refused_whole(kind, first_batch, digits, tmp_path):
    _, truth = digits
    project = Project(first_batch)
    before = state_bytes(first_batch)
    rows = fill_sheet(f"{project.batch_dir(1)}/answers.csv", digits, out=tmp_path / "filled.csv")
    rows, message = _malformed(kind, rows, project)
    write_sheet(tmp_path / "bad.csv", rows)
    with pytest.raises(AnnotationError) as error:
        session.import_answers(project, tmp_path / "bad.csv")
    assert message in str(error.value) and "nothing was applied" in str(error.value)
    assert state_bytes(first_batch) == before
    assert Project(first_batch).pending["number"] == 1


def test_every_problem_is_listed_at_once(first_batch, digits, tmp_path):
    _, truth = digits
    project = Project(first_batch)
    rows = fill_sheet(f"{project.batch_dir(1)}/answers.csv", digits, out=tmp_path / "filled.csv")
    rows[2]["answer"], rows[5]["answer"] = "seven", ""
    write_sheet(tmp_path / "bad.csv", rows[:-1])
    with pytest.raises(AnnotationError) as error:
        session.import_answers(project, tmp_path / "bad.csv")
    text = str(error.value)
    assert "3 problem(s)" in text and "row 4:" in text and "row 7:" in text and "item 20:" in text


def test_answer_sheet_without_answer_column_is_refused(first_batch, tmp_path):
    (tmp_path / "bad.csv").write_text("item,path\n1,x.png\n")
    with pytest.raises(AnnotationError, match="has no column 'answer'"):
        session.import_answers(Project(first_batch), tmp_path / "bad.csv")


LABEL_STUDIO_MALFORMED = {
    "cancelled": (lambda t: t[0]["annotations"][0].update(was_cancelled=True), "task {id0}: {path0} has no answer"),
    "two annotations": (lambda t: t[1]["annotations"].append(t[1]["annotations"][0]),
                        "task {id1}: {path1} has 2 answers"),
    "not a wanted class": (lambda t: t[2]["annotations"][0]["result"][0]["value"].update(choices=["cat"]),
                           "task {id2}: answer 'cat'"),
    "missing task": (lambda t: t.pop(0), "item 1: {path0} is not answered"),
    "duplicate task": (lambda t: t.append(t[3]), "task {id3}: {path3} is answered again"),
}


@pytest.mark.parametrize("kind", sorted(LABEL_STUDIO_MALFORMED))
def test_malformed_label_studio_export_is_refused_whole(kind, first_batch, digits, tmp_path):
    _, truth = digits
    project = Project(first_batch)
    before = state_bytes(first_batch)
    tasks = label_studio_export(f"{project.batch_dir(1)}/tasks.json", truth, tmp_path / "export.json")
    names = {f"{k}{i}": t[k2] for i, t in enumerate(tasks[:4]) for k, k2 in (("id", "id"),)}
    names.update({f"path{i}": t["data"]["path"] for i, t in enumerate(tasks[:4])})
    change, message = LABEL_STUDIO_MALFORMED[kind]
    change(tasks)
    (tmp_path / "export.json").write_text(json.dumps(tasks))
    with pytest.raises(AnnotationError) as error:
        session.import_answers(project, tmp_path / "export.json")
    assert message.format(**names) in str(error.value)
    assert state_bytes(first_batch) == before


def test_cli_prints_one_error_and_exits_2(first_batch, tmp_path, capsys):
    (tmp_path / "bad.csv").write_text("path,answer\nnot-there.png,0\n")
    assert main(["-p", str(first_batch), "import", str(tmp_path / "bad.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "row 2: path 'not-there.png' is not in batch 1" in err
    assert main(["status", "-p", str(tmp_path / "nothing")]) == 2  # -p after the command works too
    assert "is not an annotation project" in capsys.readouterr().err


# -- the whole session ------------------------------------------------------------------------
def test_a_whole_session_through_the_files(first_batch, digits, tmp_path, capsys):
    """Answer batch 1 by CSV and batch 2 by a Label Studio export; status, export and predict."""
    folder, truth = digits
    directory = tmp_path / "project"
    shutil.copytree(first_batch, directory)  # the shared first batch stays pending for the other tests
    project = Project(directory)
    rows = fill_sheet(f"{project.batch_dir(1)}/answers.csv", digits)
    # as the contact sheet's download button writes it: every field quoted
    write_sheet(tmp_path / "batch_01_answers.csv", rows, quoting=csv.QUOTE_ALL)
    assert main(["-p", str(directory), "import", str(tmp_path / "batch_01_answers.csv")]) == 0
    known_1 = sum(r["answer"] != "unknown" for r in rows)

    assert main(["-p", str(directory), "next"]) == 0
    project = Project(directory)
    label_studio_export(f"{project.batch_dir(2)}/tasks.json", truth, tmp_path / "ls.json")
    assert main(["-p", str(directory), "import", str(tmp_path / "ls.json")]) == 0
    with pytest.raises(AnnotationError, match="no batch is waiting"):
        session.import_answers(Project(directory), tmp_path / "ls.json")  # the same answers twice
    capsys.readouterr()

    assert main(["-p", str(directory), "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    project = Project(directory)
    answered = project.pool.query_round >= 0
    truly_known = np.array([truth[p] in KNOWN for p in project.paths])
    assert status["n_labeled"] == int((answered & truly_known).sum()) and status["n_invalid"] == int(
        (answered & ~truly_known).sum()) and status["n_unlabeled"] == 300 - 46
    assert [b["precision"] for b in status["batches"]][0] == known_1 / 20
    for b in status["batches"]:
        indices = project.batches[b["batch"] - 1]["indices"]
        assert b["known"] == sum(truly_known[indices])
    assert status["per_class"] == {c: int(sum(truth[project.paths[i]] == c for i in project.pool.labeled))
                                   for c in KNOWN}
    assert status["known_left_estimate"] == pytest.approx(np.nansum(project.known_probability[project.pool.unlabeled]))
    assert 0 < status["known_left_estimate"] < status["n_unlabeled"]
    assert main(["-p", str(directory), "status"]) == 0
    text = capsys.readouterr().out
    assert f"    1    20 {known_1:>6} {known_1 / 20:>10.3f}" in text and "known images still in the pool: about" in text

    destination = export(Project(directory), tmp_path / "export")
    labels = read_sheet(f"{destination}/labels.csv")
    assert len(labels) == 46 and all(truthful(truth, r["path"]) == r["class"] for r in labels)
    for c in KNOWN:
        files = sorted(p.name for p in (tmp_path / "export" / "imagefolder" / c).iterdir())
        assert files == sorted(r["path"] for r in labels if r["class"] == c)
    assert {p.name for p in (tmp_path / "export" / "models").iterdir()} == {"detector.pt", "classifier.pt",
                                                                           "config.yaml", "model.json"}

    new = sorted((folder / "images").iterdir())[:12]
    rows = predict(Project(directory), [str(p) for p in new])
    assert [r[0] for r in rows] == [str(p) for p in new]
    assert all(r[1] in KNOWN + ("unknown",) and 0 <= r[2] <= 1 and 0 <= r[3] <= 1 for r in rows)
    assert main(["-p", str(directory), "predict", str(folder / "images"), "--out", str(tmp_path / "p.csv")]) == 0
    predicted = read_sheet(tmp_path / "p.csv")
    assert len(predicted) == 300
    correct = np.mean([truthful(truth, r["path"].rsplit("/", 1)[-1]) == r["prediction"] for r in predicted])
    assert correct > 0.5  # 46 answers, 4 epochs: far better than chance (about 0.25)


def test_contact_sheet_comes_from_its_template_with_every_placeholder_filled(first_batch):
    import re

    from osal.annotate.batch_files import page_template
    assert "$cards" in page_template("contact_sheet.html").template  # found in the package's templates/
    with open(f"{Project(first_batch).batch_dir(1)}/contact_sheet.html", encoding="utf-8") as f:
        sheet = f.read()
    assert not re.search(r"\$\{?[A-Za-z_]", sheet) and sheet.endswith("</body></html>\n")
