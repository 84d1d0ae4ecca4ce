"""A campaign directory is committed and cloned, so campaign.yaml and everything under runs/ is anyone's input;
the command line is the person's. Each bad value is one sentence and exit 2 before any run starts, with nothing
changed on disk; a killed campaign takes its runs with it."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from omegaconf import OmegaConf, open_dict

from osal.campaign.campaign import Campaign
from osal.campaign.cli import main
from osal.campaign.grid import compose_experiment, expand
from osal.campaign.progress import run_dir
from osal.errors import ConfigError
from osal.records.metrics import COLUMNS

from conftest import ROOT
from small_disks import make_read_only, small_disk

GRID = ["experiment=campaign_demo"]
FIRST, SECOND = "digits_mismatch0.4_lfosa_seed1", "digits_mismatch0.4_random_seed1"
WINDOW = ["--seconds", "600", "--gpus", "none"]
# a window in which no run can start (each needs --startup twice over: its start and its first round), so a test
# gets to the scheduler without training anything
NO_START = ["--seconds", "20", "--reserve", "5", "--startup", "60", "--gpus", "none"]


def tree(folder) -> dict:
    """Every path under `folder` (links not followed): a file's bytes, 'folder', or the link's target."""
    found = {}
    for parent, folders, files in os.walk(folder):
        for name in folders + files:
            path = os.path.join(parent, name)
            found[os.path.relpath(path, folder)] = (("link", os.readlink(path)) if os.path.islink(path) else
                                                    "folder" if os.path.isdir(path) else open(path, "rb").read())
    return found


def refused(capsys, argv, *phrases) -> str:
    """main(argv) exits 2 with one `error:` line holding every phrase, and no traceback."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    return lines[0]


def refused_unchanged(capsys, folder, argv, *phrases) -> str:
    before = tree(folder)
    line = refused(capsys, argv, *phrases)
    assert tree(folder) == before
    return line


def with_campaign_file(tmp_path, text: str):
    directory = tmp_path / "c"
    directory.mkdir()
    (directory / "campaign.yaml").write_text(text)
    return directory


# -- the grid's overrides ------------------------------------------------------------------------------------

@pytest.mark.parametrize("override", ["hydra.job.chdir=true", "+hydra.callbacks.x._target_=builtins.print",
                                      "++hydra.verbose=true", "hydra/launcher=basic", "~hydra.output_subdir",
                                      "logger@hydra.callbacks=csv"])
def test_hydras_own_config_is_not_the_grids_to_set(tmp_path, capsys, override):
    refused(capsys, ["run", tmp_path / "c", *GRID, override, *WINDOW], override, "Hydra's own")
    assert not (tmp_path / "c").exists()
    directory = with_campaign_file(tmp_path, f"overrides: [experiment=campaign_demo, '{override}']\n")
    refused_unchanged(capsys, directory, ["run", directory, *WINDOW], f"{directory}/campaign.yaml", override)
    refused_unchanged(capsys, directory, ["status", directory], f"{directory}/campaign.yaml", override)


@pytest.mark.parametrize("override, why", [
    ("fresh=true", "start every run again"), ("+fresh=1", "start every run again"),
    ("deadline=2000000000", "the window"), ("++deadline=null", "the window"),
    ("hydra.run.dir=/tmp/elsewhere", "its own folder under runs/"),
    ("cache_dir=/tmp/someones", "--data-dir"), ("data_dir=/srv/data", "--data-dir"),
    ("dataset.source.root=/", "--data-dir")])
def test_keys_a_window_or_its_machine_sets_are_not_the_grids_and_the_refusal_says_why(tmp_path, capsys, override, why):
    refused(capsys, ["run", tmp_path / "c", *GRID, override, *WINDOW], override, why)
    assert not (tmp_path / "c").exists()
    directory = with_campaign_file(tmp_path, f"overrides: [experiment=campaign_demo, '{override}']\n")
    refused_unchanged(capsys, directory, ["run", directory, *WINDOW], "campaign.yaml", override, why)


@pytest.mark.parametrize("key, value", [("fresh", "true"), ("deadline", "1"), ("hydra.run.dir", "x"),
                                        ("hydra.job.chdir", "true")])
