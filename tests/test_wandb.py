"""logger=wandb, offline: every round's row reaches W&B with step = round, and each job is its own run.

The values are read back from the run's transaction log (<run>/wandb/offline-run-*/run-<id>.wandb,
what `wandb sync` uploads) and compared with metrics.csv, the source of truth.
"""

import json
import os
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from osal.loop.experiment import Experiment
from osal.records.metrics import COLUMNS, read_metrics

from conftest import ROOT, compose_config

pytest.importorskip("wandb")
from wandb.proto import wandb_internal_pb2  # noqa: E402

pytestmark = pytest.mark.slow  # runs src/train.py, sweeps or whole runs: left out of make test-fast

TINY = ["trainer=cpu", "trainer.enable_progress_bar=false", "logger=wandb", "trainer.max_epochs=1"]


def offline_env(tmp_path) -> dict:
    """Offline W&B whose own files (settings, caches) stay under tmp_path; wandb.ai is never contacted."""
    home = tmp_path / "wandb_home"
    return {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_CONFIG_DIR": str(home / "config"),
            "WANDB_CACHE_DIR": str(home / "cache"), "WANDB_DATA_DIR": str(home / "data"),
            "WANDB_ARTIFACT_DIR": str(home / "artifacts")}


# -- reading a .wandb transaction log ----------------------------------------------------------------
# wandb 0.31 ships no Python reader (the internal process is Go); the file is a LevelDB-style log:
# a 7-byte header (":W&B", magic 0xBEE1, version 0), then 32 KiB blocks of chunks, each with a
# 7-byte header (crc32 of type + data, length, type FULL/FIRST/MIDDLE/LAST); a record is one
# serialized wandb_internal_pb2.Record, split over chunks when long.
BLOCK, HEADER = 32768, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def read_records(path):
    data = Path(path).read_bytes()
    assert data[:HEADER] == struct.pack("<4sHB", b":W&B", 0xBEE1, 0), f"{path} is not a W&B transaction log"
    records, pending, i = [], b"", HEADER
    while i + HEADER <= len(data):
        if BLOCK - i % BLOCK < HEADER:  # a block's tail too short for a chunk header is zero padding
            i += BLOCK - i % BLOCK
            continue
        checksum, length, kind = struct.unpack("<IHB", data[i:i + HEADER])
        if (kind == 0 and length == 0) or i + HEADER + length > len(data):  # the end, or a chunk being written
            break
        chunk = data[i + HEADER:i + HEADER + length]
        i += HEADER + length
        assert zlib.crc32(chunk, zlib.crc32(bytes([kind]))) == checksum, f"corrupt chunk in {path}"
        pending += chunk
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


class LoggedRun:
    """What one offline W&B run recorded: the run record, its config, its history rows, its metric definitions."""

    def __init__(self, path):
        self.path = Path(path)
        records = read_records(path)
        kinds = [r.WhichOneof("record_type") for r in records]
        assert "run" in kinds and "exit" in kinds, f"{path} holds no finished run: {kinds}"
        self.run = next(r.run for r, k in zip(records, kinds) if k == "run")
        self.config, self.history, self.metrics, self.exit_codes = {}, [], [], []
        for record, kind in zip(records, kinds):
            if kind == "config":
                for item in record.config.update:
                    key = item.key or ".".join(item.nested_key)
                    self.config[key] = json.loads(item.value_json)
            elif kind == "history":
                row = {item.key or "/".join(item.nested_key): json.loads(item.value_json)
                       for item in record.history.item}
                row["_record_step"] = record.history.step.num
                self.history.append(row)
            elif kind == "metric":
                self.metrics.append(record.metric)
            elif kind == "exit":
                self.exit_codes.append(record.exit.exit_code)

    def step_metric_of_all(self) -> str:
        """The x-axis that the last definition of the "*" glob gives every chart."""
        return [m.step_metric for m in self.metrics if m.glob_name == "*"][-1]


def offline_runs(run_dir) -> list:
    return sorted((Path(run_dir) / "wandb").glob("offline-run-*/run-*.wandb"))


