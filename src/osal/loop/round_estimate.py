"""How long a run's next rounds will take, from the rounds it has done: the loop's deadline and the campaign's
ETA both use it.

A round's time is almost all training. Round r's detector trains on the initial set plus r - 1 queries
(labeled + invalid), its classifier on the labeled set after r queries. A fit costs a fixed amount per
epoch (a fresh epoch's loaders, hooks and optimizer steps that do not scale with the data) plus an amount
per example, so a round's seconds are modelled as

    seconds = a x fit-epochs + b x example-epochs

with a and b fitted (non-negative least squares) to the run's timed rounds. One round cannot separate the
two: then the fixed part is taken as FIT_EPOCH_OVERHEAD examples' worth per fit-epoch (measured on an H200:
36 ms per fit-epoch against 8.6 ms per batch of 128). Without it, a run timed only on round 0's 100
examples predicted round 1's 1,600 as 16 times longer and stopped 3 times too early (the first GPU window).

A fit trains max_epochs epochs unless trainer.max_steps ends it first (FitSchedule): its epochs are then the
steps allowed over the steps an epoch takes, which the estimate counts per fit.
"""

import math
from dataclasses import dataclass
from typing import Optional, Union

import numpy as np
from scipy.optimize import nnls

# a round also tests, scores the pool and saves its records; the estimate leans long rather than short
MARGIN = 1.15
# the fixed cost of one epoch of one fit, in examples' worth, when a single timed round cannot tell it apart
FIT_EPOCH_OVERHEAD = 512.0


@dataclass(frozen=True)
class FitSchedule:
    """How long a fit trains: `epochs` epochs of batches of `batch_size`, at most `max_steps` steps (-1: no cap)."""

    epochs: int
    batch_size: int = 1
    max_steps: int = -1

    def epochs_for(self, examples: float) -> float:
        """The epochs (a fraction where the step cap ends one partway) a fit on `examples` trains."""
        if self.max_steps <= 0 or examples <= 0:
            return float(self.epochs)
        return min(float(self.epochs), self.max_steps / math.ceil(examples / self.batch_size))


def fit_schedule(cfg: object) -> FitSchedule:
    """The FitSchedule of a composed run config."""
    return FitSchedule(int(cfg.trainer.max_epochs), int(cfg.data.batch_size), int(cfg.trainer.get("max_steps", -1)))


Schedule = Union[int, FitSchedule]  # a plain number of epochs, or the whole schedule


def _schedule(epochs: Schedule) -> FitSchedule:
    return epochs if isinstance(epochs, FitSchedule) else FitSchedule(int(epochs))


def _work(schedule: FitSchedule, fits: list) -> "RoundWork":
    """The work of one round's fits, each on its number of examples."""
    trained = [schedule.epochs_for(n) for n in fits]
    return RoundWork(float(sum(trained)), float(sum(e * n for e, n in zip(trained, fits))))


@dataclass(frozen=True)
class RoundWork:
    fit_epochs: float  # epochs x fits (classifier, and the detector when the strategy has one)
    example_epochs: float  # epochs x examples over those fits ("images" trained)


def round_work(row: dict, previous: Optional[dict], epochs: Schedule, with_detector: bool) -> RoundWork:
    """What round `row` trained, from the metrics rows."""
    fits = [float(row["n_labeled"])]
    if with_detector and previous is not None:
        fits.append(float(previous["n_labeled"] + previous["n_invalid"]))
    return _work(_schedule(epochs), fits)


def example_epochs(row: dict, previous: Optional[dict], epochs: Schedule, with_detector: bool) -> float:
    """Example-epochs ("images") that round `row` trained."""
    return round_work(row, previous, epochs, with_detector).example_epochs


def timed_rounds(rows: list, epochs: Schedule, with_detector: bool) -> tuple[list, list]:
    """(work, seconds) of the rounds in `rows` (metrics.csv rows) that carry a time."""
    work, seconds = [], []
    for i, row in enumerate(rows):
        if row.get("fit_seconds") is None:
            continue
        work.append(round_work(row, rows[i - 1] if i else None, epochs, with_detector))
        seconds.append(float(row["fit_seconds"]) + float(row.get("query_seconds") or 0.0))
    return work, seconds


def seconds_per_example_epoch(rows: list, epochs: Schedule, with_detector: bool) -> Optional[float]:
    """Training seconds per example-epoch over the rounds in `rows`, fixed costs included (the images/s a run
    shows), or None without any timed round."""
    work, seconds = timed_rounds(rows, epochs, with_detector)
    images = sum(w.example_epochs for w in work)
    return sum(seconds) / images if images > 0 and sum(seconds) > 0 else None


def cost_model(rows: list, epochs: Schedule, with_detector: bool) -> Optional[tuple[float, float]]:
    """(seconds per fit-epoch, seconds per example-epoch) fitted to the timed rounds, or None without any."""
    work, seconds = timed_rounds(rows, epochs, with_detector)
    if not work or sum(seconds) <= 0:
        return None
    if len(work) >= 2:
        design = np.array([[w.fit_epochs, w.example_epochs] for w in work])
        (a, b), _ = nnls(design, np.array(seconds))
        if b > 0:  # a fit that puts everything on the fixed part would never grow with the data: not trusted
            return float(a), float(b)
    units = sum(w.example_epochs + FIT_EPOCH_OVERHEAD * w.fit_epochs for w in work)
    b = sum(seconds) / units
    return FIT_EPOCH_OVERHEAD * b, b


def predicted_rounds(rows: list, rounds: int, query_size: int, epochs: Schedule,
                     with_detector: bool) -> list[RoundWork]:
    """Work of each round still to run (rows+1 .. rounds), assuming every query returns a full batch of which
    the same share is known as so far (an overestimate once the pool runs low)."""
    first, last = rows[0], rows[-1]
    queried = last["n_labeled"] + last["n_invalid"] - first["n_labeled"]
    known_share = (last["n_labeled"] - first["n_labeled"]) / queried if queried else 1.0  # no query yet: all known
    labeled, invalid = float(last["n_labeled"]), float(last["n_invalid"])
    work = []
    for _ in range(int(last["round"]) + 1, int(rounds) + 1):
        detector = [labeled + invalid] if with_detector else []
        labeled += query_size * known_share
        invalid += query_size * (1.0 - known_share)
        work.append(_work(_schedule(epochs), [labeled, *detector]))
    return work


def predicted_seconds(rows: list, rounds: int, query_size: int, epochs: Schedule, with_detector: bool) -> list[float]:
    """Seconds of each round still to run (without MARGIN); empty when nothing is timed or left."""
    model = cost_model(rows, epochs, with_detector) if rows else None
    if model is None:
        return []
    a, b = model
    return [a * w.fit_epochs + b * w.example_epochs
            for w in predicted_rounds(rows, rounds, query_size, epochs, with_detector)]


def next_round_seconds(rows: list, rounds: int, query_size: int, epochs: Schedule,
                       with_detector: bool) -> Optional[float]:
    """Seconds the next round will probably take (with MARGIN), or None when no round has been timed."""
    left = predicted_seconds(rows, rounds, query_size, epochs, with_detector)
    return left[0] * MARGIN if left else None
