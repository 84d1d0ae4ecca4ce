"""FINCH clustering (Sarfraz et al., CVPR 2019) in bounded memory: what EOAL's detector and query use.

The `finch-clust` package computes every point's first neighbour from a dense N x N distance
matrix (or needs pynndescent / faiss above 20,000 points). Here the first neighbours are found
in chunks (cosine, as FINCH's default): handed to the package for a required number of clusters
(the invalid set's few thousand points), and at every level of `hierarchy` (EOAL's round-robin over
the pool's candidates, whose first partition still holds a third of them), so memory is O(N).

Exact first neighbours cost time quadratic in the points clustered. Above `exact_up_to` points (EOAL's
candidates in a pool of millions) they come from a tree of spherical k-means cells instead (cosine, a fixed
number of cells probed per level, every similarity a matrix product), as the FINCH package itself switches to
approximate neighbours (NN-Descent, or faiss from 5 million points) above 10,000: time linear in N where the
leaf scans dominate (up to hundreds of millions of points) rather than N^2.
"""

import contextlib
import io
import logging
import warnings
from typing import Optional, Sequence

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

# finch imports faiss when it is installed, whose loader logs at INFO which CPU build it tried (a run's console
# would show "Could not load library with AVX512 support ..."): only its warnings are worth showing
logging.getLogger("faiss.loader").setLevel(logging.WARNING)
with warnings.catch_warnings():  # it warns on import that the optional pynndescent is missing: not needed here
    warnings.simplefilter("ignore", UserWarning)
    from finch import FINCH
    from finch.finch import req_numclust

# the finch-clust release whose hierarchy is reproduced: 0.1.9 is what EOAL's official code pins (hierarchy())
FINCH_RELEASES = ("0.1.9", "0.2.3")
DEFAULT_FINCH = "0.1.9"
THRESHOLD_UP_TO = 70_000  # 0.1.9 computes its distance threshold only where its first neighbours are exact
EXACT_UP_TO = 10 ** 9  # FINCH's later levels use exact distances between cluster means, never an ANN


SIMILARITIES = 2 ** 25  # float32 similarities held at a time (128 MB): fewer rows per chunk in a larger set
EXACT_NEIGHBOURS_UP_TO = 100_000  # above this many points, first neighbours come from a tree of k-means cells
LEAF = 256  # points a leaf cell of that tree holds, about
MAX_CELLS = 512  # cells one level splits into before the tree takes two levels of sqrt(N / LEAF) cells
PROBES = (6, 3)  # cells searched per point: top level, then each level below


def unit_rows(features: np.ndarray, rows: int = 65_536) -> np.ndarray:
    """The rows scaled to unit length, as float32, `rows` at a time (a whole-array norm would hold two more
    copies of 10 million candidates' features)."""
    unit = np.empty(np.shape(features), dtype=np.float32)
    for start in range(0, len(unit), rows):
        block = np.asarray(features[start:start + rows], dtype=np.float32)
        unit[start:start + rows] = block / np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-12)
    return unit


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


def approximate_first_neighbours(unit: np.ndarray, probes: Sequence[int] = PROBES, leaf: int = LEAF,
                                 seed: int = 0) -> np.ndarray:
    """First neighbours from a tree of spherical k-means cells over unit rows (inner product = cosine).

    The points are split into cells of about `leaf` points (through one level of about sqrt(N / leaf) cells
    first when N / leaf passes MAX_CELLS); each point looks for its neighbour in the `probes[0]` top-level cells
    whose centres are most similar to it, and within each of those in the `probes[1]` most similar leaves
    (the last value for any deeper level). Every similarity is a matrix product of a leaf's points with the
    points probing it, so the work is about N x (sqrt(N / leaf) + probes[0] x (sqrt(N / leaf) + probes[1] x
    leaf)) similarities: linear in N where the leaf scans dominate, as they do up to hundreds of millions of
    points. The centres come from seeded samples, so a second call gives the same answer. A point whose probed
    leaves hold no other point gets its exact neighbour."""
    n = len(unit)
    probes = tuple(int(p) for p in np.atleast_1d(probes))
    if not probes or min(probes) < 1:
        raise ValueError(f"probes={probes} must name at least one cell per level, each >= 1")
    best_similarity = np.full(n, -np.inf, dtype=np.float32)
    best = np.full(n, -1, dtype=np.int64)
    everyone = np.arange(n)
    _nearest_in_cells(unit, everyone, everyone, best_similarity, best, np.random.default_rng(seed), probes,
                      int(leaf), depth=0)
    lonely = np.flatnonzero(best < 0)
    if len(lonely):
        best[lonely] = exact_first_neighbours(unit, lonely)
    return best.astype(np.int32)


