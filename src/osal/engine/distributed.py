"""What the engine does differently when several processes train one run (DDP): split the pool between them,
gather what they scored, decide once and tell everyone.

Every function here is a no-op (or the identity) in a single process, so the engine calls them always.
Collectives on Python objects go through a CPU (gloo) group of their own: a pool's features pickled onto a GPU
for NCCL would take GPU memory the fits need.
"""

import hashlib
from typing import Any, Optional, Sequence

import numpy as np
import torch.distributed as dist

_object_group = None  # the gloo group for object collectives, made on first use (every rank reaches it together)


def active() -> bool:
    """Whether this process is one of several of a run (a process group with more than one member)."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Whether this process decides and writes (rank 0, or the only process)."""
    return rank() == 0


def _group():
    global _object_group
    if _object_group is None or not dist.is_initialized():
        _object_group = dist.new_group(backend="gloo") if dist.get_backend() != "gloo" else dist.group.WORLD
    return _object_group


def forget_group() -> None:
    """Drop the cached object group (the process group it belonged to was destroyed)."""
    global _object_group
    _object_group = None


def gather_to_main(value: Any) -> Optional[list]:
    """Every process's `value`, in rank order, on the main process; None elsewhere."""
    if not active():
        return [value]
    received = [None] * world_size() if is_main() else None
    dist.gather_object(value, received, dst=0, group=_group())
    return received


def all_gather(value: Any) -> list:
    """Every process's `value`, in rank order, on every process."""
    if not active():
        return [value]
    received = [None] * world_size()
    dist.all_gather_object(received, value, group=_group())
    return received


def broadcast_from_main(value: Any) -> Any:
    """The main process's `value`, on every process (what the others pass is ignored)."""
    if not active():
        return value
    box = [value if is_main() else None]
    dist.broadcast_object_list(box, src=0, group=_group())
    return box[0]


def concatenate_parts(parts: Sequence[dict]) -> dict:
    """The per-process dicts of arrays gathered by `gather_to_main`, joined in rank order (MC-dropout
    probabilities, shaped (T, n, C), along their example axis)."""
    keys = list(dict.fromkeys(key for part in parts for key in part))  # a process with an empty share has none
    joined = {}
    for key in keys:
        axis = 1 if key == "mc_probabilities" else 0
        chunks = [part[key] for part in parts if key in part]
        joined[key] = np.concatenate(chunks, axis=axis)
    return joined


def digest(*arrays: np.ndarray) -> str:
    """A short fingerprint of arrays' shapes and bytes, to compare a state between processes."""
    sha = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        sha.update(f"{array.dtype}{array.shape}".encode())
        sha.update(array.tobytes())
    return sha.hexdigest()[:16]


def check_same_everywhere(what: str, *arrays: np.ndarray) -> None:
    """Raise when the processes of a run hold different `arrays` (`what` names them; a bug: they would train on
    different data). A single process hashes nothing."""
    if not active():
        return
    seen = all_gather(digest(*arrays))
    if len(set(seen)) > 1:
        raise RuntimeError(f"the {world_size()} processes of this run hold different {what} "
                           f"(fingerprints by rank: {', '.join(seen)})")
