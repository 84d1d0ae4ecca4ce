"""An annotation project's state.npz, read back checked (see osal.annotate.project_files for why).

Besides what osal.stored.read_npz refuses (an LFS pointer, a truncated file, object arrays, bad meta JSON, a
missing array), the arrays must be this project's: one entry per image project.json lists, answers within its
classes, and meta's batches the records osal writes, numbered 1, 2, ... (a batch number becomes a folder
name), of images in the pool.
"""

from typing import Any, Optional

import numpy as np

from osal.annotate.project_files import is_number
from osal.data.active_pool import NOT_ASKED
from osal.data.oracle import UNKNOWN
from osal.data.pool import INVALID, LABELED, NEVER, UNLABELED
from osal.stored import DamagedFileError, read_npz

ARRAYS = ("state", "query_round", "answers", "known_probability")
FIX = "restore state.npz from a good copy of this project (the one whose project.json lists the same images)"
BATCH_KEYS = ("number", "indices", "suggestions", "known_probability", "answered", "queried_known")


def read_state(path: str, size: int, num_known: int) -> tuple[dict, dict]:
    """(arrays, meta) of state.npz, for a pool of `size` images and `num_known` classes."""
    arrays = read_npz(path, (*ARRAYS, "meta"), FIX)
    for key in ARRAYS:
        array = arrays[key]
        if array.ndim != 1 or len(array) != size:
            raise DamagedFileError(f"{path} holds {key} for {array.shape} images but project.json lists {size}, so it "
                                   f"is another project's state or damaged; {FIX}")
        if array.dtype.kind not in ("f" if key == "known_probability" else "iu"):
            raise DamagedFileError(f"{path}'s {key} holds {array.dtype} values, which osal never writes; {FIX}")
    problem = answers_problem(arrays["state"], arrays["answers"], num_known)
    if problem:
        raise DamagedFileError(f"{path}'s answers do not hold together ({problem}); {FIX}")
    meta = arrays.pop("meta")
    problem = meta_problem(meta, arrays, size)
    if problem:
        raise DamagedFileError(f"{path}'s meta is not what osal writes ({problem}); {FIX}")
    return arrays, meta


def answers_problem(state: np.ndarray, answers: np.ndarray, num_known: int) -> Optional[str]:
    """Each answer as its image stands: a class for a labeled one, unknown for an invalid one, none for the rest
    (the pool's own check, on load, covers the state against the query rounds)."""
    expected = {LABELED: f"a class index from 0 to {num_known - 1}", INVALID: "unknown", UNLABELED: "not asked"}
    for standing, what in expected.items():
        given = answers[state == standing]
        wrong = (given < 0) | (given >= num_known) if standing == LABELED else given != (
            UNKNOWN if standing == INVALID else NOT_ASKED)
        if wrong.any():
            return f"answer {int(given[wrong][0])} where the image's state says {what}"
    return None


def meta_problem(meta: dict, arrays: dict, size: int) -> Optional[str]:
    for key in ("batches", "rng"):
        if key not in meta:
            return f"it lacks {key!r}"
    batches = meta["batches"]
    if not isinstance(batches, list):
        return "its batches are not a list"
    for number, batch in enumerate(batches, start=1):
        problem = batch_problem(number, batch, size)
        if problem:
            return problem
        if not batch["answered"] and number != len(batches):
            return f"batch {number} is not answered but batch {number + 1} came after it"
        standing = arrays["query_round"][batch["indices"]]
        if (standing != (number if batch["answered"] else NEVER)).any():
            return (f"batch {number}'s images are {'not ' if batch['answered'] else ''}marked as answered in the "
                    "pool's state")
    if meta["rng"] is not None:
        try:
            np.random.PCG64().state = meta["rng"]  # the generator Project.query_rng makes
        except (ValueError, TypeError, KeyError):
            return "its query generator state, rng, is not one numpy accepts"
    if not isinstance(meta.get("strategy", {}), dict):
        return "its strategy state is not a JSON object"
    return None


def batch_problem(number: int, batch: Any, size: int) -> Optional[str]:
    """Why batch `number`'s record is not one osal wrote, or None."""
    if not isinstance(batch, dict):
        return f"batch {number} is not a JSON object"
    missing = [key for key in BATCH_KEYS if key not in batch]
    if missing:
        return f"batch {number} lacks {missing[0]!r}"
    if type(batch["number"]) is not int or batch["number"] != number:
        return f"the number of batch {number} is {batch['number']!r}"
    indices = batch["indices"]
    if (not isinstance(indices, list) or not indices or not all(type(i) is int and 0 <= i < size for i in indices)
            or len(set(indices)) != len(indices)):
        return f"batch {number}'s indices are not distinct image numbers from 0 to {size - 1}"
    suggestions, probabilities = batch["suggestions"], batch["known_probability"]
    if not isinstance(suggestions, list) or len(suggestions) != len(indices) or not all(
            isinstance(s, str) for s in suggestions):
        return f"batch {number}'s suggestions are not one class name per image"
    if not isinstance(probabilities, list) or len(probabilities) != len(indices) or not all(
            is_number(p) for p in probabilities):
        return f"batch {number}'s known_probability is not one number per image"
    answered, known = batch["answered"], batch["queried_known"]
    if type(answered) is not bool or (known is not None if not answered else
                                      type(known) is not int or not 0 <= known <= len(indices)):
        return f"batch {number}'s answered / queried_known ({answered!r}, {known!r}) do not go together"
    return None
