"""Where each run of a campaign stands, how fast it trains, and how many (GPU) minutes the rest needs."""

import json
import os
import statistics
from dataclasses import dataclass
from typing import Optional, Union

from hydra.utils import get_class
from omegaconf import DictConfig

from osal.loop.protocol_estimate import protocol_of_sizes, training_work
from osal.loop.round_estimate import (
    example_epochs,
    fit_schedule,
    next_round_seconds,
    predicted_rounds,
    predicted_seconds,
    seconds_per_example_epoch,
)
from osal.records.metrics import read_checked_metrics
from osal.records.summary import is_finished, summary_path
from osal.stored import DamagedFileError, read_text

RUNS = "runs"  # the folder of a campaign that holds its run directories


@dataclass
class Progress:
    name: str
    rounds_done: int  # completed rounds, round 0 included (0 = not started)
    rounds_total: int  # al.rounds + 1
    finished: bool
    rate: float  # training example-epochs ("images") per second; None before any round
    work_done: float  # example-epochs trained so far
    work_left: float  # example-epochs of the rounds still to run; None before any round
    seconds_left: float  # for the rounds still to run; None if unknown
    next_round_seconds: float  # None if unknown
    sizes: Optional[tuple] = None  # (labeled at the start, unlabeled pool, knowns in it or None), once started


def run_dir(campaign_dir: Union[str, os.PathLike], name: str) -> str:
    return os.path.join(str(campaign_dir), RUNS, name)


def damaged_record_fix(path: str) -> str:
    """What to do about a run's record that does not read back as osal wrote it."""
    return (f"restore it from the repository's history (git checkout <commit> -- {path}), or move its run's folder "
            f"{os.path.dirname(path)} away to run that run again from its start")


def read_rows(directory: Union[str, os.PathLike]) -> list:
    """The metrics.csv rows of a run's folder (none before its first round); DamagedFileError when the file is not
    what osal writes (osal.records.metrics.read_checked_metrics: a Git LFS pointer, merge-conflict markers, a
    cell that is not a number, rows that are not rounds 0, 1, ...)."""
    path = os.path.join(str(directory), "metrics.csv")
    if not os.path.exists(path):
        return []
    return read_checked_metrics(path, damaged_record_fix(path))


def ended_early(directory: Union[str, os.PathLike]) -> bool:
    """Whether a finished run's summary.json notes that it ended before its last round (the pool ran out): no
    larger al.rounds continues such a run."""
    path = summary_path(directory)
    try:
        summary = json.loads(read_text(path))
    except ValueError:
        summary = None
    if not isinstance(summary, dict):
        raise DamagedFileError(f"{path} is not the summary.json osal writes (not a JSON object); "
                               f"{damaged_record_fix(path)}")
    return bool(summary.get("note"))


def protocol(cfg: DictConfig) -> dict:
    """What the estimates need of a run's config."""
    schedule = fit_schedule(cfg)
    return {"rounds": int(cfg.al.rounds), "query_size": int(cfg.al.query_size), "epochs": schedule,
            "with_detector": bool(cfg.strategy.get("detector")), "dataset": str(cfg.dataset.name), "cfg": cfg,
            # runs on the same pool: what a started run's sizes say of one not started yet
            "data": (str(cfg.dataset.name), float(cfg.mismatch), float(cfg.al.init_percent),
                     bool(cfg.al.get("init_stratified")), cfg.get("openness")),
            "like": (str(cfg.dataset.name), float(cfg.mismatch), float(cfg.al.init_percent), int(cfg.al.rounds),
                     int(cfg.al.query_size), schedule, bool(cfg.strategy.get("detector")))}


