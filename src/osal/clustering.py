"""FINCH clustering (Sarfraz et al., CVPR 2019) in bounded memory: what EOAL's detector and query use.

The `finch-clust` package computes every point's first neighbour from a dense N x N distance
matrix (or needs pynndescent / faiss above 20,000 points). Here the first neighbours are found
in chunks (cosine, as FINCH's default): handed to the package for a required number of clusters
(the invalid set's few thousand points), and at every level of `hierarchy` (EOAL's round-robin over
the pool's candidates, whose first partition still holds a third of them), so memory is O(N). Time
stays quadratic in the points clustered: exact first neighbours, as FINCH computes them.
"""

import contextlib
import io
import warnings
from typing import Optional

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

with warnings.catch_warnings():  # it warns on import that the optional pynndescent is missing: not needed here
    warnings.simplefilter("ignore", UserWarning)
    from finch import FINCH

EXACT_UP_TO = 10 ** 9  # FINCH's later levels use exact distances between cluster means, never an ANN


SIMILARITIES = 2 ** 25  # float32 similarities held at a time (128 MB): fewer rows per chunk in a larger set


def first_neighbours(features: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Each row's most cosine-similar other row (FINCH's first neighbour), `chunk` rows at a time (fewer where
    chunk x N similarities would pass SIMILARITIES)."""
    unit = np.asarray(features, dtype=np.float32)
    unit = unit / np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-12)
    chunk = max(1, min(int(chunk), SIMILARITIES // max(len(unit), 1)))
    nearest = np.empty(len(unit), dtype=np.int32)
    for start in range(0, len(unit), chunk):
        similarity = unit[start:start + chunk] @ unit.T
        rows = np.arange(similarity.shape[0])
        similarity[rows, start + rows] = -np.inf  # never oneself
        nearest[start:start + chunk] = similarity.argmax(axis=1)
    return nearest


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


def hierarchy(features: np.ndarray) -> tuple:
    """FINCH's partitions without a required count, in O(N) memory at every level: (labels per partition,
    finest first, as an (N, P) array; clusters per partition).

    The package finds the first neighbours of the cluster means of every level above the first from a dense
    distance matrix; the first partition of a large pool still holds a third of it, so that matrix (180 GB at
    150,000 candidates) is what ran out of memory. Here every level uses `first_neighbours`. As FINCH with
    ensure_early_exit and an initial rank given: no distance threshold, and the hierarchy stops at the level
    that merges fewer than two clusters or leaves one."""
    data = np.asarray(features, dtype=np.float32, order="C")
    labels = components(first_neighbours(data))
    levels, counts = [labels], [int(labels.max()) + 1]
    current = means(data, labels)
    while True:
        merged = components(first_neighbours(current))
        labels = merged[labels]
        count = int(merged.max()) + 1
        if count == 1 or counts[-1] - count <= 1:
            break
        levels.append(labels)
        counts.append(count)
        current = means(data, labels)
    return np.column_stack(levels), counts


def partitions(features: np.ndarray, required: Optional[int] = None) -> tuple:
    """FINCH's hierarchy: (labels per partition, finest first, as an (N, P) array; clusters per partition;
    labels of exactly `required` clusters, or None)."""
    features = np.asarray(features, dtype=np.float32)
    if required is None:
        labels, counts = hierarchy(features)
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
