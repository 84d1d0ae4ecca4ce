"""Reading back files that osal wrote but that may have travelled since: committed, cloned, merged, copied.

A run directory or annotation project is something people commit and hand on, so what comes back may be
a Git LFS pointer instead of the file, a file with merge-conflict markers in it, a truncated download or a
file edited by hand. Each reader here refuses such a file with one sentence (a `DamagedFileError`) that
names it and says what to do, instead of numpy's, zipfile's or json's own message; the caller adds which
command it was and leaves everything on disk as it was.
"""

import json
import os
import zipfile
from typing import Iterable, Union

import numpy as np
import yaml

from osal.errors import OsalError

LFS_POINTER = b"version https://git-lfs.github.com/spec/"
ZIP_MAGIC = b"PK\x03\x04"
CONFLICT_MARKERS = ("<<<<<<< ", "=======", ">>>>>>> ")


class DamagedFileError(OsalError):
    """A file osal wrote does not read back as osal wrote it."""


def text_trouble(path: Union[str, os.PathLike], text: str) -> Union[str, None]:
    """Why a text file osal wrote cannot be what osal wrote (an LFS pointer, merge-conflict markers), or None."""
    if text.startswith(LFS_POINTER.decode()):
        return (f"{path} is a Git LFS pointer, not the file itself; fetch it with `git lfs pull` (or copy the "
                "real file in)")
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith(CONFLICT_MARKERS) or line == "=======":
            return (f"{path} holds a merge-conflict marker on line {number} ({line[:7]}); resolve the conflict "
                    "(keep one side's file whole, e.g. `git checkout --theirs` or `--ours`) and run again")
    return None


def read_text(path: Union[str, os.PathLike]) -> str:
    """The text of a file osal wrote; DamagedFileError when it is an LFS pointer, holds conflict markers or is
    not UTF-8."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DamagedFileError(f"{path} is not a text file osal wrote (it is not UTF-8); restore it from where "
                               "it came, or move it away") from None
    trouble = text_trouble(path, text)
    if trouble:
        raise DamagedFileError(trouble)
    return text


def read_yaml_text(path: Union[str, os.PathLike]) -> str:
    """The text of a YAML file osal wrote (read_text's checks), refused when it holds anchors or aliases (& and *):
    osal never writes them, and a few lines of nested aliases expand to billions of values when a config is
    built from them (a file that would take the machine's memory). Invalid YAML is left to the caller's parser."""
    text = read_text(path)
    if "&" in text or "*" in text:  # a quick test first: most files hold neither character
        try:
            for token in yaml.scan(text, Loader=yaml.SafeLoader):
                if isinstance(token, (yaml.AliasToken, yaml.AnchorToken)):
                    line = token.start_mark.line + 1
                    raise DamagedFileError(f"{path} holds a YAML anchor or alias on line {line}, which osal never "
                                           "writes (nested aliases can expand without bound); write the values out "
                                           "in full, or restore the file from where it came")
        except yaml.YAMLError:
            pass
    return text


def read_npz(path: Union[str, os.PathLike], keys: Iterable[str], fix: str) -> dict:
    """Every array of the .npz file at `path`, the JSON string `meta` among them parsed (when present).

    Raises DamagedFileError naming the file, what is wrong with it and `fix` (what to do) when the file is a
    Git LFS pointer, is not a complete .npz file, holds object arrays (which would need pickle, never loaded
    from files that may come from others), lacks one of `keys`, or its `meta` is not a JSON object.
    """
    path = str(path)
    with open(path, "rb") as f:
        head = f.read(len(LFS_POINTER))
    if head == LFS_POINTER:
        raise DamagedFileError(f"{path} is a Git LFS pointer, not the file itself; fetch it with `git lfs pull` "
                               f"(or copy the real file in), or {fix}")
    if not head.startswith(ZIP_MAGIC):
        raise _damaged(path, fix)  # np.load would try to unpickle anything that is not a zip or .npy file
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [key for key in keys if key not in data.files]
            if missing:
                raise DamagedFileError(f"{path} lacks {', '.join(missing)}, so it is not a complete osal record; "
                                       f"{fix}")
            arrays = {key: data[key] for key in data.files}
    except DamagedFileError:
        raise
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise DamagedFileError(f"{path} holds an object array, which osal never writes and will not unpickle "
                                   f"from a file that may come from others; {fix}") from None
        raise _damaged(path, fix) from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError):
        raise _damaged(path, fix) from None
    if "meta" in arrays:
        arrays["meta"] = _meta(path, arrays["meta"], fix)
    return arrays


def _meta(path: str, array: np.ndarray, fix: str) -> dict:
    if array.dtype.kind != "U" or array.shape != ():
        raise DamagedFileError(f"{path}'s meta is not the JSON text osal writes; {fix}")
    try:
        meta = json.loads(str(array))
    except (ValueError, RecursionError):  # a document nested past the parser's depth
        raise DamagedFileError(f"{path}'s meta is not valid JSON; {fix}") from None
    if not isinstance(meta, dict):
        raise DamagedFileError(f"{path}'s meta is not a JSON object; {fix}")
    return meta


def _damaged(path: str, fix: str) -> DamagedFileError:
    return DamagedFileError(f"{path} is damaged (truncated or not a .npz file osal wrote); {fix}")