def read_progress(campaign_dir: Union[str, os.PathLike], name: str, cfg: DictConfig) -> Progress:
    """One run's progress from its directory (missing: not started) and its composed config."""
    p = protocol(cfg)
    directory = run_dir(campaign_dir, name)
    rows = read_rows(directory)
    # finished for the rounds asked now: a larger al.rounds continues a finished run, as train.py alone does
    finished = is_finished(directory) and (len(rows) >= p["rounds"] + 1 or ended_early(directory))
    if not rows:
        return Progress(name, 0, p["rounds"] + 1, finished, None, 0.0, None, None, None)
    sizes = pool_sizes(rows)
    per_example_epoch = seconds_per_example_epoch(rows, p["epochs"], p["with_detector"])
    done = sum(example_epochs(row, rows[i - 1] if i else None, p["epochs"], p["with_detector"])
               for i, row in enumerate(rows))
    args = (rows, p["rounds"], p["query_size"], p["epochs"], p["with_detector"])
    left = [] if finished else [w.example_epochs for w in predicted_rounds(*args)]
    if per_example_epoch is None:
        return Progress(name, len(rows), p["rounds"] + 1, finished, None, done, sum(left), None, None, sizes)
    seconds = [] if finished else predicted_seconds(*args)
    return Progress(name, len(rows), p["rounds"] + 1, finished, 1.0 / per_example_epoch, done, sum(left),
                    sum(seconds), None if finished else next_round_seconds(*args), sizes)


def pool_sizes(rows: list) -> tuple:
    """(labeled at the start, the unlabeled pool, the knowns in it where a round says: queried knowns / recall)."""
    first, last = rows[0], rows[-1]
    found = sum(int(r.get("queried_known") or 0) for r in rows[1:])
    recall = float(last.get("recall") or 0.0)
    known = round(found / recall) if recall > 0 else None
    return int(first["n_labeled"]), int(first["n_unlabeled"]), known


def fill_unknown(progress: list, protocols: list) -> None:
    """Runs not started yet: their work is the estimate of their protocol (osal.loop.protocol_estimate: the
    schedule of fits, their strategy's detector with its training set and step cost) on the pool a started run of
    the same data shows, or, without one, that of a started run of the same protocol; their rate is the median of
    the runs of their dataset."""
    rates, work, sizes = {}, {}, {}
    for pr, p in zip(progress, protocols):
        if pr.rate:
            rates.setdefault(p["dataset"], []).append(pr.rate)
            work.setdefault(p["like"], pr.work_done + (pr.work_left or 0.0))
        if pr.sizes:
            sizes.setdefault(p["data"], pr.sizes)
    for pr, p in zip(progress, protocols):
        if pr.rounds_done or pr.finished or not rates.get(p["dataset"]):
            continue
        if p["data"] in sizes:
            initial, pool, known = sizes[p["data"]]
            needs = tuple(getattr(get_class(p["cfg"].strategy.selector._target_), "needs", ("logits",)))
            estimate = protocol_of_sizes(p["cfg"], initial, pool, 0, p["with_detector"], needs, known)
            pr.work_left = training_work(estimate)
        elif p["like"] in work:
            pr.work_left = work[p["like"]]
        else:
            continue
        pr.seconds_left = pr.work_left / statistics.median(rates[p["dataset"]])


def format_table(progress: list, slots: int, device: Optional[str], on_gpu: bool) -> str:
    """The status table: each run, rounds done / total, images/s, minutes left; then the campaign's rest in minutes
    (GPU minutes when `on_gpu`) on `device` with `slots` runs at a time, or, without a device (a status taken where
    the campaign does not run), at the speeds its runs have shown so far."""
    lines = [f"{'run':<48} {'rounds':>7} {'state':>9} {'images/s':>9} {'min left':>9}"]
    for pr in progress:
        state = "finished" if pr.finished else ("waiting" if pr.rounds_done == 0 else "partway")
        rate = "-" if pr.rate is None else f"{pr.rate:,.0f}"
        left = "0" if pr.finished else ("?" if pr.seconds_left is None else f"{pr.seconds_left / 60:.1f}")
        lines.append(f"{pr.name[:48]:<48} {pr.rounds_done:>3}/{pr.rounds_total:<3} {state:>9} {rate:>9} {left:>9}")
    known = [pr.seconds_left for pr in progress if not pr.finished and pr.seconds_left is not None]
    unknown = sum(1 for pr in progress if not pr.finished and pr.seconds_left is None)
    done = sum(pr.finished for pr in progress)
    rest = sum(known) / 60 / max(slots, 1)
    where = f"on {device}" if device else "at the speeds shown so far"
    lines.append(f"{done} of {len(progress)} runs finished; the rest needs about {rest:.0f} "
                 f"{'GPU minutes' if on_gpu else 'minutes'} {where} with {slots} run(s) at a time"
                 + (f", plus {unknown} run(s) not timed yet" if unknown else ""))
    return "\n".join(lines)
