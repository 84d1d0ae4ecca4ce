"""What a run needs to continue after a crash: written atomically after every completed round.

`state.npz` holds the pool state and the oracle's answers (arrays) and, as one JSON
string, the last completed round, the query generator's state, the query records of
rounds not yet written, and the resolved config the run was started with.
"""

import json
import os

import numpy as np

from osal.atomic import atomic_write

STATE_FILE = "state.npz"


def save_state(output_dir, round_index: int, datamodule, query_rng: np.random.Generator, queries: dict,
               config: dict) -> None:
    meta = {"round": int(round_index), "rng": query_rng.bit_generator.state,
            "queries": {str(k): v for k, v in queries.items()}, "config": config}
    atomic_write(os.path.join(output_dir, STATE_FILE),
                 lambda f: np.savez_compressed(f, **datamodule.state_dict(), meta=np.array(json.dumps(meta))))


def load_state(output_dir):
    """(last completed round, datamodule state, rng state, queries, config) or None when there is none."""
    path = os.path.join(output_dir, STATE_FILE)
    if not os.path.exists(path):
        return None
    with np.load(path) as data:
        meta = json.loads(str(data["meta"]))
        arrays = {k: data[k] for k in data.files if k != "meta"}
    queries = {int(k): v for k, v in meta["queries"].items()}
    return meta["round"], arrays, meta["rng"], queries, meta["config"]


def config_differences(saved: dict, current: dict, prefix: str = "") -> list:
    """Dotted keys whose values differ between two nested config dicts."""
    keys = set(saved) | set(current)
    diffs = []
    for key in sorted(keys, key=str):
        a, b = saved.get(key), current.get(key)
        name = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += config_differences(a, b, name + ".")
        elif a != b:
            diffs.append(name)
    return diffs


# knobs that change how a run is watched, fed or paced, not what it computes: they may differ on resume
RESUME_NEUTRAL = ("fresh", "logger", "data_dir", "trainer.enable_progress_bar", "data.num_workers",
                  "data.pin_memory", "data.inference_batch_size", "al.rounds", "dataset.source.root",
                  "dataset.source.download", "cache_dir", "dataset.source.cache_dir", "deadline")


def differences_that_matter(saved: dict, current: dict) -> list:
    """The dotted keys in which two resolved configs differ, RESUME_NEUTRAL knobs left out."""
    return [d for d in config_differences(saved, current)
            if not any(d == k or d.startswith(k + ".") for k in RESUME_NEUTRAL)]
