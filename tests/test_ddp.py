"""DDP: several processes train one run (gloo on these CPUs). Sharded pool scoring gives exactly the single-process
outputs, every pool example scored once; a 2-process run of src/train.py writes the records one process would,
from its main process alone; a SIGKILL of the whole job followed by the same command resumes it."""

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
import warnings

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from osal.data.oracle import UNKNOWN
from osal.data.pool import PoolState
from osal.data.shares import contiguous_share
from osal.records.metrics import read_metrics
from osal.records.run_state import load_state

from conftest import ROOT, assert_same_records, compose_config, run_train, wait_until_round_saved

TWO = ["trainer=cpu", "trainer.devices=2", "trainer.strategy=ddp"]
RUN = ["trainer.enable_progress_bar=false", "logger=none", "mismatch=0.4", "al.query_size=30"]


class Everything:
    """What a strategy could ask of inference: the pool's and the labeled and invalid sets' outputs."""

    needs = ("logits", "features", "labeled_features", "labeled_logits", "invalid_features")
    mc_samples = 0


@pytest.mark.parametrize("size", [0, 1, 5, 1001])
@pytest.mark.parametrize("parts", [1, 2, 3, 8])
def test_shares_hold_every_index_once_in_order_without_padding(size, parts):
    indices = np.arange(size) * 3 + 7
    shares = [contiguous_share(indices, p, parts) for p in range(parts)]
    assert np.array_equal(np.concatenate(shares), indices)  # every index once, index order kept
    lengths = [len(s) for s in shares]
    assert max(lengths) - min(lengths) <= 1
    with pytest.raises(ValueError):
        contiguous_share(indices, parts, parts)


# -- sharded scoring in two real processes ---------------------------------------------------------------
def _data_and_network():
    from osal.build import build
    from osal.loop.data import open_set_data
    cfg = compose_config(["mismatch=0.4", "data.inference_batch_size=64"])
    _, datamodule = open_set_data(cfg)
    pool = datamodule.pool
    unknown = pool.unlabeled[pool.oracle.answer(pool.unlabeled) == UNKNOWN][:25]
    pool.annotate(unknown, 1)  # an invalid set to score as well
    torch.manual_seed(0)
    network = build(cfg.model)(num_outputs=datamodule.num_known)
    return datamodule, network


def _score_in_process(rank, world, folder):
    from osal.engine import distributed
    from osal.engine.inference import collect_outputs
    from osal.engine.query import query_pool
    from osal.strategies.coreset import CoresetStrategy
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=world)
    try:
        datamodule, network = _data_and_network()
        outputs = collect_outputs(network, datamodule, Everything(), torch.device("cpu"))
        rng = np.random.default_rng(5)
        query = query_pool(network, datamodule, CoresetStrategy(), 40, rng, torch.device("cpu"))
        datamodule.pool.annotate(query.selection.indices, 2)
        pool_digest = distributed.digest(*datamodule.pool.state_dict().values())
        result = {"is_none": outputs is None, "chosen": query.selection.indices.tolist(),
                  "rng": str(rng.bit_generator.state), "pool": pool_digest}
        if outputs is not None:
            result["scored_by_rank"] = outputs.scored_by_rank
            np.savez(f"{folder}/outputs.npz", **{k: getattr(outputs, k) for k in ("indices", "logits", "features",
                     "labeled_features", "labeled_logits", "labeled_targets", "invalid_features")})
        # the check that ends every round: a process whose pool differs is caught
        if rank == 1:
            datamodule.pool.pool_state.mark(datamodule.pool.unlabeled[:1], np.array([False]), 3)
        try:
            distributed.check_same_everywhere("pool states", *datamodule.pool.state_dict().values())
            result["mismatch_caught"] = False
        except RuntimeError as error:
            result["mismatch_caught"] = "hold different pool states" in str(error)
        with open(f"{folder}/rank{rank}.json", "w") as f:
            json.dump(result, f)
        dist.barrier()  # both done before either closes its connections
        with open(f"{folder}/rank{rank}.done", "w"):  # past the last collective: only the teardown is left
            pass
    finally:
        dist.destroy_process_group()


