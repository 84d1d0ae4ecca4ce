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

STATE_FILE = "state.npz"


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
    if not os.path.exists(path):
        return None
    with np.load(path) as data:
        meta = json.loads(str(data["meta"]))
        arrays = {k: data[k] for k in data.files if k != "meta"}
    return RunState(last_round=meta["round"], pool=arrays, rng_state=meta["rng"],
                    queries={int(k): v for k, v in meta["queries"].items()}, config=meta["config"],
                    strategy_state=meta.get("strategy", {}))
