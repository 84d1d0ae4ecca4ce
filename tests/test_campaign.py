"""The campaign runner on the CPU: the grid in priority order, the packing of runs on slots, the deadline,
continuation from a committed directory, and refusal of a directory that holds another grid."""

import os
import shutil
import subprocess
import sys
import time

import pytest

from osal.campaign.campaign import Campaign
from osal.campaign.grid import compose_experiment, expand
from osal.campaign.progress import format_table, run_dir
from osal.campaign.scheduler import Scheduler
from osal.errors import ConfigError
from osal.records.metrics import read_metrics
from osal.records.run_state import load_state

from conftest import ROOT, run_train

pytestmark = pytest.mark.slow  # runs src/train.py, sweeps or whole runs: left out of make test-fast

GRID = ["experiment=campaign_demo"]
# a window no run outlasts on any machine: a window ends when nothing is left to start, so a test that needs its
# runs finished waits for them rather than for a number of seconds
LONG_WINDOW = 100000
TIMING = {"query_seconds", "inference_seconds", "selection_seconds", "fit_seconds"}


def campaign_cli(*args, timeout=1800):  # a guard against a hang, not an expectation of speed
    return subprocess.run([sys.executable, "src/campaign.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def without_timing(rows):
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


def test_stages_expand_in_priority_order_with_one_name_per_run():
    runs = expand(compose_experiment(GRID))
    assert [r.name for r in runs] == ["digits_mismatch0.4_lfosa_seed1", "digits_mismatch0.4_random_seed1",
                                      "digits_mismatch0.4_lfosa_seed2", "digits_mismatch0.4_random_seed2"]
    assert runs[1].overrides == ["dataset=digits", "mismatch=0.4", "strategy=random", "seed=1"]


def test_the_reproduction_grid_puts_cifar10_lfosa_and_random_seed_1_first():
    runs = expand(compose_experiment(["experiment=reproduce_cifar10"]))
    first = [r.name for r in runs[:6]]
    assert first == [f"cifar10_mismatch{m}_{s}_seed1" for m in ("0.2", "0.3", "0.4") for s in ("lfosa", "random")]
    assert runs[6].name == "cifar10_mismatch0.3_lfosa_seed1_al.init_percent=6"
    assert len({r.name for r in runs}) == len(runs)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo grid run to its end on two CPU slots, in-process, each start and end recorded (the window is long
    enough for any machine: it ends when every run has finished)."""
    campaign = Campaign(tmp_path_factory.mktemp("campaign") / "c", GRID)
    campaign.save()
    events = []
    scheduler = Scheduler(campaign.directory, campaign.runs, campaign.configs, campaign.overrides, [None, None],
                          window_seconds=LONG_WINDOW, reserve_seconds=20, startup_seconds=2,
                          say=lambda text: events.append((time.time(), text)))
    return campaign, events, scheduler.run()


def test_the_packing_scheduler_keeps_every_slot_busy_and_never_more(demo):
    campaign, events, outcomes = demo
    assert {name: what for name, (_, _, what) in outcomes.items()} == {r.name: "finished" for r in campaign.runs}
    running, most = 0, 0
    for _, text in sorted(events):
        running += 1 if text.startswith("start ") else (-1 if text.startswith("finished") else 0)
        most = max(most, running)
    assert most == 2  # two slots: two runs at once, never three
    assert [text.split()[1] for _, text in events if text.startswith("start ")] == [r.name for r in campaign.runs]


def test_a_window_ends_at_round_boundaries_and_a_committed_copy_continues_to_the_uninterrupted_result(tmp_path):
    # the runs' deadline is 1 s after the window opens: the first two runs start (at once, on the scheduler's first
    # pass), do round 0 (nothing to estimate from yet) and stop at the deadline before round 1, however long they
    # take; the window itself is long enough for any machine, so no run is cut off at its end
    first = campaign_cli("run", str(tmp_path / "c"), *GRID, "--seconds", str(LONG_WINDOW), "--reserve",
                         str(LONG_WINDOW - 1), "--startup", "0", "--gpus", "none", "--per-gpu", "2")
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.stdout.count("stopped at the deadline: ") == 2, first.stdout
    # a run the window stopped partway: its completed rounds are kept, in order, and it has no summary
    partway = [r.name for r in expand(compose_experiment(GRID)) if os.path.exists(run_dir(tmp_path / "c", r.name) +
               "/state.npz") and not os.path.exists(run_dir(tmp_path / "c", r.name) + "/summary.json")]
    assert len(partway) == 2, first.stdout
    name = partway[0]
    kept = load_state(run_dir(tmp_path / "c", name)).last_round
    assert [r["round"] for r in read_metrics(run_dir(tmp_path / "c", name) + "/metrics.csv")] == \
        list(range(kept + 1))

    # what the next window finds: the directory as committed and cloned elsewhere (git leaves the lock file out)
    repo = tmp_path / "repo"
    shutil.copytree(tmp_path / "c", repo / "campaign")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / ".gitignore").write_text((ROOT / ".gitignore").read_text())
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "w1"],
                   check=True)
    subprocess.run(["git", "clone", "-q", str(repo), str(tmp_path / "clone")], check=True)
    assert not list((tmp_path / "clone" / "campaign").rglob(".osal.lock"))
    # a window that ends when every run has finished, however long that takes
    second = campaign_cli("run", str(tmp_path / "clone" / "campaign"), "--seconds", str(LONG_WINDOW), "--reserve",
                          "5", "--startup", "3", "--gpus", "none", "--per-gpu", "2")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "4 of 4 runs finished" in second.stdout

    reference = tmp_path / "reference"
    run = next(r for r in expand(compose_experiment(GRID)) if r.name == name)
    done = run_train(*GRID, *run.overrides, "logger=none", "trainer.enable_progress_bar=false",
                     f"hydra.run.dir={reference}", timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    continued = run_dir(tmp_path / "clone" / "campaign", name)
    assert without_timing(read_metrics(f"{continued}/metrics.csv")) == \
        without_timing(read_metrics(reference / "metrics.csv"))


def test_a_directory_of_another_grid_or_with_changed_runs_is_refused(demo):
    campaign, _, _ = demo
    other = campaign_cli("run", campaign.directory, *GRID, "al.query_size=20", "--seconds", "60", "--gpus", "none")
    assert other.returncode == 2 and "holds the campaign experiment=campaign_demo, not" in other.stderr
    # a run changed behind the campaign's back: its saved config no longer matches the grid
    again = Campaign(campaign.directory)
    again.configs["digits_mismatch0.4_lfosa_seed1"].al.init_percent = 50.0
    with pytest.raises(ConfigError, match=r"were started with another config than the grid gives them now"):
        again.refuse_changed_runs()


def test_stages_added_to_a_campaign_keep_its_finished_runs(demo):
    """campaign.stages orders the grid and changes no run's numbers: a campaign whose experiment gained a stage
    after some runs finished accepts those runs as they are."""
    campaign, _, _ = demo
    again = Campaign(campaign.directory)
    for config in again.configs.values():
        config.campaign.stages = [*config.campaign.stages, {"dataset": "digits", "seed": 9}]
    again.refuse_changed_runs()
    config = again.configs["digits_mismatch0.4_lfosa_seed1"]
    config.campaign.stages = []
    config.al.init_percent = 50.0
    with pytest.raises(ConfigError, match=r"digits_mismatch0.4_lfosa_seed1 \(al.init_percent\)"):
        again.refuse_changed_runs()


def test_status_prints_every_run_and_the_minutes_left(demo):
    campaign, _, _ = demo
    status = campaign_cli("status", campaign.directory)
    assert status.returncode == 0, status.stderr[-2000:]
    lines = status.stdout.strip().splitlines()
    assert lines[0].split() == ["run", "rounds", "state", "images/s", "min", "left"]
    assert len(lines) == 1 + 4 + 1 and "4 of 4 runs finished" in lines[-1]
    assert all(line.split()[1:3] == ["4/4", "finished"] for line in lines[1:5])
    assert "digits_mismatch0.4_lfosa_seed1" in format_table(campaign.progress(), 2, "the CPU", on_gpu=False)


def test_a_run_still_training_at_the_end_of_the_window_is_stopped_and_keeps_its_rounds(tmp_path):
    long_rounds = GRID + ["trainer.max_epochs=5000"]  # round 0 alone outlasts the window on any machine
    result = campaign_cli("run", str(tmp_path / "c"), *long_rounds, "--seconds", "20", "--reserve", "4",
                          "--startup", "1", "--gpus", "none", "--per-gpu", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "interrupted at the end of the window: digits_mismatch0.4_lfosa_seed1, rounds 0 -> 0" in result.stdout
    # the window kept to its length: Ctrl-C 2 s before its end, then at most 5 s for the run to stop before a kill
    window = open(tmp_path / "c" / "campaign.log").read().splitlines()[0]
    assert float(window.rsplit(", ", 1)[1].split()[0]) <= 20 + 5 + 2, window
    directory = run_dir(tmp_path / "c", "digits_mismatch0.4_lfosa_seed1")
    # train.py's own line: it got Ctrl-C, not a kill (in its loop, or still starting where the machine is slow)
    said = open(f"{directory}/console.log").read()
    assert "interrupted: no round of the run" in said or "interrupted; every completed round" in said, said[-2000:]
    assert not os.path.exists(f"{directory}/summary.json")


def test_every_run_directory_reaches_hydra_whole_even_with_an_equals_sign_or_a_quote(tmp_path):
    """The reproduction grid names runs after their extra overrides (`..._al.init_percent=6`): Hydra's override
    grammar refused that directory unquoted, and both such runs failed in the first GPU window."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    campaign_dir = tmp_path / "it's a campaign"
    runs = expand(compose_experiment(["experiment=reproduce_cifar10"]))
    scheduler = Scheduler(campaign_dir, runs, {}, ["experiment=reproduce_cifar10"], [None], window_seconds=60)
    for run in runs[:8]:
        command = scheduler.command(run, deadline=time.time() + 60)
        parsed = OverridesParser.create().parse_overrides(command[2:])
        values = {o.key_or_group: o.value() for o in parsed}
        assert values["hydra.run.dir"] == run_dir(campaign_dir, run.name)
    assert "=" in runs[6].name


def test_only_runs_the_runs_whose_data_is_at_hand_and_a_wrong_filter_is_one_sentence(tmp_path):
    """A GPU window may carry only some datasets (Tiny-ImageNet's copy is larger than what travels to the lent
    machine): `--only dataset=...` keeps the others waiting instead of failing them one after another."""
    directory = str(tmp_path / "c")
    wrong = campaign_cli("run", directory, *GRID, "--seconds", "60", "--gpus", "none", "--only", "dataset=mnist")
    assert wrong.returncode == 2 and "matches no run of this campaign" in wrong.stderr
    assert "Traceback" not in wrong.stderr
    window = campaign_cli("run", directory, *GRID, "--seconds", str(LONG_WINDOW), "--gpus", "none", "--per-gpu", "2",
                          "--only", "strategy=random", "--reserve", "5", "--startup", "2")
    assert window.returncode == 0, window.stderr[-2000:]
    started = [line.split()[1] for line in window.stdout.splitlines() if line.startswith("start ")]
    assert sorted(started) == ["digits_mismatch0.4_random_seed1", "digits_mismatch0.4_random_seed2"]
    assert "2 in this window: strategy=random" in window.stdout.splitlines()[0]
    assert not os.path.exists(run_dir(directory, "digits_mismatch0.4_lfosa_seed1"))


def test_runs_are_told_paths_inside_the_repository_relative_to_it(tmp_path):
    """What a committed campaign's records say of its run and data directories names no one's home directory."""
    from osal.campaign.scheduler import REPOSITORY
    from osal.folders import shown

    inside = REPOSITORY / "docs" / "measurements" / "campaigns" / "x" / "runs" / "a"
    assert shown(inside, base=str(REPOSITORY)) == os.path.join("docs", "measurements", "campaigns", "x", "runs", "a")
    assert shown(tmp_path / "data", base=str(REPOSITORY)) == str(tmp_path / "data")


def test_logs_name_a_run_inside_the_working_directory_relative_to_it(tmp_path, monkeypatch):
    from osal.folders import shown

    monkeypatch.chdir(tmp_path)
    assert shown(tmp_path / "runs" / "a") == os.path.join("runs", "a")
    assert shown("runs/a") == os.path.join("runs", "a")
    assert shown("/elsewhere/runs/a") == "/elsewhere/runs/a"
    assert shown("../elsewhere") == str(tmp_path.parent / "elsewhere")  # outside: absolute