def test_two_processes_score_the_pool_once_and_gather_exactly_what_one_process_computes(tmp_path):
    from osal.engine.inference import collect_outputs
    from osal.engine.query import query_pool
    from osal.strategies.coreset import CoresetStrategy
    try:
        mp.start_processes(_score_in_process, args=(2, str(tmp_path)), nprocs=2, start_method="spawn")
    except mp.ProcessExitedException as error:
        # gloo may abort a process while it tears its group down ("terminate called without an active exception",
        # seen on a loaded 2-core machine): tolerated only once both processes were past their last collective
        if not all((tmp_path / f"rank{r}.done").exists() for r in range(2)):
            raise
        warnings.warn(f"a process aborted in gloo's teardown after the last collective ({error})")
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    datamodule, network = _data_and_network()
    alone = collect_outputs(network, datamodule, Everything(), torch.device("cpu"))
    gathered = np.load(tmp_path / "outputs.npz")
    for key in gathered.files:  # rank order is index order: the very arrays, row for row
        np.testing.assert_allclose(gathered[key], getattr(alone, key), rtol=1e-5, atol=1e-5, err_msg=key)
    assert np.array_equal(gathered["indices"], datamodule.pool.unlabeled)
    shares = ranks[0]["scored_by_rank"]
    assert sum(shares) == len(datamodule.pool.unlabeled) and abs(shares[0] - shares[1]) <= 1
    assert not ranks[0]["is_none"] and ranks[1]["is_none"]  # the main process alone holds the outputs

    rng = np.random.default_rng(5)
    chosen = query_pool(network, datamodule, CoresetStrategy(), 40, rng, torch.device("cpu")).selection.indices
    assert ranks[0]["chosen"] == ranks[1]["chosen"] == chosen.tolist()
    assert ranks[0]["rng"] == ranks[1]["rng"] == str(rng.bit_generator.state)
    assert ranks[0]["pool"] == ranks[1]["pool"]
    assert ranks[0]["mismatch_caught"] and ranks[1]["mismatch_caught"]


# -- whole runs of src/train.py on two processes ---------------------------------------------------------
def scored_lines(stdout):
    """(examples, shares) of every "... pool examples scored by N processes (a + b), each once" line."""
    found = []
    for line in stdout.splitlines():
        if "pool examples scored by" in line:
            total = int(line.split()[0].replace(",", ""))
            shares = [int(n.replace(",", "")) for n in line.split("(")[1].split(")")[0].split(" + ")]
            found.append((total, shares))
    return found


