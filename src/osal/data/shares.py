"""How several processes split a set of examples between them (DDP inference and testing)."""

import numpy as np


def contiguous_share(indices: np.ndarray, part: int, parts: int) -> np.ndarray:
    """Share `part` of `parts` of `indices`: contiguous, every entry in exactly one share, shares differing in
    length by at most one, no padding (a padded share would score or test some examples twice). In part
    order the shares concatenate back to `indices`."""
    part, parts = int(part), int(parts)
    if not 0 <= part < parts:
        raise ValueError(f"share {part} of {parts} does not exist")
    if parts == 1:
        return indices
    bounds = np.linspace(0, len(indices), parts + 1).round().astype(np.int64)
    return indices[bounds[part]:bounds[part + 1]]
