"""Files osal wrote, read back after they travelled (committed, merged, cloned, truncated): one sentence each."""

import json

import numpy as np
import pytest

from osal.stored import DamagedFileError, read_npz, read_text

FIX = "move it away"


def write_npz(path, **arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def test_a_good_file_reads_back_with_its_meta_parsed(tmp_path):
    path = tmp_path / "state.npz"
    write_npz(path, state=np.arange(3), meta=np.array(json.dumps({"round": 2})))
    arrays = read_npz(path, ["state", "meta"], FIX)
    assert arrays["meta"] == {"round": 2}
    assert arrays["state"].tolist() == [0, 1, 2]


@pytest.mark.parametrize("damage, said", [
    ("lfs", "Git LFS pointer"),
    ("truncated", "damaged"),
    ("text", "damaged"),
    ("object", "object array"),
    ("missing", "lacks state"),
    ("bad_json", "not valid JSON"),
    ("deep_json", "not valid JSON"),
    ("json_list", "not a JSON object"),
    ("meta_number", "not the JSON text"),
])
def test_each_kind_of_damage_is_one_sentence_naming_the_file_and_the_fix(tmp_path, damage, said):
    path = tmp_path / "state.npz"
    meta = np.array(json.dumps({"round": 1}))
    if damage == "lfs":
        path.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12\n")
    elif damage == "truncated":
        write_npz(path, state=np.arange(1000), meta=meta)
        path.write_bytes(path.read_bytes()[:300])
    elif damage == "text":
        path.write_text("hello")
    elif damage == "object":
        with open(path, "wb") as f:
            np.savez(f, state=np.array([{"a": 1}], dtype=object), meta=meta)
    elif damage == "missing":
        write_npz(path, meta=meta)
    elif damage == "bad_json":
        write_npz(path, state=np.arange(2), meta=np.array("{round: "))
    elif damage == "deep_json":
        write_npz(path, state=np.arange(2), meta=np.array("[" * 100000 + "]" * 100000))
    elif damage == "json_list":
        write_npz(path, state=np.arange(2), meta=np.array("[1, 2]"))
    elif damage == "meta_number":
        write_npz(path, state=np.arange(2), meta=np.arange(2))
    with pytest.raises(DamagedFileError) as caught:
        read_npz(path, ["state", "meta"], FIX)
    message = str(caught.value)
    assert said in message and str(path) in message and FIX in message
    assert "\n" not in message


def test_text_with_conflict_markers_or_an_lfs_pointer_is_refused_and_good_text_read(tmp_path):
    good = tmp_path / "metrics.csv"
    good.write_text("round,n_labeled\n0,5\n")
    assert read_text(good) == "round,n_labeled\n0,5\n"
    conflicted = tmp_path / "conflicted.csv"
    conflicted.write_text("round,n_labeled\n<<<<<<< HEAD\n0,5\n=======\n0,6\n>>>>>>> other\n")
    with pytest.raises(DamagedFileError, match="merge-conflict marker on line 2"):
        read_text(conflicted)
    pointer = tmp_path / "pointer.csv"
    pointer.write_text("version https://git-lfs.github.com/spec/v1\n")
    with pytest.raises(DamagedFileError, match="Git LFS pointer"):
        read_text(pointer)
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(DamagedFileError, match="not UTF-8"):
        read_text(binary)


def test_yaml_with_anchors_or_aliases_is_refused_before_anything_expands_it(tmp_path):
    from osal.stored import read_yaml_text
    laughs = tmp_path / "laughs.yaml"
    lines = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for level in range(1, 9):  # 10^9 values once expanded
        lines.append(f"l{level}: &l{level} [" + ", ".join([f"*{'a' if level == 1 else f'l{level - 1}'}"] * 10) + "]")
    laughs.write_text("\n".join(lines) + "\n")
    with pytest.raises(DamagedFileError, match="YAML anchor or alias on line 1"):
        read_yaml_text(laughs)
    plain = tmp_path / "plain.yaml"
    plain.write_text("overrides: [experiment=campaign_demo, 'seed=1,2', note: '*not an alias*']\n")
    assert read_yaml_text(plain).startswith("overrides")
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [*\n")  # invalid YAML is the caller's parser's to report
    assert read_yaml_text(broken) == "a: [*\n"
