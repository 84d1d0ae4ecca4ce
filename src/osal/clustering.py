"""FINCH clustering (Sarfraz et al., CVPR 2019) in bounded memory: what EOAL's detector and query use.

The `finch-clust` package computes every point's first neighbour from a dense N x N distance
matrix (or needs pynndescent / faiss above 20,000 points). Here the first neighbours are found
in chunks (cosine, as FINCH's default): handed to the package for a required number of clusters
(the invalid set's few thousand points), and at every level of `hierarchy` (EOAL's round-robin over
the pool's candidates, whose first partition still holds a third of them), so memory is O(N).

Exact first neighbours cost time quadratic in the points clustered. Above `exact_up_to` points (EOAL's
candidates in a pool of millions) they come from an inverted-file index instead (faiss, cosine, a fixed
number of lists probed), as the FINCH package itself switches to approximate neighbours (NN-Descent, or
faiss from 5 million points) above 10,000: time about N x sqrt(N) / lists x probes rather than N^2.
"""

import contextlib
import io
import logging
import warnings
from typing import Optional

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

# finch imports faiss when it is installed, whose loader logs at INFO which CPU build it tried (a run's console
# would show "Could not load library with AVX512 support ..."): only its warnings are worth showing
logging.getLogger("faiss.loader").setLevel(logging.WARNING)
with warnings.catch_warnings():  # it warns on import that the optional pynndescent is missing: not needed here
    warnings.simplefilter("ignore", UserWarning)
    from finch import FINCH

EXACT_UP_TO = 10 ** 9  # FINCH's later levels use exact distances between cluster means, never an ANN


SIMILARITIES = 2 ** 25  # float32 similarities held at a time (128 MB): fewer rows per chunk in a larger set
EXACT_NEIGHBOURS_UP_TO = 100_000  # above this many points, first neighbours come from an inverted-file index
PROBES = 16  # index lists searched per point
SEARCH_ROWS = 65_536  # points searched at a time


def unit_rows(features: np.ndarray) -> np.ndarray:
    unit = np.asarray(features, dtype=np.float32)
    return unit / np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-12)


def first_neighbours(features: np.ndarray, chunk: int = 2048,
                     exact_up_to: Optional[int] = EXACT_NEIGHBOURS_UP_TO) -> np.ndarray:
    """Each row's most cosine-similar other row (FINCH's first neighbour): exact up to `exact_up_to` rows
    (None: always), `chunk` rows at a time (fewer where chunk x N similarities would pass SIMILARITIES);
    approximate above it (`approximate_first_neighbours`)."""
    unit = unit_rows(features)
    if exact_up_to is not None and len(unit) > exact_up_to:
        return approximate_first_neighbours(unit)
    return exact_first_neighbours(unit, np.arange(len(unit)), chunk)


