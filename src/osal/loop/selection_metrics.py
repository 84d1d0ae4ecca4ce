"""Selection quality of the queries: precision (Eq. 2) and recall (Eq. 1, and the published code's variant)."""

from typing import Optional


def precision(queried: int, queried_known: int) -> Optional[float]:
    """Eq. 2: the known share of one query; None for a round without a query."""
    return queried_known / queried if queried else None


def recall(n_labeled: int, n_initial: int, n_known_initial_pool: int) -> Optional[float]:
    """Eq. 1: known examples queried so far / known examples in the pool before the first query."""
    if not n_known_initial_pool:
        return None
    return (n_labeled - n_initial) / n_known_initial_pool


def recall_incl_initial(n_labeled: int, n_known_total: int) -> Optional[float]:
    """The authors' code: (initial labeled + queried known) / all known training examples."""
    return n_labeled / n_known_total if n_known_total else None
