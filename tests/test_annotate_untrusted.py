"""An annotation project is handed from person to person, so every file in it (project.json, config.yaml,
state.npz, pool_images.npy, the batch files, label_studio.json) and everything a Label Studio server sends back
is untrusted input. Each damaged or hostile one is refused with one sentence naming it and the fix, exit 2,
before anything is written: the project is byte-identical afterwards and nothing lands outside it."""

import json
import pickle
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from osal.annotate.cli import main
from osal.annotate.create import create_project
from osal.annotate.project import CONFIG_FILE, IMAGES_FILE, PROJECT_FILE, STATE_FILE, Project

from annotation_helpers import FAST, KNOWN, digits, file_digests, fill_sheet, first_batch  # noqa: F401 (fixtures)
from conftest import ROOT

LFS_POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:4d7a2146\nsize 91232\n"
CONFLICT = "<<<<<<< HEAD\n{}\n=======\n{}\n>>>>>>> theirs\n"
DEEP = "[" * 100_000 + "]" * 100_000  # json.loads ends in RecursionError
LINKED = 7  # the Label Studio project id a linked annotation project keeps in label_studio.json


@pytest.fixture(scope="module")
def initialised(digits, tmp_path_factory):  # noqa: F811
    folder, _ = digits
    directory = tmp_path_factory.mktemp("initialised") / "project"
    create_project(directory, folder / "images", list(KNOWN), folder / "initial.csv", FAST)
    return directory


@pytest.fixture
def project(initialised, tmp_path):
    """A copy of a project just created, no batch yet: each test damages its own."""
    shutil.copytree(initialised, tmp_path / "project")
    return tmp_path / "project"


@pytest.fixture
def waiting(first_batch, tmp_path):  # noqa: F811
    """A copy of a project whose batch 1 waits for answers."""
    shutil.copytree(first_batch, tmp_path / "waiting")
    return tmp_path / "waiting"


