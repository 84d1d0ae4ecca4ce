"""How long a run's next rounds will take, from the rounds it has done: the loop's deadline and the campaign's
ETA both use it.

A round's time is almost all training, and a fit's time grows with the examples it trains on:
round r's detector trains on the initial set plus r - 1 queries (labeled + invalid), its classifier
on the labeled set after r queries. So the time of the rounds done, divided by the example-epochs
they trained, gives a rate, and the next round's example-epochs divided by that rate its time.
"""

from typing import Optional

# a round also tests, scores the pool and saves its records; the estimate leans long rather than short
MARGIN = 1.15


def example_epochs(row: dict, previous: Optional[dict], epochs: int, with_detector: bool) -> float:
    """What round `row` trained: epochs x (classifier examples + detector examples), from the metrics rows."""
    classifier = row["n_labeled"]
    detector = previous["n_labeled"] + previous["n_invalid"] if (with_detector and previous is not None) else 0
    return float(epochs) * (classifier + detector)


def seconds_per_example_epoch(rows: list, epochs: int, with_detector: bool) -> Optional[float]:
    """Training seconds per example-epoch over the rounds in `rows` (metrics.csv rows), or None without any."""
    work = seconds = 0.0
    for i, row in enumerate(rows):
        if row.get("fit_seconds") is None:
            continue
        work += example_epochs(row, rows[i - 1] if i else None, epochs, with_detector)
        seconds += float(row["fit_seconds"]) + float(row.get("query_seconds") or 0.0)
    return seconds / work if work > 0 and seconds > 0 else None


def predicted_rounds(rows: list, rounds: int, query_size: int, epochs: int, with_detector: bool) -> list[float]:
    """Example-epochs of each round still to run (rows+1 .. rounds), assuming every query returns a full
    batch of which the same share is known as so far (an overestimate once the pool runs low)."""
    first, last = rows[0], rows[-1]
    queried = last["n_labeled"] + last["n_invalid"] - first["n_labeled"]
    known_share = (last["n_labeled"] - first["n_labeled"]) / queried if queried else 1.0  # no query yet: all known
    labeled, invalid = float(last["n_labeled"]), float(last["n_invalid"])
    work = []
    for _ in range(int(last["round"]) + 1, int(rounds) + 1):
        detector = (labeled + invalid) if with_detector else 0.0
        labeled += query_size * known_share
        invalid += query_size * (1.0 - known_share)
        work.append(float(epochs) * (labeled + detector))
    return work


def next_round_seconds(rows: list, rounds: int, query_size: int, epochs: int,
                       with_detector: bool) -> Optional[float]:
    """Seconds the next round will probably take (with MARGIN), or None when no round has been timed."""
    rate = seconds_per_example_epoch(rows, epochs, with_detector)
    work = predicted_rounds(rows, rounds, query_size, epochs, with_detector) if rows else []
    if rate is None or not work:
        return None
    return rate * work[0] * MARGIN