def exact_first_neighbours(unit: np.ndarray, rows: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """The exact first neighbour among all of `unit` of each row in `rows` (unit-length float32 rows)."""
    chunk = max(1, min(int(chunk), SIMILARITIES // max(len(unit), 1)))
    nearest = np.empty(len(rows), dtype=np.int32)
    for start in range(0, len(rows), chunk):
        block = rows[start:start + chunk]
        similarity = unit[block] @ unit.T
        similarity[np.arange(len(block)), block] = -np.inf  # never oneself
        nearest[start:start + chunk] = similarity.argmax(axis=1)
    return nearest


def approximate_first_neighbours(unit: np.ndarray, probes: int = PROBES) -> np.ndarray:
    """First neighbours from a faiss inverted-file index over unit rows (inner product = cosine): about
    4 sqrt(N) lists trained on a seeded sample, `probes` of them searched per point. A point whose probed
    lists hold no other point gets its exact neighbour."""
    try:
        import faiss
    except ImportError:  # a dependency of osal; a hand-made environment may lack it
        raise ImportError(f"clustering {len(unit):,} points with FINCH needs faiss (pip install faiss-cpu) above "
                          f"{EXACT_NEIGHBOURS_UP_TO:,} points") from None
    n, dim = unit.shape
    lists = max(1, min(int(4 * np.sqrt(n)), n // 39))  # faiss wants 39 training points a list
    sample = unit[np.sort(np.random.default_rng(0).choice(n, size=min(n, 64 * lists), replace=False))]
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
    index.train(np.ascontiguousarray(sample))
    for start in range(0, n, SEARCH_ROWS):
        index.add(np.ascontiguousarray(unit[start:start + SEARCH_ROWS]))
    index.nprobe = int(probes)
    nearest = np.empty(n, dtype=np.int64)
    for start in range(0, n, SEARCH_ROWS):
        _, found = index.search(np.ascontiguousarray(unit[start:start + SEARCH_ROWS]), 2)
        own = np.arange(start, start + len(found))
        nearest[start:start + len(found)] = np.where(found[:, 0] == own, found[:, 1], found[:, 0])
    lonely = np.flatnonzero((nearest < 0) | (nearest == np.arange(n)))
    if len(lonely):
        nearest[lonely] = exact_first_neighbours(unit, lonely)
    return nearest.astype(np.int32)


def components(neighbour: np.ndarray) -> np.ndarray:
    """Labels 0..C-1 of the weakly connected components of the graph i -> neighbour[i] (FINCH's get_clust)."""
    n = len(neighbour)
    graph = sparse.csr_matrix((np.ones(n, dtype=np.float32), (np.arange(n), neighbour)), shape=(n, n))
    return csgraph.connected_components(graph, directed=True, connection="weak", return_labels=True)[1]


def means(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The mean of each label's rows (labels 0..C-1), as FINCH's cool_mean: a float32 sparse product."""
    n = len(labels)
    membership = sparse.csr_matrix((np.ones(n, dtype=np.float32), (np.arange(n), labels)),
                                   shape=(n, int(labels.max()) + 1))
    return np.asarray(membership.T @ features) / np.bincount(labels)[:, None]


def hierarchy(features: np.ndarray, exact_up_to: Optional[int] = EXACT_NEIGHBOURS_UP_TO) -> tuple:
    """FINCH's partitions without a required count, in O(N) memory at every level: (labels per partition,
    finest first, as an (N, P) array; clusters per partition).

    The package finds the first neighbours of the cluster means of every level above the first from a dense
    distance matrix; the first partition of a large pool still holds a third of it, so that matrix (180 GB at
    150,000 candidates) is what ran out of memory. Here every level uses `first_neighbours`. As FINCH with
    ensure_early_exit and an initial rank given: no distance threshold, and the hierarchy stops at the level
    that merges fewer than two clusters or leaves one. `exact_up_to`: see `first_neighbours`."""
    data = np.asarray(features, dtype=np.float32, order="C")
    labels = components(first_neighbours(data, exact_up_to=exact_up_to))
    levels, counts = [labels], [int(labels.max()) + 1]
    current = means(data, labels)
    while True:
        merged = components(first_neighbours(current, exact_up_to=exact_up_to))
        labels = merged[labels]
        count = int(merged.max()) + 1
        if count == 1 or counts[-1] - count <= 1:
            break
        levels.append(labels)
        counts.append(count)
        current = means(data, labels)
    return np.column_stack(levels), counts


def partitions(features: np.ndarray, required: Optional[int] = None,
               exact_up_to: Optional[int] = EXACT_NEIGHBOURS_UP_TO) -> tuple:
    """FINCH's hierarchy: (labels per partition, finest first, as an (N, P) array; clusters per partition;
    labels of exactly `required` clusters, or None)."""
    features = np.asarray(features, dtype=np.float32)
    if required is None:
        labels, counts = hierarchy(features, exact_up_to)
        return labels, counts, None
    # FINCH prints (not logs) when it cannot give `required` clusters; the caller says what it got instead
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        labels, counts, required_labels = FINCH(features, req_clust=required, initial_rank=first_neighbours(features),
                                                distance="cosine", ann_threshold=EXACT_UP_TO, verbose=False)
    return np.asarray(labels).reshape(len(features), -1), list(counts), required_labels


def clusters(features: np.ndarray, count: int) -> np.ndarray:
    """Labels of `count` FINCH clusters (fewer when the first partition already has fewer), 0..C-1."""
    features = np.asarray(features, dtype=np.float32)
    if len(features) < 3:  # FINCH needs a neighbour to link to: too few points are one cluster each
        return np.arange(len(features))
    labels, counts, required = partitions(features, required=count)
    chosen = labels[:, 0] if required is None else np.asarray(required)
    return np.unique(chosen, return_inverse=True)[1]


def centres(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The mean feature vector of each cluster, in label order 0..C-1."""
    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels)
    return np.stack([features[labels == c].mean(axis=0) for c in range(int(labels.max()) + 1)])