def refused(capsys, directory, *argv) -> str:
    """The one `error:` line of an annotate.py command that exits 2 and leaves `directory` byte-identical."""
    before = file_digests(directory)
    capsys.readouterr()
    assert main(["-p", str(directory), *map(str, argv)]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith("error: "), err
    assert file_digests(directory) == before
    return lines[0]


# -- ways a file of the project gets damaged ---------------------------------------------------------------------
def replaced(name, content):
    def damage(directory):
        (directory / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    return damage


def truncated(name):
    def damage(directory):
        data = (directory / name).read_bytes()
        (directory / name).write_bytes(data[:len(data) // 2])
    return damage


def description(change):
    """project.json with `change` applied to its contents."""
    def damage(directory):
        info = json.loads((directory / PROJECT_FILE).read_text())
        change(info)
        (directory / PROJECT_FILE).write_text(json.dumps(info))
    return damage


def state(change_arrays=None, change_meta=None):
    """state.npz rewritten with its arrays and its meta (as a dict) changed."""
    def damage(directory):
        with np.load(directory / STATE_FILE) as data:
            arrays = {key: data[key] for key in data.files}
        if change_meta:
            meta = json.loads(str(arrays["meta"]))
            change_meta(meta)
            arrays["meta"] = np.array(json.dumps(meta))
        if change_arrays:
            change_arrays(arrays)
        with open(directory / STATE_FILE, "wb") as f:
            np.savez(f, **arrays)
    return damage


def config(change):
    def damage(directory):
        cfg = OmegaConf.load(directory / CONFIG_FILE)
        change(cfg)
        OmegaConf.save(cfg, directory / CONFIG_FILE)
    return damage


def setitem(key, value):
    return lambda info: info.__setitem__(key, value)


def set_entry(key, index, value):
    return lambda info: info[key].__setitem__(index, value)


# -- project.json ---------------------------------------------------------------------------------------------
DAMAGED_DESCRIPTIONS = {
    "a class climbing out": (description(set_entry("classes", 0, "../../../escaped_zero")), "classes[0]"),
    "a class with a slash": (description(set_entry("classes", 1, "cats/dogs")), "classes[1]"),
    "a class named unknown": (description(set_entry("classes", 2, "Unknown")), "classes[2]"),
    "a class listed twice": (description(setitem("classes", ["0", "1", "0"])), "'0' more than once"),
    "classes as text": (description(setitem("classes", "012")), "classes"),
    "an absolute image path": (description(set_entry("paths", 0, "/etc/passwd")), "paths[0]"),
    "an image path climbing out": (description(set_entry("paths", 5, "../outside/x.png")), "paths[5]"),
    "a path climbing out midway": (description(set_entry("paths", 7, "a/../../x.png")), "paths[7]"),
    "paths not text": (description(setitem("paths", [1] * 300)), "paths[0]"),
    "a path listed twice": (description(lambda info: info["paths"].__setitem__(1, info["paths"][0])),
                            "more than once"),
    "paths of another pool": (description(lambda info: info.__setitem__("paths", info["paths"][:200])), "300"),
    "mean not numbers": (description(setitem("mean", ["a"])), "mean"),
    "std zero": (description(setitem("std", [0.0])), "std"),
    "mean of other channels": (description(lambda info: info.update(mean=[0.5] * 3, std=[0.25] * 3)), "mean"),
    "a key missing": (description(lambda info: info.pop("mean")), "'mean'"),
    "not JSON": (replaced(PROJECT_FILE, "{not json"), "not valid JSON"),
    "a list": (replaced(PROJECT_FILE, "[]"), "not a JSON object"),
    "nested too deeply": (replaced(PROJECT_FILE, DEEP), "nested"),
    "an LFS pointer": (replaced(PROJECT_FILE, LFS_POINTER), "Git LFS pointer"),
    "merge-conflict markers": (replaced(PROJECT_FILE, CONFLICT), "merge-conflict marker"),
}


@pytest.mark.parametrize("case", sorted(DAMAGED_DESCRIPTIONS))
def test_a_damaged_or_hostile_project_json_is_refused_before_anything_is_written(case, project, tmp_path, capsys):
    damage, words = DAMAGED_DESCRIPTIONS[case]
    damage(project)
    line = refused(capsys, project, "export", "--to", tmp_path / "out" / "x")
    assert PROJECT_FILE in line and words in line, line
    assert not (tmp_path / "out").exists() and not (tmp_path / "escaped_zero").exists()


@pytest.mark.slow  # annotate.py in a process of its own
def test_export_of_a_project_whose_class_climbs_out_writes_nothing_anywhere(project, tmp_path):
    DAMAGED_DESCRIPTIONS["a class climbing out"][0](project)
    work = tmp_path / "work"
    work.mkdir()
    before = file_digests(tmp_path)  # the project, the folder the command runs in, and all around them
    result = subprocess.run([sys.executable, str(ROOT / "src" / "annotate.py"), "-p", str(project), "export",
                             "--to", "outputs/x"], cwd=work, capture_output=True, text=True, timeout=600)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and PROJECT_FILE in lines[0] and "'../../../escaped_zero'" in lines[0]
    assert file_digests(tmp_path) == before


# -- state.npz ------------------------------------------------------------------------------------------------
def drop(key):
    return lambda arrays: arrays.pop(key)


def first_batch_entry(key, value):
    return lambda meta: meta["batches"][0].__setitem__(key, value)


def shorter(arrays):
    for key in ("state", "query_round", "answers", "known_probability"):
        arrays[key] = arrays[key][:200]


def answer_beyond_the_classes(arrays):
    labeled = np.flatnonzero(arrays["state"] == 1)
    arrays["answers"][labeled[0]] = len(KNOWN) + 4


DAMAGED_STATES = {
    "an LFS pointer": (replaced(STATE_FILE, LFS_POINTER), "Git LFS pointer"),
    "truncated": (truncated(STATE_FILE), "damaged"),
    "an object array": (state(lambda a: a.__setitem__("answers", np.array([{}] * 300, dtype=object))),
                        "object array"),
    "meta not JSON": (state(lambda a: a.__setitem__("meta", np.array("{not json"))), "meta is not valid JSON"),
    "a key missing": (state(drop("known_probability")), "lacks known_probability"),
    "another project's state": (state(shorter), "200"),
    "an answer beyond the classes": (state(answer_beyond_the_classes), "answers"),
    "meta without batches": (state(change_meta=lambda m: m.pop("batches")), "batches"),
    "batches not a list": (state(change_meta=lambda m: m.__setitem__("batches", {"number": 1})), "batches"),
    "a batch not a dict": (state(change_meta=lambda m: m["batches"].__setitem__(0, [1])), "batch 1"),
    "a batch lacking indices": (state(change_meta=lambda m: m["batches"][0].pop("indices")), "indices"),
    "a batch number forming a path": (state(change_meta=first_batch_entry("number", "../../x")), "number"),
    "a batch index outside the pool": (state(change_meta=lambda m: m["batches"][0]["indices"].__setitem__(0, 10**6)),
                                       "indices"),
    "a negative batch index": (state(change_meta=lambda m: m["batches"][0]["indices"].__setitem__(0, -1)),
                               "indices"),
    "suggestions of another length": (state(change_meta=lambda m: m["batches"][0]["suggestions"].pop()),
                                      "suggestions"),
    "a bad generator state": (state(change_meta=lambda m: m.__setitem__("rng", {"bit_generator": "nope"})), "rng"),
}


@pytest.mark.parametrize("case", sorted(DAMAGED_STATES))
def test_a_damaged_state_npz_is_named_with_what_to_do(case, waiting, capsys):
    damage, words = DAMAGED_STATES[case]
    damage(waiting)
    line = refused(capsys, waiting, "next")
    assert STATE_FILE in line and words in line and "not an annotation project" not in line, line


# -- pool_images.npy ------------------------------------------------------------------------------------------
def images(array):
    return lambda directory: np.save(directory / IMAGES_FILE, array)


DAMAGED_IMAGES = {
    "a pickle": (replaced(IMAGES_FILE, pickle.dumps({"images": [1, 2]})), "not"),
    "an LFS pointer": (replaced(IMAGES_FILE, LFS_POINTER), "Git LFS pointer"),
    "truncated": (truncated(IMAGES_FILE), "damaged"),
    "an object array": (images(np.array([{}] * 300, dtype=object)), "not"),
    "the wrong shape": (images(np.zeros((300, 8, 8), dtype=np.uint8)), "(300, 8, 8)"),
    "another pool's images": (images(np.zeros((10, 8, 8, 1), dtype=np.uint8)), "10"),
    "floats": (images(np.zeros((300, 8, 8, 1), dtype=np.float32)), "float32"),
    "other channels": (images(np.zeros((300, 8, 8, 3), dtype=np.uint8)), "3"),
}


@pytest.mark.parametrize("case", sorted(DAMAGED_IMAGES))
def test_a_damaged_pool_images_file_is_refused_before_any_training(case, project, capsys):
    damage, words = DAMAGED_IMAGES[case]
    damage(project)
    line = refused(capsys, project, "next")
    assert IMAGES_FILE in line and words in line, line


# -- config.yaml ----------------------------------------------------------------------------------------------
DAMAGED_CONFIGS = {
    "invalid YAML": (replaced(CONFIG_FILE, "model: [small_cnn\n"), "YAML"),
    "a list": (replaced(CONFIG_FILE, "- 1\n- 2\n"), "mapping"),
    "an LFS pointer": (replaced(CONFIG_FILE, LFS_POINTER), "Git LFS pointer"),
    "nested aliases": (replaced(CONFIG_FILE, "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "\n".join(
        f"l{i}: &l{i} [" + ", ".join([f"*{'a' if i == 1 else f'l{i - 1}'}"] * 10) + "]" for i in range(1, 9))),
        "YAML anchor or alias"),
    "a group missing": (config(lambda cfg: cfg.pop("annotate")), "annotate"),
    "an interpolation to nowhere": (config(lambda cfg: cfg.__setitem__("seed", "${nowhere}")), "nowhere"),
    "an image URL with another placeholder": (config(lambda cfg: cfg.annotate.__setitem__(
        "label_studio_image_url", "/data/{nope}")), "label_studio_image_url"),
}


@pytest.mark.parametrize("case", sorted(DAMAGED_CONFIGS))
def test_a_damaged_config_yaml_is_refused_before_any_training(case, project, capsys):
    damage, words = DAMAGED_CONFIGS[case]
    damage(project)
    line = refused(capsys, project, "next")
    assert CONFIG_FILE in line and words in line, line


# -- Label Studio: what the server sends back -----------------------------------------------------------------
class FakeLabelStudio:
    """A tiny HTTP server on localhost that answers each path with what a test tells it (the longest matching
    prefix wins), so that osal's own client runs for real against answers no real Label Studio gives."""

    def __init__(self, answers):
        self.answers, self.requests = answers, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def answer(self):
                server.requests.append((self.command, self.path))
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                prefix = max((p for p in server.answers if self.path.startswith(p)), key=len, default=None)
                kind, body = server.answers[prefix] if prefix else ("application/json", b'{"detail": "Not found."}')
                body = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(200 if prefix else 404)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PATCH = answer

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()

    def posted(self):
        return [path for method, path in self.requests if method != "GET"]


HTML = ("text/html", b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>proxy login</body></html>")
JSON = "application/json"
PROJECT_REPLY = {f"/api/projects/{LINKED}": (JSON, {"id": LINKED, "title": "osal project"})}
BAD_SERVERS = {  # (answers by path, the token, linked to a Label Studio project, what the message says it got)
    "an HTML page": ({"/": HTML}, "token", False, "an HTML page"),
    "an HTML page for the linked project": ({"/": HTML}, "token", True, "an HTML page"),
    "a JSON list for the projects": ({"/api/": (JSON, [])}, "token", False, "a JSON list"),
    "a JSON list for the linked project": ({"/api/": (JSON, [{"title": "x"}])}, "token", True, "a JSON list"),
    "a JSON list for the token refresh": ({"/api/": (JSON, [])}, "a.b.c", False, "a JSON list"),
    "JSON nested too deeply": ({"/": (JSON, DEEP.encode())}, "token", False, "nested"),
    "a project without an id": ({f"/api/projects/{LINKED}": (JSON, {"title": "x"})}, "token", True, "'id'"),
    "a page of projects without results": ({"/api/projects": (JSON, {"detail": "ok"})}, "token", False, "'results'"),
}


def link(directory):
    (directory / "label_studio.json").write_text(json.dumps({"project": LINKED}) + "\n")


@pytest.mark.parametrize("case", sorted(BAD_SERVERS))
def test_a_url_that_is_not_label_studio_is_refused_before_any_training(case, project, capsys):
    answers, token, linked, words = BAD_SERVERS[case]
    if linked:
        link(project)
    with FakeLabelStudio(answers) as server:
        line = refused(capsys, project, "next", "--label-studio", "--label-studio-url", server.url,
                       "--label-studio-token", token)
        assert server.requests and not server.posted()[1:]  # at most the token refresh: nothing was pushed
    assert server.url in line and words in line, line
    assert not (project / "models").exists() and not (project / "batches").exists()


def exported(waiting, change):
    """batch 1's tasks as Label Studio exports them, answered, then `change`d."""
    tasks = json.loads((waiting / "batches" / "batch_01" / "tasks.json").read_text())
    for task in tasks:
        task["annotations"] = [{"id": 1, "was_cancelled": False, "result": [
            {"from_name": "choice", "to_name": "image", "type": "choices", "value": {"choices": ["unknown"]}}]}]
    return change(tasks)


def task_entry(position, key, value):
    def change(tasks):
        tasks[position][key] = value
        return tasks
    return change


BAD_EXPORTS = {
    "annotations not a list": (task_entry(3, "annotations", {"result": []}), "task"),
    "annotations as text": (task_entry(0, "annotations", "0"), "annotations"),
    "data not an object": (task_entry(2, "data", ["x"]), "data"),
    "a result not an object": (lambda t: t[1]["annotations"][0].__setitem__("result", ["x"]) or t, "result"),
    "choices not a list": (lambda t: t[4]["annotations"][0]["result"][0]["value"].__setitem__("choices", "0") or t,
                           "choices"),
    "a task not an object": (lambda t: t[:3] + [5] + t[4:], "task"),
    "an object, not a list": (lambda t: {"tasks": t}, "list"),
}


@pytest.mark.parametrize("case", sorted(BAD_EXPORTS))
def test_a_malformed_export_from_label_studio_is_refused_whole_and_not_written(case, waiting, capsys):
    change, words = BAD_EXPORTS[case]
    link(waiting)
    answers = {**PROJECT_REPLY, f"/api/projects/{LINKED}/export": (JSON, exported(waiting, change))}
    with FakeLabelStudio(answers) as server:
        line = refused(capsys, waiting, "import", "--from-label-studio", "--label-studio-url", server.url,
                       "--label-studio-token", "token")
    assert server.url in line and words in line and "nothing was applied" in line, line


def test_an_export_nested_too_deeply_is_refused_from_the_server_and_from_a_file(waiting, tmp_path, capsys):
    link(waiting)
    answers = {**PROJECT_REPLY, f"/api/projects/{LINKED}/export": (JSON, DEEP.encode())}
    with FakeLabelStudio(answers) as server:
        line = refused(capsys, waiting, "import", "--from-label-studio", "--label-studio-url", server.url,
                       "--label-studio-token", "token")
    assert server.url in line and "nested" in line, line
    (tmp_path / "export.json").write_text(DEEP)
    line = refused(capsys, waiting, "import", tmp_path / "export.json")
    assert "export.json" in line and "nested" in line, line


@pytest.mark.parametrize("case", sorted(BAD_EXPORTS))
def test_a_malformed_export_file_is_refused_whole(case, waiting, tmp_path, capsys):
    change, words = BAD_EXPORTS[case]
    (tmp_path / "export.json").write_text(json.dumps(exported(waiting, change)))
    line = refused(capsys, waiting, "import", tmp_path / "export.json")
    assert "export.json" in line and words in line and "nothing was applied" in line, line


# -- what a linked project keeps of Label Studio ---------------------------------------------------------------
DAMAGED_LINKS = {
    "an id that is a path": ('{"project": "../admin"}', "label_studio.json"),
    "a list": ("[7]", "label_studio.json"),
    "not JSON": ("{", "not valid JSON"),
    "an LFS pointer": (LFS_POINTER, "Git LFS pointer"),
}


@pytest.mark.parametrize("case", sorted(DAMAGED_LINKS))
def test_a_damaged_label_studio_json_is_refused_before_the_server_is_asked(case, waiting, capsys):
    text, words = DAMAGED_LINKS[case]
    (waiting / "label_studio.json").write_text(text)
    with FakeLabelStudio(PROJECT_REPLY) as server:
        line = refused(capsys, waiting, "push", "--label-studio-url", server.url, "--label-studio-token", "token")
    assert "label_studio.json" in line and words in line and not server.requests, line


DAMAGED_TASKS = {"not JSON": "{", "an LFS pointer": LFS_POINTER, "not a list of tasks": "[1, 2]"}


@pytest.mark.parametrize("case", sorted(DAMAGED_TASKS))
def test_push_refuses_damaged_tasks_json_before_sending_anything(case, waiting, capsys):
    link(waiting)
    (waiting / "batches" / "batch_01" / "tasks.json").write_text(DAMAGED_TASKS[case])
    with FakeLabelStudio(PROJECT_REPLY) as server:
        line = refused(capsys, waiting, "push", "--label-studio-url", server.url, "--label-studio-token", "token")
    assert "tasks.json" in line and not server.posted(), line


# -- the batch folders and the images they show ------------------------------------------------------------
def test_a_file_where_the_next_batch_folder_goes_is_refused_before_any_training(waiting, digits, tmp_path,  # noqa: F811
                                                                                capsys):
    sheet = tmp_path / "answers.csv"
    shutil.copy(Project(waiting).batch_dir(1) + "/answers.csv", sheet)
    fill_sheet(sheet, digits)
    assert main(["-p", str(waiting), "import", str(sheet)]) == 0
    (waiting / "batches" / "batch_02").write_text("not a folder")
    line = refused(capsys, waiting, "next")  # byte-identical: the models were not retrained either
    assert "batch_02" in line and "not a folder" in line, line


def test_an_image_changed_in_the_image_folder_since_init_is_named_and_no_batch_recorded(project, digits,  # noqa: F811
                                                                                          tmp_path, capsys):
    folder, _ = digits
    images = tmp_path / "images"
    shutil.copytree(folder / "images", images)
    for image in images.glob("*.png"):
        image.write_bytes(b"no longer a PNG")
    description(setitem("image_folder", str(images)))(project)
    before = (project / STATE_FILE).read_bytes()
    capsys.readouterr()
    assert main(["-p", str(project), "next"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert f"cannot read image {images}/" in err and "contact sheet" in err
    assert (project / STATE_FILE).read_bytes() == before and not (project / "batches").exists()


# -- the models a project keeps ------------------------------------------------------------------------------
DAMAGED_MODELS = {
    "an LFS pointer": (replaced("models/detector.pt", LFS_POINTER), "Git LFS pointer"),
    "truncated": (truncated("models/classifier.pt"), "damaged"),
    "a list": (lambda d: torch.save([1, 2], d / "models" / "detector.pt"), "not a network osal saved"),
    "not torch's": (replaced("models/classifier.pt", b"\x80\x04K\x01."), "not a network osal saved"),
}


@pytest.mark.parametrize("case", sorted(DAMAGED_MODELS))
def test_a_damaged_saved_network_is_refused_before_any_training(case, waiting, tmp_path, capsys):
    damage, words = DAMAGED_MODELS[case]
    damage(waiting)
    line = refused(capsys, waiting, "export", "--to", tmp_path / "out")
    assert "models/" in line and words in line and "delete it" in line, line
    assert not (tmp_path / "out").exists()


def test_a_saved_network_of_another_model_is_trained_again(waiting, tmp_path):
    saved = torch.load(waiting / "models" / "detector.pt", weights_only=True)
    saved["state_dict"] = {"encoder.other.weight": torch.zeros(3)}  # what another config.yaml's model would hold
    torch.save(saved, waiting / "models" / "detector.pt")
    assert main(["-p", str(waiting), "export", "--to", str(tmp_path / "out")]) == 0
    again = torch.load(waiting / "models" / "detector.pt", weights_only=True)["state_dict"]
    assert "encoder.other.weight" not in again and (tmp_path / "out" / "models" / "detector.pt").exists()


# -- what a batch's files show of names from others ------------------------------------------------------------
def test_an_image_name_holding_html_is_shown_as_text_in_the_contact_sheet_and_tasks(digits, tmp_path):  # noqa: F811
    """File names in someone's image folder become text on the page, never markup or script."""
    from osal.annotate.batch_files import contact_sheet, label_studio_tasks
    folder, _ = digits
    images = tmp_path / "images"
    shutil.copytree(folder / "images", images)
    payload = '<img src=x onerror=alert(1)><script>alert(2)'  # a file name holds no slash
    hostile = f"{payload}.png"
    shutil.copy(images / sorted(p.name for p in images.iterdir())[0], images / hostile)
    create_project(tmp_path / "p", images, list(KNOWN), folder / "initial.csv", FAST)
    project = Project(tmp_path / "p")
    index = project.paths.index(hostile)
    items = [(1, index, hostile, "0", 0.5)]
    page = contact_sheet(project, {"number": 1}, items, "answers.csv")
    assert payload not in page and "onerror=alert(1)>" not in page and "<script>alert(2)" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page  # shown, as text
    tasks = json.loads(label_studio_tasks(project, {"number": 1}, items))
    assert tasks[0]["data"]["path"] == hostile  # JSON keeps the name exactly; Label Studio shows it as text
