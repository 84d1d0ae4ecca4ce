"""A pool's images read a batch at a time instead of held whole: what serves pools larger than memory.

`ImageRows` wraps a uint8 (N, H, W, C) array and is indexed like the (N, C, H, W) tensor the in-memory path
keeps: a tensor of indices gives that batch, a single index one image. When the array is a memory map of an
`.npy` file (the decode cache), the rows are read from the file with `pread`, consecutive rows in one call:
the file's pages stay in the kernel's page cache and never become this process's resident memory, so the
process holds about one batch of images whatever the pool's size (a memory map read in place would keep
every page it touched resident). Any other array is indexed in memory.
"""

import mmap
import os
from typing import Union

import numpy as np
import torch


class ImageRows:
    """uint8 images read on demand, indexed like an (N, C, H, W) tensor (the views it returns are NCHW)."""

    def __init__(self, array: np.ndarray) -> None:
        if array.dtype != np.uint8 or array.ndim != 4:
            raise ValueError(f"images must be uint8 (N, H, W, C), got {array.dtype} {array.shape}")
        self.array = array
        self.row_shape = tuple(array.shape[1:])
        self.row_bytes = int(np.prod(self.row_shape))
        self.path, self.offset = file_behind(array)
        self._fd, self._pid = None, None

    @property
    def shape(self) -> tuple:
        h, w, c = self.row_shape
        return (len(self.array), c, h, w)

    @property
    def from_file(self) -> bool:
        return self.path is not None

    def __len__(self) -> int:
        return len(self.array)

    def __getitem__(self, index: Union[int, np.ndarray, torch.Tensor]) -> torch.Tensor:
        positions = np.asarray(index.cpu().numpy() if torch.is_tensor(index) else index, dtype=np.int64)
        single = positions.ndim == 0
        positions = positions.reshape(-1)
        if len(positions) and (positions.min() < 0 or positions.max() >= len(self.array)):
            raise IndexError(f"image rows {positions.min()}..{positions.max()} outside 0..{len(self.array) - 1}")
        rows = self._read(positions) if self.from_file else np.asarray(self.array[positions])
        images = torch.from_numpy(rows).permute(0, 3, 1, 2)
        return images[0] if single else images

    def pixels(self, start: int, stop: int) -> np.ndarray:
        """Pixels start..stop-1 of the images taken as one (N*H*W, C) array (for per-channel statistics)."""
        channels = self.row_shape[-1]
        if not self.from_file:
            return self.array.reshape(-1, channels)[start:stop]
        stop = min(stop, len(self.array) * self.row_bytes // channels)
        out = np.empty((max(stop - start, 0), channels), dtype=np.uint8)
        self._pread(memoryview(out.reshape(-1)), self.offset + start * channels)
        return out

    def _pread(self, target: memoryview, where: int) -> None:
        fd = self._file()
        while len(target):
            got = os.preadv(fd, [target], where)
            if got <= 0:
                raise OSError(f"{self.path} ended early (at byte {where}): the decode cache entry is damaged; "
                              "delete it and run again")
            target, where = target[got:], where + got

    def _read(self, positions: np.ndarray) -> np.ndarray:
        """The rows at `positions`, in that order: sorted, each run of consecutive rows read in one pread."""
        order = np.argsort(positions, kind="stable")
        ascending = positions[order]
        buffer = np.empty((len(positions), *self.row_shape), dtype=np.uint8)
        if not len(positions):
            return buffer
        flat = buffer.reshape(-1)
        breaks = np.flatnonzero(np.diff(ascending) != 1) + 1
        for start, end in zip(np.concatenate([[0], breaks]), np.concatenate([breaks, [len(ascending)]])):
            self._pread(memoryview(flat[start * self.row_bytes:end * self.row_bytes]),
                        self.offset + int(ascending[start]) * self.row_bytes)
        rows = np.empty_like(buffer)
        rows[order] = buffer
        return rows

    def _file(self) -> int:
        if self._fd is None or self._pid != os.getpid():  # a loader worker opens its own descriptor
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
        return self._fd

    def __getstate__(self) -> dict:  # loader workers started by spawn reopen the file
        return {**self.__dict__, "_fd": None, "_pid": None}

    def __del__(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            try:
                os.close(self._fd)
            except OSError:
                pass


def file_behind(array: np.ndarray) -> tuple:
    """(path, byte offset of row 0) of an array that is a C-ordered memory map of a whole file's rows, else
    (None, 0)."""
    owner = array  # the memmap that owns the mapping (a slice of a memmap is a memmap too, with the same offset)
    while isinstance(owner.base, np.ndarray):
        owner = owner.base
    if not isinstance(owner, np.memmap) or not isinstance(owner.base, mmap.mmap) or owner.filename is None:
        return None, 0
    if not array.flags.c_contiguous:
        return None, 0
    start = array.__array_interface__["data"][0] - owner.__array_interface__["data"][0]
    return str(owner.filename), int(owner.offset) + int(start)


def physical_memory() -> int:
    """This machine's RAM in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