def test_an_experiments_stages_may_not_set_them_either(key, value):
    cfg = compose_experiment(GRID)
    stage = cfg.campaign.stages[0]
    with open_dict(stage):
        stage[key] = value  # a key of its own, dots and all, as `{hydra.run.dir: x}` in the experiment's YAML
    with pytest.raises(ConfigError, match=rf"^{key}={value} in the experiment.s campaign\.stages is refused"):
        expand(cfg)


def test_an_unknown_experiment_is_one_sentence_listing_the_experiments(tmp_path, capsys):
    line = refused(capsys, ["run", tmp_path / "c", "experiment=nosuch", *WINDOW], "experiment=nosuch",
                   "campaign_demo", "reproduce_cifar10")
    assert "stages" not in line
    refused(capsys, ["run", tmp_path / "c", "seed=2", *WINDOW], "experiment=", "campaign_demo")
    assert not (tmp_path / "c").exists()


# -- campaign.yaml -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, phrase", [
    ("", "is empty"),
    ("runs: [a]\n", "no overrides"),
    ("overrides: [experiment=campaign_demo\n", "not valid YAML"),
    ("overrides: experiment=campaign_demo al.rounds=2\n", "a list"),
    ("overrides: [experiment=campaign_demo, 5]\n", "5"),
    ("overrides:\n  - experiment=campaign_demo\n  - {seed: 2}\n", "seed"),
    ("- experiment=campaign_demo\n", "overrides:"),
    ("overrides: [experiment=campaign_demo]\nseconds: 60\n", "seconds"),
    ("<<<<<<< HEAD\noverrides: [experiment=campaign_demo]\n=======\noverrides: [experiment=paper]\n>>>>>>> b\n",
     "merge-conflict marker"),
    ("version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 3\n", "Git LFS pointer"),
])
def test_a_damaged_campaign_yaml_is_one_sentence_naming_it(tmp_path, capsys, text, phrase):
    directory = with_campaign_file(tmp_path, text)
    refused_unchanged(capsys, directory, ["run", directory, *WINDOW], f"{directory}/campaign.yaml", phrase)
    refused_unchanged(capsys, directory, ["status", directory], f"{directory}/campaign.yaml", phrase)


def test_the_runs_campaign_yaml_lists_are_the_grids_own_whatever_it_says(tmp_path, capsys):
    """The list is written for people (the priority order); the grid makes the runs, so a name with `..` in it
    reaches no folder."""
    directory = with_campaign_file(tmp_path, "overrides: [experiment=campaign_demo]\nruns: ['../../outside', "
                                             "'/tmp/x', a/b]\n")
    assert main(["run", str(directory), *NO_START]) == 0
    assert OmegaConf.load(directory / "campaign.yaml").runs == [r.name for r in expand(compose_experiment(GRID))]
    assert sorted(os.listdir(tmp_path)) == ["c"]


# -- the command line ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("option", ["--seconds=0", "--seconds=-5", "--seconds=nan", "--seconds=inf",
                                    "--reserve=-1", "--reserve=nan", "--startup=-1", "--startup=inf",
                                    "--gpus=abc", "--gpus=0,,1"])
def test_a_window_value_out_of_range_is_refused(tmp_path, capsys, option):
    refused(capsys, ["run", tmp_path / "c", *GRID, *WINDOW, option], option.replace("=", " "))
    assert not (tmp_path / "c").exists()


def test_no_run_started_says_when_startup_is_longer_than_the_window(tmp_path, capsys):
    assert main(["run", str(tmp_path / "c"), *GRID, *NO_START]) == 0
    said = capsys.readouterr().out
    assert "no run started" in said and "--startup 60" in said, said
    assert not (tmp_path / "c" / "runs").exists()


def test_a_data_dir_with_a_space_or_an_equals_sign_reaches_every_run(tmp_path, capsys):
    data = tmp_path / "my data=here"
    data.mkdir()
    assert main(["run", str(tmp_path / "c"), *GRID, *NO_START, "--data-dir", str(data)]) == 0
    assert "error" not in capsys.readouterr().err


