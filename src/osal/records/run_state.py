"""What a run needs to continue after a crash: written atomically after every completed round.

`state.npz` holds the pool's arrays (pool state and the oracle's answers) and, as one JSON
string, the last completed round, the query generator's state, the query records of rounds
not yet written, and the resolved config the run was started with.
"""

import json
import os
from dataclasses import dataclass, field
from typing import Optional, Union

import numpy as np

from osal.atomic import atomic_write
from osal.stored import DamagedFileError, read_npz

STATE_FILE = "state.npz"
# what to do about a state.npz that does not read back: the run's other records stand without it
STATE_FIX = "restore it from where the run directory came, or move it away (the run then starts again)"
POOL_ARRAYS = ("state", "query_round", "answers")  # the pool's state_dict()
# the meta JSON's keys and the types they hold
META = {"round": int, "rng": dict, "queries": dict, "config": dict}
# what a query record not yet written as a row holds (osal.loop.query_callback)
QUERY_KEYS = ("queried", "queried_known", "inference_seconds", "selection_seconds")


@dataclass
class RunState:
    """A run as it stood after its last completed round."""

    last_round: int
    pool: dict  # the pool's state_dict(): name -> numpy array
    rng_state: dict  # the query generator's bit_generator.state
    queries: dict = field(default_factory=dict)  # query number -> its record, for rows not yet written
    config: dict = field(default_factory=dict)  # the resolved config the run was started with
    strategy_state: dict = field(default_factory=dict)  # what the strategy learned from earlier answers

    def save(self, output_dir: Union[str, os.PathLike]) -> None:
        meta = {"round": int(self.last_round), "rng": self.rng_state,
                "queries": {str(k): v for k, v in self.queries.items()}, "config": self.config,
                "strategy": self.strategy_state}
        atomic_write(os.path.join(output_dir, STATE_FILE),
                     lambda f: np.savez_compressed(f, **self.pool, meta=np.array(json.dumps(meta))))


def load_state(output_dir: Union[str, os.PathLike]) -> Optional[RunState]:
    """The run state kept in `output_dir`, or None when no round of a run there was completed."""
    path = os.path.join(output_dir, STATE_FILE)
    if not os.path.lexists(path):
        return None
    return read_state(path)


def read_state(path: Union[str, os.PathLike]) -> RunState:
    """state.npz as osal wrote it; DamagedFileError naming the file and what to do when it does not read back
    (osal.stored.read_npz) or its meta lacks a key or holds another type than osal writes."""
    if os.path.isdir(path):
        raise DamagedFileError(f"{path} is a folder, not the state file osal writes; {STATE_FIX}")
    arrays = read_npz(path, [*POOL_ARRAYS, "meta"], STATE_FIX)
    meta = arrays.pop("meta")
    for key, kind in META.items():
        if key not in meta:
            raise DamagedFileError(f"{path}'s meta lacks {key}, so it is not a complete osal record; {STATE_FIX}")
        if not isinstance(meta[key], kind) or isinstance(meta[key], bool):
            raise DamagedFileError(f"{path}'s meta holds {meta[key]!r:.40} as {key}, where osal writes a "
                                   f"{kind.__name__}; {STATE_FIX}")
    try:
        queries = {int(k): v for k, v in meta["queries"].items()}
    except ValueError:
        raise DamagedFileError(f"{path}'s meta numbers its queries with other than whole numbers; "
                               f"{STATE_FIX}") from None
    for number, query in queries.items():
        if not (isinstance(query, dict) and all(isinstance(query.get(k), (int, float)) for k in QUERY_KEYS)):
            raise DamagedFileError(f"{path}'s meta holds a record of query {number} without the numbers osal "
                                   f"writes ({', '.join(QUERY_KEYS)}); {STATE_FIX}")
    strategy = meta.get("strategy", {})
    if not isinstance(strategy, dict):
        raise DamagedFileError(f"{path}'s meta holds {strategy!r:.40} as strategy, where osal writes a dict; "
                               f"{STATE_FIX}")
    return RunState(last_round=meta["round"], pool=arrays, rng_state=meta["rng"], queries=queries,
                    config=meta["config"], strategy_state=strategy)
