"""An annotation project is handed from person to person, so every file in it (project.json, config.yaml,
state.npz, pool_images.npy, the batch files, label_studio.json) and everything a Label Studio server sends back
is untrusted input. Each damaged or hostile one is refused with one sentence naming it and the fix, exit 2,
before anything is written: the project is byte-identical afterwards and nothing lands outside it."""

import json
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest
from omegaconf import OmegaConf

from osal.annotate.cli import main
from osal.annotate.create import create_project
from osal.annotate.project import CONFIG_FILE, IMAGES_FILE, PROJECT_FILE, STATE_FILE

from annotation_helpers import FAST, KNOWN, digits, file_digests, first_batch  # noqa: F401 (fixtures)
from conftest import ROOT

LFS_POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:4d7a2146\nsize 91232\n"
CONFLICT = "<<<<<<< HEAD\n{}\n=======\n{}\n>>>>>>> theirs\n"
DEEP = "[" * 100_000 + "]" * 100_000  # json.loads ends in RecursionError


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