def _nearest_in_cells(unit: np.ndarray, queries: np.ndarray, base: np.ndarray, best_similarity: np.ndarray,
                      best: np.ndarray, rng: np.random.Generator, probes: tuple, leaf: int, depth: int) -> None:
    """Improve `best` / `best_similarity` of each row in `queries` with its most similar other row among
    `base` (ascending global indices), splitting `base` into cells while it holds more than two leaves."""
    if len(base) <= 2 * leaf:
        return _nearest_among(unit, queries, base, best_similarity, best)
    cells = -(-len(base) // leaf)
    if cells > MAX_CELLS:  # two levels of sqrt(cells) rather than one of N / leaf centres every point is compared with
        cells = int(np.ceil(np.sqrt(cells)))
    centres = spherical_kmeans(unit, base, cells, rng)
    base_cell = most_similar_centres(unit, base, centres, 1)[:, 0]
    if np.bincount(base_cell).max() == len(base):  # no split (identical points): compare them all
        return _nearest_among(unit, queries, base, best_similarity, best)
    probed = most_similar_centres(unit, queries, centres, min(probes[min(depth, len(probes) - 1)], len(centres)))
    base_order = np.argsort(base_cell, kind="stable")  # stable: each cell's base stays ascending
    base_bounds = np.searchsorted(base_cell[base_order], np.arange(len(centres) + 1))
    pair_order = np.argsort(probed.ravel(), kind="stable")
    pair_bounds = np.searchsorted(probed.ravel()[pair_order], np.arange(len(centres) + 1))
    pair_query = queries[pair_order // probed.shape[1]]
    del probed, pair_order
    for cell in range(len(centres)):
        cell_base = base[base_order[base_bounds[cell]:base_bounds[cell + 1]]]
        cell_queries = pair_query[pair_bounds[cell]:pair_bounds[cell + 1]]
        if len(cell_base) and len(cell_queries):
            _nearest_in_cells(unit, cell_queries, cell_base, best_similarity, best, rng, probes, leaf, depth + 1)


def _nearest_among(unit: np.ndarray, queries: np.ndarray, base: np.ndarray, best_similarity: np.ndarray,
                   best: np.ndarray) -> None:
    """Exact step of `_nearest_in_cells`: `queries` (distinct) against every row of `base` (ascending), never
    oneself, at most SIMILARITIES similarities at a time."""
    per = max(1, SIMILARITIES // max(len(base), 1))
    base_rows = unit[base]
    for start in range(0, len(queries), per):
        block = queries[start:start + per]
        similarity = unit[block] @ base_rows.T
        position = np.searchsorted(base, block)
        inside = np.flatnonzero(position < len(base))
        inside = inside[base[position[inside]] == block[inside]]
        similarity[inside, position[inside]] = -np.inf  # never oneself
        column = similarity.argmax(axis=1)
        found = similarity[np.arange(len(block)), column]
        better = found > best_similarity[block]
        best_similarity[block[better]] = found[better]
        best[block[better]] = base[column[better]]


def spherical_kmeans(unit: np.ndarray, rows: np.ndarray, count: int, rng: np.random.Generator,
                     iterations: int = 8, per_centre: int = 32) -> np.ndarray:
    """About `count` unit centres of `unit[rows]` (unit float32) by Lloyd's iterations with cosine similarity,
    on a seeded sample of `per_centre` rows a centre; a centre left without rows is dropped."""
    sample = unit[rows[np.sort(rng.choice(len(rows), size=min(len(rows), count * per_centre), replace=False))]]
    centres = sample[np.sort(rng.choice(len(sample), size=min(count, len(sample)), replace=False))]
    for _ in range(iterations):
        assigned = (sample @ centres.T).argmax(axis=1)
        order = np.argsort(assigned, kind="stable")
        sizes = np.bincount(assigned, minlength=len(centres))
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])[sizes > 0]
        centres = unit_rows(np.add.reduceat(sample[order], starts, axis=0))
    return np.ascontiguousarray(centres)


def most_similar_centres(unit: np.ndarray, rows: np.ndarray, centres: np.ndarray, count: int) -> np.ndarray:
    """The `count` centres most similar to each of `unit[rows]` (in no order), SIMILARITIES at a time."""
    per = max(1, SIMILARITIES // max(len(centres), 1))
    chosen = np.empty((len(rows), count), dtype=np.int32)
    for start in range(0, len(rows), per):
        similarity = unit[rows[start:start + per]] @ centres.T
        if count == 1:
            chosen[start:start + per, 0] = similarity.argmax(axis=1)
        else:
            chosen[start:start + per] = np.argpartition(-similarity, count - 1, axis=1)[:, :count]
    return chosen


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


def hierarchy(features: np.ndarray, exact_up_to: Optional[int] = EXACT_NEIGHBOURS_UP_TO,
              finch: str = DEFAULT_FINCH) -> tuple:
    """FINCH's partitions without a required count, in O(N) memory at every level: (labels per partition,
    finest first, as an (N, P) array; clusters per partition).

    The package finds the first neighbours of the cluster means of every level above the first from a dense
    distance matrix; the first partition of a large pool still holds a third of it, so that matrix (180 GB at
    150,000 candidates) is what ran out of memory. Here every level uses `first_neighbours`. `exact_up_to`:
    see `first_neighbours`. `finch` names the package release whose hierarchy is reproduced (FINCH_RELEASES):

    * "0.1.9" (what EOAL's official code pins, so what its published numbers were made with): where the first
      neighbours are exact (up to THRESHOLD_UP_TO points), the largest linked distance x weight of the first
      partition becomes a threshold that unlinks farther pairs at every later level (`linked_components`), so
      the hierarchy stops earlier; a level that merges exactly one cluster is kept, and is the last;
    * "0.2.3": that threshold writes explicit zeros into a sparse matrix whose entries scipy still counts as
      links, so it does nothing; the hierarchy stops at the level that merges fewer than two clusters (not
      kept) or leaves one, as FINCH with an initial rank given."""
    finch = checked_finch(finch)
    data = np.asarray(features, dtype=np.float32, order="C")
    neighbour = first_neighbours(data, exact_up_to=exact_up_to)
    labels = components(neighbour)
    threshold = None
    if finch == "0.1.9" and len(data) <= THRESHOLD_UP_TO:
        rows, columns, weights = linked_pairs(neighbour)
        scores = cosine_distances(unit_rows(data), rows, columns) * weights
        threshold = np.float32(scores.max()) if len(scores) else np.float32(0)
    levels, counts = [labels], [int(labels.max()) + 1]
    current = means(data, labels)
    while True:
        neighbour = first_neighbours(current, exact_up_to=exact_up_to)
        merged = components(neighbour) if threshold is None else linked_components(current, neighbour, threshold)
        labels = merged[labels]
        count = int(merged.max()) + 1
        fewer = counts[-1] - count
        if count == 1 or fewer < 1 or (finch == "0.2.3" and fewer == 1):
            break
        levels.append(labels)
        counts.append(count)
        if fewer == 1:  # 0.1.9 keeps a level that merged one cluster, and stops there
            break
        current = means(data, labels)
    return np.column_stack(levels), counts


def checked_finch(finch: str) -> str:
    """`finch` as one of FINCH_RELEASES, or one sentence naming the choices."""
    finch = str(finch)
    if finch not in FINCH_RELEASES:
        raise ValueError(f"finch={finch!r} names no FINCH behaviour osal reproduces: use one of "
                         f"{', '.join(FINCH_RELEASES)}")
    return finch


def linked_pairs(neighbour: np.ndarray) -> tuple:
    """FINCH's links (rows, columns, weights) between distinct points: the off-diagonal entries of (A + I)(A + I)^T,
    A the first-neighbour graph; a weight counts what two points share among {itself, its first neighbour}."""
    n = len(neighbour)
    graph = sparse.csr_matrix((np.ones(n, dtype=np.float32), (np.arange(n), neighbour)), shape=(n, n))
    graph = graph + sparse.eye(n, dtype=np.float32, format="csr")
    linked = (graph @ graph.T).tocoo()
    off = linked.row != linked.col
    return linked.row[off], linked.col[off], linked.data[off]


def cosine_distances(unit: np.ndarray, rows: np.ndarray, columns: np.ndarray, chunk: int = 1 << 20) -> np.ndarray:
    """1 - cosine similarity of each pair of unit rows, clipped to [0, 2] as sklearn's, in the rows' precision."""
    distance = np.empty(len(rows), dtype=unit.dtype)
    for start in range(0, len(rows), chunk):
        r, c = rows[start:start + chunk], columns[start:start + chunk]
        distance[start:start + chunk] = 1.0 - np.einsum("ij,ij->i", unit[r], unit[c])
    return np.clip(distance, 0.0, 2.0)


def linked_components(centres_: np.ndarray, neighbour: np.ndarray, threshold: np.floating) -> np.ndarray:
    """finch-clust 0.1.9's get_clust with its threshold: the links whose cosine distance x weight exceeds it are
    removed before the weakly connected components are taken (in float64, as that release computes the distances
    of a level's cluster means)."""
    n = len(neighbour)
    rows, columns, weights = linked_pairs(neighbour)
    precise = np.asarray(centres_, dtype=np.float64)
    unit = precise / np.maximum(np.linalg.norm(precise, axis=1, keepdims=True), 1e-300)
    keep = cosine_distances(unit, rows, columns) * weights <= threshold
    graph = sparse.csr_matrix((np.ones(int(keep.sum()), dtype=np.float32), (rows[keep], columns[keep])),
                              shape=(n, n))
    return csgraph.connected_components(graph, directed=True, connection="weak", return_labels=True)[1]


def partitions(features: np.ndarray, required: Optional[int] = None,
               exact_up_to: Optional[int] = EXACT_NEIGHBOURS_UP_TO, finch: str = DEFAULT_FINCH) -> tuple:
    """FINCH's hierarchy: (labels per partition, finest first, as an (N, P) array; clusters per partition;
    labels of exactly `required` clusters, or None when the first partition has fewer)."""
    finch = checked_finch(finch)
    features = np.asarray(features, dtype=np.float32)
    if required is None or finch == "0.1.9":
        labels, counts = hierarchy(features, exact_up_to, finch)
        if required is None:
            return labels, counts, None
        if required in counts:
            return labels, counts, labels[:, counts.index(required)]
        if required > counts[0]:  # 0.1.9 raises IndexError here; 0.2.3 returns the first partition
            return labels, counts, None
        coarsest = max(i for i, count in enumerate(counts) if count >= required)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            # one merge of the two closest linked means at a time, as both releases do (dense: few clusters)
            merged = req_numclust(labels[:, coarsest], features, required, "cosine", EXACT_UP_TO, False)
        return labels, counts, np.asarray(merged)
    # FINCH prints (not logs) when it cannot give `required` clusters; the caller says what it got instead
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        labels, counts, required_labels = FINCH(features, req_clust=required, initial_rank=first_neighbours(features),
                                                distance="cosine", ann_threshold=EXACT_UP_TO, verbose=False)
    return np.asarray(labels).reshape(len(features), -1), list(counts), required_labels


def clusters(features: np.ndarray, count: int, finch: str = DEFAULT_FINCH) -> np.ndarray:
    """Labels of `count` FINCH clusters (fewer when the first partition already has fewer), 0..C-1."""
    features = np.asarray(features, dtype=np.float32)
    if len(features) < 3:  # FINCH needs a neighbour to link to: too few points are one cluster each
        return np.arange(len(features))
    labels, counts, required = partitions(features, required=count, finch=finch)
    chosen = labels[:, 0] if required is None else np.asarray(required)
    return np.unique(chosen, return_inverse=True)[1]


def centres(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The mean feature vector of each cluster, in label order 0..C-1."""
    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels)
    return np.stack([features[labels == c].mean(axis=0) for c in range(int(labels.max()) + 1)])
