"""The one dataset type every agent trains on, validated on construction."""

from __future__ import annotations

import hashlib
import os
import zipfile
import zlib
from typing import Mapping

import numpy as np

from dipole.errors import MissingFileError, UsageError

REQUIRED_KEYS = ("observations", "actions", "rewards", "masks", "next_observations")
OPTIONAL_KEYS = ("terminals", "term_rewards")  # term_rewards (N, T): a reward per term (dipole-terms)


class DatasetError(UsageError):
    """Raised for a dataset that cannot be trained on; the message names the field and the fix."""


_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip archive with members / an empty one (np.savez of nothing)


def _not_npz(head: bytes) -> str:
    """What a file that is not a zip archive looks like, from its first bytes."""
    if not head:
        return "it is empty (0 bytes)"
    if head.startswith(b"\x93NUMPY"):
        return "it holds a single .npy array, not an .npz archive of named fields (np.save instead of np.savez)"
    if head[:1] == b"\x80":
        return "it holds pickled Python data, not an .npz archive"
    try:
        head.decode("utf-8")
        return f"it is a text file (starts with {head[:16].decode('utf-8', 'replace')!r}), not an .npz archive"
    except UnicodeDecodeError:
        return f"it is not an .npz archive (starts with bytes {head[:8]!r})"


def read_npz(path: str, what: str = "dataset", remake: str | None = None) -> dict:
    """Every array of an .npz file, read eagerly -> {name: ndarray}, without unpickling anything.

    Each way the file can be unreadable is one MissingFileError / DatasetError whose message names the file and
    the fix: missing, a directory, empty, not an .npz archive (text, pickle, a bare .npy), truncated or corrupt,
    or a field holding Python objects. `remake` is the command that makes the file (said in the message).
    """
    fix = f"make it again with `{remake}`" if remake else "make or download it again"
    if not os.path.exists(path):
        raise MissingFileError(f"{what} file {path} not found; " + (f"make it with `{remake}`" if remake else
                                                                       "check the path"))
    if os.path.isdir(path):
        raise DatasetError(f"{path} is a directory, not the {what} file; pass the .npz file itself (e.g. "
                           f"{os.path.join(path, 'NAME.npz')}).")
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError as e:
        raise DatasetError(f"{path}: cannot read the {what} file ({e.strerror or e}).") from None
    if not head.startswith(_ZIP_MAGIC):
        raise DatasetError(f"{path}: cannot be read as the {what} file: {_not_npz(head)}; {fix}.")
    field = None
    try:
        out = {}
        with np.load(path, allow_pickle=False) as archive:
            for field in archive.files:
                value = archive[field]
                if not isinstance(value, np.ndarray):
                    raise DatasetError(f"{path}: member {field!r} of the archive is not a numpy array (.npy); "
                                       f"the file is not the {what} file numpy's savez would write; {fix}.")
                out[field] = value
        return out
    except DatasetError:
        raise
    except (zipfile.BadZipFile, EOFError, zlib.error, OSError) as e:
        raise DatasetError(f"{path}: the {what} file is truncated or corrupt ({type(e).__name__}: {e}"
                           + (f", reading field '{field}'" if field else "") + f"); {fix}.") from None
    except ValueError as e:
        if "allow_pickle" in str(e) or "pickled" in str(e):
            raise DatasetError(f"{path}: field '{field}' holds Python objects (pickled), which dipole does not load; "
                               "save it as a numeric array (np.savez with float or int arrays).") from None
        raise DatasetError(f"{path}: field '{field}' cannot be read ({e}); the {what} file is corrupt; {fix}.") from None