def test_status_on_a_machine_without_a_gpu_does_not_speak_of_gpu_minutes(tmp_path, capsys):
    import torch
    Campaign(tmp_path / "c", GRID).save()
    assert main(["status", str(tmp_path / "c")]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert ("GPU minutes" in last) == torch.cuda.is_available(), last


# -- the campaign's folders ----------------------------------------------------------------------------------

def test_a_campaign_path_that_is_a_file_is_refused(tmp_path, capsys):
    path = tmp_path / "notes.txt"
    path.write_text("mine")
    refused(capsys, ["run", path, *GRID, *WINDOW], str(path), "is a file")
    refused(capsys, ["status", path], str(path), "is a file")
    assert path.read_text() == "mine"


def test_a_campaign_on_a_read_only_disk_is_refused_before_anything(tmp_path, capsys):
    with small_disk(tmp_path / "disk", 512) as disk:
        make_read_only(disk)
        refused(capsys, ["run", f"{disk}/c", *GRID, *WINDOW], f"{disk}/c", "read-only")


def _file(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")


def _folder(path):
    path.mkdir(parents=True)


def _link_to(target: str):
    """A symbolic link to `target` (relative to the link's folder), a file when it has a suffix, else a folder."""
    def make(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        real = path.parent / target
        real.parent.mkdir(parents=True, exist_ok=True)
        real.write_text("someone's") if real.suffix else real.mkdir()
        path.symlink_to(target)
    return make


@pytest.mark.parametrize("where, make, phrase", [
    (f"runs/{SECOND}", _file, "is a file, not a folder"),
    ("runs", _file, "is a file, not a folder"),
    ("campaign.log", _folder, "is a folder, not a file"),
    (f"runs/{FIRST}/console.log", _folder, "is a folder, not a file"),
    (f"runs/{FIRST}/metrics.csv", _folder, "is a folder, not a file"),
    ("campaign.log", _link_to("../victim.txt"), "symbolic link"),
    (f"runs/{FIRST}", _link_to("../../elsewhere"), "symbolic link"),
    (f"runs/{FIRST}/train.log", _link_to("../../../victim.txt"), "symbolic link"),
])
def test_what_a_window_would_write_to_must_be_the_campaigns_own_file_or_folder(tmp_path, capsys, where, make, phrase):
    """Checked before any run starts: with two slots, the first run's train.py was already running when the
    second run's folder turned out to be a file."""
    directory = tmp_path / "c"
    make(directory / where)
    outside = tree(tmp_path)
    refused_unchanged(capsys, directory, ["run", directory, *GRID, *WINDOW, "--per-gpu", "2"],
                      str(directory / where), phrase)
    assert tree(tmp_path) == outside


def test_a_run_folder_holding_a_state_npz_osal_did_not_write_is_refused(tmp_path, capsys):
    directory = tmp_path / "c"
    os.makedirs(run_dir(directory, FIRST))
    state = os.path.join(run_dir(directory, FIRST), "state.npz")
    np.savez(state, weights=np.zeros(3))
    refused_unchanged(capsys, directory, ["run", directory, *GRID, *WINDOW], state)
    np.save(state + ".npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)  # a pickle in .npz's clothes
    os.replace(state + ".npy", state)
    refused_unchanged(capsys, directory, ["run", directory, *GRID, *WINDOW], state)


@pytest.mark.parametrize("text, phrase", [
    (",".join(COLUMNS) + "\n0,abc" + "," * (len(COLUMNS) - 2) + "\n", "where a number belongs"),
    (",".join(COLUMNS) + "\n3,10,0,90" + "," * (len(COLUMNS) - 4) + "\n", "round 0 is missing"),
    ("<<<<<<< HEAD\n" + ",".join(COLUMNS) + "\n=======\n>>>>>>> other\n", "merge-conflict marker"),
])
def test_a_damaged_metrics_csv_is_one_sentence_in_status_and_run(tmp_path, capsys, text, phrase):
    directory = tmp_path / "c"
    Campaign(directory, GRID).save()
    os.makedirs(run_dir(directory, FIRST))
    metrics = os.path.join(run_dir(directory, FIRST), "metrics.csv")
    with open(metrics, "w") as f:
        f.write(text)
    refused_unchanged(capsys, directory, ["status", directory], metrics, phrase)
    refused_unchanged(capsys, directory, ["run", directory, *WINDOW], metrics, phrase)


# -- runs end to end -----------------------------------------------------------------------------------------

def children_of(pid: int) -> list:
    """The live (not zombie) processes whose parent is `pid`."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue  # ended meanwhile
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
def test_the_runs_of_a_killed_campaign_die_with_it(tmp_path):
    """SIGKILL of the campaign alone (an out-of-memory kill, a lost job): its train.py processes, each in a
    session of its own, must not train on as orphans that hold their run folders' locks."""
    campaign = subprocess.Popen([sys.executable, "src/campaign.py", "run", str(tmp_path / "c"), *GRID,
                                 "trainer.max_epochs=5000", "--seconds", "100000", "--gpus", "none", "--per-gpu", "2"],
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    children = []
    try:
        give_up = time.time() + 300  # a guard against a hang, not an expectation of speed
        while len(children) < 2 and campaign.poll() is None and time.time() < give_up:
            children = children_of(campaign.pid)
            time.sleep(0.05)
        assert len(children) == 2, campaign.poll()
        campaign.kill()
        campaign.wait()
        give_up = time.time() + 120
        while any(alive(pid) for pid in children) and time.time() < give_up:
            time.sleep(0.1)
        assert not any(alive(pid) for pid in children)
    finally:
        campaign.kill()
        for pid in children:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_a_raised_al_rounds_in_campaign_yaml_continues_the_finished_runs(tmp_path, capsys):
    """train.py alone continues a finished run when al.rounds grows; a campaign whose campaign.yaml raises it
    does too, and counts the new rounds. (LfOSA: train.py does not yet continue a finished run of a strategy that
    queries from the classifier, such as Random.)"""
    directory = str(tmp_path / "c")
    one_run = ["--only", "strategy=lfosa", "--only", "seed=1", "--per-gpu", "1", "--gpus", "none",
               "--seconds", "100000", "--reserve", "0", "--startup", "0"]  # a window that ends when the run does

    def state_of_the_run() -> list:
        assert main(["status", directory]) == 0
        line = capsys.readouterr().out.splitlines()[1]
        assert line.split()[0] == FIRST
        return line.split()[1:3]

    assert main(["run", directory, *GRID, "al.rounds=1", *one_run]) == 0
    capsys.readouterr()
    assert state_of_the_run() == ["2/2", "finished"]
    path = os.path.join(directory, "campaign.yaml")
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text.replace("al.rounds=1", "al.rounds=2"))
    assert state_of_the_run() == ["2/3", "partway"]
    assert main(["run", directory, *one_run]) == 0
    assert f"finished: {FIRST}, rounds 2 -> 3" in capsys.readouterr().out
    assert state_of_the_run() == ["3/3", "finished"]


@pytest.mark.parametrize("override", ["strategy.selector._target_=numpy.savetxt",
                                      "strategy.selector={_target_:shutil.copyfile,src:a,dst:b}",
                                      "+optimizer.x._target_=builtins.open"])
def test_a_target_outside_the_allow_list_in_the_grid_is_refused_before_anything(tmp_path, capsys, override):
    refused(capsys, ["run", tmp_path / "c", *GRID, override, *WINDOW], "not one of the things osal builds")
    assert not (tmp_path / "c").exists()
    directory = with_campaign_file(tmp_path, f"overrides: [experiment=campaign_demo, '{override}']\n")
    refused_unchanged(capsys, directory, ["run", directory, *WINDOW], f"{directory}/campaign.yaml",
                      "not one of the things osal builds")


def test_a_campaign_yaml_of_nested_aliases_is_refused_before_it_expands(tmp_path, capsys):
    laughs = ['a: &a [x, x, x, x, x, x, x, x, x, x]'] + [
        f"l{i}: &l{i} [" + ", ".join([f"*{'a' if i == 1 else f'l{i - 1}'}"] * 10) + "]" for i in range(1, 9)]
    directory = with_campaign_file(tmp_path, "overrides: [experiment=campaign_demo]\n" + "\n".join(laughs) + "\n")
    refused_unchanged(capsys, directory, ["status", directory], "campaign.yaml", "YAML anchor or alias on line 2")
