"""The annotation commands against a real Label Studio server (tests/label_studio_server.py): `next
--label-studio` pushes the batch, a scripted annotator answers through Label Studio's REST API (an `unknown`
among them, and one invalid answer), `import --from-label-studio` pulls them; the project ends in the same state
as a twin project that imported the same answers from its CSV file, and the invalid answer is refused whole."""

import subprocess
import sys

import numpy as np
import pytest

from osal.annotate import session
from osal.annotate.create import create_project
from osal.annotate.project import Project

from annotation_helpers import FAST, KNOWN, digits, fill_sheet, state_bytes, truthful  # noqa: F401 (fixture)
from conftest import ROOT
from label_studio_server import label_studio  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow  # a real server and real training


def annotate(*args, env=None, timeout=600):
    return subprocess.run([sys.executable, "src/annotate.py", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env=env)


def tasks_of(server, project_id):
    return server.api("GET", f"/api/tasks?project={project_id}&page_size=1000")["tasks"]


def answer(server, task_id, choices):
    return server.api("POST", f"/api/tasks/{task_id}/annotations",
                      {"result": [{"from_name": "choice", "to_name": "image", "type": "choices",
                                   "value": {"choices": list(choices)}}], "was_cancelled": False})


def test_a_batch_through_label_studio_ends_as_the_same_answers_through_the_csv(label_studio, digits,  # noqa: F811
                                                                                tmp_path):
    folder, truth = digits
    through_server, through_csv = tmp_path / "server", tmp_path / "csv"
    for directory in (through_server, through_csv):
        create_project(directory, folder / "images", list(KNOWN), folder / "initial.csv", FAST)
    credentials = ["--label-studio-url", label_studio.url, "--label-studio-token", label_studio.token]

    pushed = annotate("-p", through_server, "next", "--label-studio", *credentials)
    assert pushed.returncode == 0, pushed.stderr[-3000:]
    assert "tasks in Label Studio project" in pushed.stdout
    batch = session.next_batch(Project(through_csv))
    assert Project(through_server).pending["indices"] == batch["indices"]  # the same batch either way
    project_id = int(pushed.stdout.split("Label Studio project ")[1].split()[0])
    config = label_studio.api("GET", f"/api/projects/{project_id}")["label_config"]
    assert all(f'value="{name}"' in config for name in (*KNOWN, "unknown"))  # osal's labeling config

    tasks = tasks_of(label_studio, project_id)
    assert sorted(t["data"]["osal_index"] for t in tasks) == sorted(batch["indices"])
    image = label_studio.fetch(tasks[0]["data"]["image"])  # served through the local storage osal added
    assert image.startswith(b"\x89PNG") and image == (folder / "images" / tasks[0]["data"]["path"]).read_bytes()
    answers = {t["id"]: truthful(truth, t["data"]["path"]) for t in tasks}
    assert "unknown" in answers.values() and set(answers.values()) & set(KNOWN)
    first, *rest = tasks
    created = {t["id"]: answer(label_studio, t["id"], [answers[t["id"]]]) for t in rest}
    invalid = answer(label_studio, first["id"], ["0", "1"])  # two classes for one image

    before = state_bytes(through_server)
    refused = annotate("-p", through_server, "import", "--from-label-studio", *credentials)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr[-3000:]
    assert "1 problem(s)" in refused.stderr and "0 + 1" in refused.stderr
    assert state_bytes(through_server) == before  # refused whole: nothing of the batch was applied

    label_studio.api("PATCH", f"/api/annotations/{invalid['id']}",
                     {"result": [{"from_name": "choice", "to_name": "image", "type": "choices",
                                  "value": {"choices": [answers[first["id"]]]}}]})
    assert len(created) == len(tasks) - 1
    # the pull with a personal access token (a JWT, Label Studio's default kind) instead of the legacy token
    personal = label_studio.api("POST", "/api/token/")["token"]
    assert personal.count(".") == 2
    pulled = annotate("-p", through_server, "import", "--from-label-studio", "--label-studio-url", label_studio.url,
                      "--label-studio-token", personal)
    assert pulled.returncode == 0, pulled.stderr[-3000:]

    sheet = through_csv / "batches" / "batch_01" / "answers.csv"
    fill_sheet(sheet, digits)
    session.import_answers(Project(through_csv), sheet)
    a, b = Project(through_server), Project(through_csv)
    for key, value in a.pool.state_dict().items():
        np.testing.assert_array_equal(value, b.pool.state_dict()[key], err_msg=key)
    assert a.batches == b.batches and a.batches[0]["answered"]

    # the URL and the token were never written into the project
    for path in through_server.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for secret in (label_studio.token, personal, str(label_studio.port)):
                assert secret.encode() not in data, path


def test_an_unreachable_server_or_a_wrong_token_is_one_sentence_before_any_training(label_studio, digits,  # noqa: F811
                                                                                     tmp_path):
    folder, _ = digits
    directory = tmp_path / "p"
    create_project(directory, folder / "images", list(KNOWN), folder / "initial.csv", FAST)
    before = state_bytes(directory)
    nowhere = annotate("-p", directory, "next", "--label-studio", "--label-studio-url", "http://127.0.0.1:9",
                       "--label-studio-token", "x")
    wrong = annotate("-p", directory, "next", "--label-studio", "--label-studio-url", label_studio.url,
                     "--label-studio-token", "not-the-token")
    for result, words in ((nowhere, "cannot reach Label Studio at http://127.0.0.1:9"),
                          (wrong, "refused the API token")):
        assert result.returncode == 2 and words in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert state_bytes(directory) == before and not (directory / "batches" / "batch_01").exists()