def check_same_rows(arrays: Mapping[str, np.ndarray], keys, path: str) -> int:
    """Every field in `keys` has the same number of rows (>= 1) as the first -> that number."""
    keys = [k for k in keys if k in arrays]
    first = keys[0]
    n = None
    for key in keys:
        value = arrays[key]
        if value.ndim == 0:
            raise DatasetError(f"{path}: field '{key}' is a scalar; every field needs one row per step.")
        if n is None:
            n = len(value)
        elif len(value) != n:
            raise DatasetError(f"{path}: field '{key}' has {len(value)} rows but '{first}' has {n}; every field needs "
                               "one row per step: the file was cut or assembled from different sources; remake it.")
    if n == 0:
        raise DatasetError(f"{path}: field '{first}' has 0 rows: the file holds no data; remake it.")
    return n


def check_finite(arrays: Mapping[str, np.ndarray], keys, path: str) -> None:
    """No NaN or inf in the float fields among `keys`; the message names the field, the count and the first row."""
    for key in keys:
        value = arrays.get(key)
        if value is None or value.dtype.kind not in "fc":
            continue
        bad = ~np.isfinite(value)
        if bad.any():
            rows = np.flatnonzero(bad.reshape(len(value), -1).any(axis=1)) if value.ndim else [0]
            raise DatasetError(
                f"{path}: field '{key}' has {int(bad.sum())} non-finite values (NaN or inf) in {len(rows)} rows, "
                f"first at row {int(rows[0])}; drop or repair those steps (or remake the file) before training."
            )