def finished_run(path, timeout=60.0) -> LoggedRun:
    """The run once its log ends with the exit record: wandb-core (a separate process) may still be writing
    the file for a moment after run.finish() returned in this process."""
    deadline = time.monotonic() + timeout
    while True:
        records = read_records(path)
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.monotonic() > deadline:
            return LoggedRun(path)
        time.sleep(0.2)


# -- the tests ---------------------------------------------------------------------------------------
def test_offline_run_logs_every_round_as_in_metrics_csv(tmp_path, monkeypatch):
    for key, value in offline_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    cfg = compose_config(TINY + ["al.rounds=2", "strategy=random", "seed=3", "mismatch=0.4",
                                 "logger.project=osal-test", "+wandb_tags.note=smoke"])
    run_dir = tmp_path / "run"
    Experiment(cfg, run_dir).run()

    (path,) = offline_runs(run_dir)  # save_dir = the run directory
    logged = finished_run(path)
    assert logged.exit_codes == [0]  # finished
    # grouped by dataset and mismatch, named by strategy and seed, tagged; the resolved config as the run's config
    assert logged.run.project == "osal-test"
    assert logged.run.run_group == "digits-mismatch0.4"
    assert logged.run.display_name == "random-seed3"
    assert list(logged.run.tags) == ["digits", "mismatch0.4", "random", "seed3", "smoke"]
    config = {k: v for k, v in logged.config.items() if k != "_wandb"}
    assert config == OmegaConf.to_container(cfg, resolve=True)
    assert (config["dataset"]["name"], config["strategy"]["name"], config["seed"]) == ("digits", "random", 3)

    # one history row per round, W&B's step = round, and "round" is every chart's x-axis
    rows = read_metrics(run_dir / "metrics.csv")
    assert [r["round"] for r in rows] == [0, 1, 2]
    assert [h["_step"] for h in logged.history] == [0, 1, 2]
    assert [h["_record_step"] for h in logged.history] == [0, 1, 2]
    assert [h["round"] for h in logged.history] == [0, 1, 2]
    assert [h["trainer/global_step"] for h in logged.history] == [0, 1, 2]
    assert logged.step_metric_of_all() == "round"
    # every value equals metrics.csv's (which keeps 6 significant digits); an empty cell is not logged
    for row, history in zip(rows, logged.history):
        for column in COLUMNS:
            if row[column] is None:
                assert column not in history, (column, row["round"])
            else:
                assert history[column] == pytest.approx(row[column], rel=1e-5, abs=1e-9), (column, row["round"])
    assert rows[0]["precision"] is None and rows[1]["precision"] is not None
    for column in ("recall", "precision", "test_accuracy"):
        assert [h.get(column) for h in logged.history[1:]] == pytest.approx([r[column] for r in rows[1:]], rel=1e-5)


def test_each_job_of_a_multirun_is_its_own_offline_run(tmp_path):
    sweep = tmp_path / "sweep"
    env = {**os.environ, **offline_env(tmp_path), "PYTHONUNBUFFERED": "1"}
    result = subprocess.run([sys.executable, "src/train.py", "-m", "seed=1,2", *TINY, "al.rounds=1",
                             f"hydra.sweep.dir={sweep}"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if (p / "metrics.csv").exists())
    assert len(jobs) == 2
    runs = {}
    for seed, job in zip((1, 2), jobs):
        (path,) = offline_runs(job)  # one W&B run per job, inside the job's directory
        logged = finished_run(path)
        assert logged.exit_codes == [0]
        assert logged.run.display_name == f"lfosa-seed{seed}" and logged.config["seed"] == seed
        assert logged.run.run_group == "digits-mismatch0.2"
        rows = read_metrics(job / "metrics.csv")
        assert [h["_step"] for h in logged.history] == [r["round"] for r in rows] == [0, 1]
        assert [h["recall"] for h in logged.history] == pytest.approx([r["recall"] for r in rows], rel=1e-5)
        runs[logged.run.run_id] = path
    assert len(runs) == 2  # distinct run ids
    assert all(path.name == f"run-{run_id}.wandb" for run_id, path in runs.items())