@pytest.mark.slow
def test_a_two_process_run_scores_each_example_once_per_query_and_writes_one_set_of_records(tmp_path):
    one, tmp_path = tmp_path / "one", tmp_path / "two"
    common = [*RUN, "al.rounds=2", "trainer.max_epochs=8"]
    assert run_train("trainer=cpu", *common, f"hydra.run.dir={one}").returncode == 0
    result = run_train(*TWO, *common, f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "DDP: 2 processes" in result.stdout
    rows = read_metrics(tmp_path / "metrics.csv")
    assert [r["round"] for r in rows] == [0, 1, 2]
    scored = scored_lines(result.stdout)
    assert len(scored) == 2  # one line per query, from the main process alone
    for (total, shares), before in zip(scored, rows):
        assert total == before["n_unlabeled"] == sum(shares) and len(shares) == 2 and abs(shares[0] - shares[1]) <= 1
    # the records of one process: no second log, no second Hydra folder, nothing from the other process
    names = sorted(os.listdir(tmp_path))
    assert names == [".hydra", ".osal.lock", "metrics.csv", "pool_round_00.npz", "pool_round_01.npz",
                     "pool_round_02.npz", "state.npz", "summary.json", "train.log"], names
    assert result.stdout.count("results in") == 1
    # what one process computes, up to DDP's own nondeterminism (other shuffles, per-process BatchNorm on CPUs)
    alone = read_metrics(one / "metrics.csv")
    for r, a in zip(rows, alone):
        assert abs(r["test_accuracy"] - a["test_accuracy"]) < 0.05, (r, a)
        assert r["n_labeled"] + r["n_invalid"] == a["n_labeled"] + a["n_invalid"]
    assert min(r["test_accuracy"] for r in rows) > 0.9 and min(r["precision"] for r in rows[1:]) >= 0.9


@pytest.mark.slow
def test_random_queries_on_two_processes_equal_one_process_pool_for_pool(tmp_path):
    """Random's choice depends on the query generator alone, which the main process draws from and hands on:
    the pools after every round are those of the one-process run, bit for bit."""
    one, two = tmp_path / "one", tmp_path / "two"
    common = [*RUN, "strategy=random", "al.rounds=2", "trainer.max_epochs=2"]
    assert run_train("trainer=cpu", *common, f"hydra.run.dir={one}").returncode == 0
    result = run_train(*TWO, *common, f"hydra.run.dir={two}")
    assert result.returncode == 0, result.stderr[-3000:]
    for r in range(3):
        a, b = (PoolState.load(d / f"pool_round_{r:02d}.npz") for d in (one, two))
        assert np.array_equal(a.state, b.state) and np.array_equal(a.query_round, b.query_round)
    counts = ["n_labeled", "n_invalid", "n_unlabeled", "queried", "queried_known", "precision", "recall"]
    assert [[row[c] for c in counts] for row in read_metrics(one / "metrics.csv")] == \
        [[row[c] for c in counts] for row in read_metrics(two / "metrics.csv")]


def processes_marked(mark):
    """PIDs of live processes whose environment holds OSAL_TEST_MARK=mark (a run's main and its children)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if f"OSAL_TEST_MARK={mark}".encode() in f.read().split(b"\0"):
                    found.append(int(pid))
        except OSError:
            continue
    return found


@pytest.mark.slow
def test_a_two_process_run_killed_mid_round_resumes_to_the_uninterrupted_result(tmp_path):
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    args = [*TWO, *RUN, "al.rounds=3", "trainer.max_epochs=30"]  # rounds of a few seconds: time to kill one
    done = run_train(*args, f"hydra.run.dir={reference}")
    assert done.returncode == 0, done.stderr[-3000:]

    mark = uuid.uuid4().hex
    job = subprocess.Popen([sys.executable, "src/train.py", *args, f"hydra.run.dir={interrupted}"], cwd=ROOT,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                           env={**os.environ, "OSAL_TEST_MARK": mark})
    wait_until_round_saved(interrupted, 1, job)  # then into round 2's fits
    assert len(processes_marked(mark)) == 2, "the run did not have its two processes"
    os.killpg(job.pid, signal.SIGKILL)  # the job's process group, as SLURM or a terminal would
    job.wait(timeout=60)
    gone = time.time() + 20
    while processes_marked(mark) and time.time() < gone:
        time.sleep(0.2)
    assert processes_marked(mark) == [], "a DDP process outlived its main process"
    last_completed = load_state(interrupted).last_round
    assert last_completed < 3, "the run finished before it could be killed"

    result = run_train(*args, f"hydra.run.dir={interrupted}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"after round {last_completed}" in result.stdout
    assert_same_records(reference, interrupted, rounds=3)


@pytest.mark.slow
def test_a_failing_process_ends_the_run_with_one_line_and_keeps_completed_rounds(tmp_path):
    """The other process dies (SIGKILL) during a fit: the main process does not wait on it for half an hour."""
    args = [*TWO, *RUN, "al.rounds=3", "trainer.max_epochs=30", f"hydra.run.dir={tmp_path}"]
    mark = uuid.uuid4().hex
    job = subprocess.Popen([sys.executable, "src/train.py", *args], cwd=ROOT, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env={**os.environ, "OSAL_TEST_MARK": mark})
    deadline = time.time() + 300
    while time.time() < deadline and not (tmp_path / "pool_round_00.npz").exists():
        time.sleep(0.05)
    child = [pid for pid in processes_marked(mark) if pid != job.pid]
    assert len(child) == 1
    os.kill(child[0], signal.SIGKILL)
    _, stderr = job.communicate(timeout=120)
    assert job.returncode != 0
    assert "DDP process 1 ended with exit status -9" in stderr and "Traceback" not in stderr
    assert load_state(tmp_path).last_round >= 0  # round 0 is kept


def test_ddp_knobs_are_refused_with_one_sentence():
    from osal.errors import ConfigError
    from osal.knobs import check_config
    cases = {("trainer.devices=2", "trainer.strategy=ddp_spawn"): "trainer.strategy='ddp_spawn'",
             ("trainer.devices=2", "data.batch_size=129"): "data.batch_size=129"}
    for overrides, named in cases.items():
        with pytest.raises(ConfigError, match=re.escape(named)):
            check_config(compose_config(["trainer=cpu", *overrides]))
    # the annotation commands train on one device
    from hydra import compose, initialize_config_dir

    from conftest import CONF
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        annotate = compose("annotate", overrides=["trainer=cpu", "trainer.devices=2"])
    check_config(annotate)
    with pytest.raises(ConfigError, match=r"trainer\.devices=2 .*annotation commands train on one device"):
        check_config(annotate, one_process=True)


@pytest.mark.slow
def test_torchrun_processes_join_one_run_with_the_records_of_a_local_two_process_run(tmp_path):
    local, launched = tmp_path / "local", tmp_path / "torchrun"
    args = [*TWO, *RUN, "al.rounds=2", "trainer.max_epochs=2"]
    assert run_train(*args, f"hydra.run.dir={local}").returncode == 0
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2", "src/train.py"]
    result = subprocess.run([*torchrun, *args, f"hydra.run.dir={launched}"], cwd=ROOT, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "started on this machine" not in result.stdout  # torchrun's processes, none of osal's own
    assert result.stdout.count("results in") == 1 and len(scored_lines(result.stdout)) == 2
    assert_same_records(local, launched, rounds=2)