class Dataset:
    """Transitions (s, a, r, mask, s') as float32 arrays, one row per transition.

    `masks` is 0 where s' is terminal (no bootstrapping) and 1 otherwise, as in OGBench single-task data.
    Actions must lie in [-1, 1]; pass clip_actions=True to clip out-of-range actions explicitly (the number
    clipped is kept in `self.num_clipped_actions` and reported by the trainer).
    """

    def __init__(
        self,
        arrays: Mapping[str, np.ndarray],
        *,
        name: str = "dataset",
        clip_actions: bool = False,
        obs_shape: tuple | None = None,
        action_dim: int | None = None,
        term_names: tuple | None = None,
    ):
        self.name = name
        self.term_names = tuple(term_names) if term_names is not None else None
        self.num_clipped_actions = 0
        missing = [k for k in REQUIRED_KEYS if k not in arrays]
        if missing:
            raise DatasetError(
                f"{name}: missing key(s) {missing}; a dataset needs {list(REQUIRED_KEYS)}. "
                "For OGBench data use a single-task name (e.g. 'pointmaze-medium-navigate-singletask-task1-v0'), "
                "which adds 'rewards' and 'masks'; elsewhere add them yourself (masks = 1 - terminal)."
            )
        data = {}
        for key in REQUIRED_KEYS + OPTIONAL_KEYS:
            if key in arrays:
                data[key] = np.asarray(arrays[key], dtype=np.float32)
        n = len(data["observations"])
        for key, value in data.items():
            if value.ndim == 0 or len(value) != n:
                got = "a scalar" if value.ndim == 0 else f"{len(value)} rows"
                raise DatasetError(
                    f"{name}: field '{key}' has {got} but 'observations' has {n}; "
                    "every field needs one row per transition."
                )
        if n == 0:
            raise DatasetError(f"{name}: the dataset is empty (0 transitions).")
        for key in ("observations", "next_observations", "actions"):
            if data[key].ndim != 2:
                raise DatasetError(
                    f"{name}: field '{key}' must have shape (N, dim), got {data[key].shape}; flatten it per row."
                )
        for key in ("rewards", "masks", "terminals"):
            if key in data and data[key].ndim != 1:
                raise DatasetError(f"{name}: field '{key}' must have shape (N,), got {data[key].shape}.")
        if "term_rewards" in data and data["term_rewards"].ndim != 2:
            raise DatasetError(f"{name}: field 'term_rewards' must have shape (N, number of terms), got "
                               f"{data['term_rewards'].shape}.")
        if term_names is not None and ("term_rewards" not in data or len(term_names) != data["term_rewards"].shape[1]):
            raise DatasetError(f"{name}: {len(term_names)} term names {list(term_names)} but 'term_rewards' has "
                               f"{data['term_rewards'].shape[1] if 'term_rewards' in data else 'no'} columns.")
        if data["next_observations"].shape != data["observations"].shape:
            raise DatasetError(
                f"{name}: 'next_observations' has shape {data['next_observations'].shape} but 'observations' has "
                f"{data['observations'].shape}; they must match."
            )
        for key, value in data.items():
            bad = ~np.isfinite(value)
            if bad.any():
                rows = np.unique(np.nonzero(bad)[0])
                raise DatasetError(
                    f"{name}: field '{key}' has {int(bad.sum())} non-finite values (NaN or inf) in {len(rows)} rows, "
                    f"first at row {int(rows[0])}; drop or repair those transitions before training."
                )
        masks = data["masks"]
        if not np.all((masks == 0) | (masks == 1)):
            raise DatasetError(f"{name}: field 'masks' must be 0 or 1 (1 - terminal), got values {np.unique(masks)[:5]}.")
        actions = data["actions"]
        outside = np.any(np.abs(actions) > 1.0, axis=1)
        if outside.any():
            if not clip_actions:
                raise DatasetError(
                    f"{name}: field 'actions' has {int(outside.sum())} rows outside [-1, 1] "
                    f"(min {actions.min():.4g}, max {actions.max():.4g}, first at row {int(np.argmax(outside))}); "
                    "policies here act in [-1, 1]. Rescale the actions, or pass clip_actions=True "
                    "(CLI: --clip-actions) to clip them explicitly."
                )
            data["actions"] = np.clip(actions, -1.0, 1.0)
            self.num_clipped_actions = int(outside.sum())
        if obs_shape is not None and tuple(data["observations"].shape[1:]) != tuple(obs_shape):
            raise DatasetError(
                f"{name}: 'observations' rows have shape {data['observations'].shape[1:]} but the environment "
                f"observes {tuple(obs_shape)}; the dataset and the environment do not match."
            )
        if action_dim is not None and data["actions"].shape[1] != action_dim:
            raise DatasetError(
                f"{name}: 'actions' rows have {data['actions'].shape[1]} dims but the environment takes "
                f"{action_dim}; the dataset and the environment do not match."
            )
        self.arrays = data
        self._fingerprint = None

    def fingerprint(self) -> str:
        """Content hash of the training arrays (name, dtype, shape and bytes of each, in REQUIRED_KEYS order), hex
        blake2b-128; computed once. Two datasets with equal training arrays have the same fingerprint."""
        if self._fingerprint is None:
            h = hashlib.blake2b(digest_size=16)
            for key in self._training_keys():
                value = np.ascontiguousarray(self.arrays[key])
                h.update(f"{key}:{value.dtype.str}:{value.shape};".encode())
                h.update(memoryview(value).cast("B"))
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def __len__(self) -> int:
        return len(self.arrays["observations"])

    def __getitem__(self, key: str) -> np.ndarray:
        return self.arrays[key]

    @property
    def obs_dim(self) -> int:
        return int(self.arrays["observations"].shape[1])

    @property
    def action_dim(self) -> int:
        return int(self.arrays["actions"].shape[1])

    def training_arrays(self) -> dict:
        """The arrays an agent's update reads (terminals are not needed: masks carry them), with term_rewards when
        the data has them."""
        return {k: self.arrays[k] for k in self._training_keys()}

    def _training_keys(self) -> tuple:
        return REQUIRED_KEYS + (("term_rewards",) if "term_rewards" in self.arrays else ())

    def sample(self, rng: np.random.Generator, batch_size: int) -> dict:
        idx = rng.integers(0, len(self), size=batch_size)
        return {k: self.arrays[k][idx] for k in self._training_keys()}

    def summary(self) -> dict:
        r = self.arrays["rewards"]
        return {
            "transitions": len(self),
            "obs_dim": self.obs_dim,
            "action_dim": self.action_dim,
            "reward_mean": float(r.mean()),
            "terminal_fraction": float(1.0 - self.arrays["masks"].mean()),
            "clipped_actions": self.num_clipped_actions,
        }
