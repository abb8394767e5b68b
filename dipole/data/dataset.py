"""The one dataset type every agent trains on, validated on construction."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from dipole.errors import UsageError

REQUIRED_KEYS = ("observations", "actions", "rewards", "masks", "next_observations")
OPTIONAL_KEYS = ("terminals",)


class DatasetError(UsageError):
    """Raised for a dataset that cannot be trained on; the message names the field and the fix."""


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
    ):
        self.name = name
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
        """The arrays an agent's update reads (terminals are not needed: masks carry them)."""
        return {k: self.arrays[k] for k in REQUIRED_KEYS}

    def sample(self, rng: np.random.Generator, batch_size: int) -> dict:
        idx = rng.integers(0, len(self), size=batch_size)
        return {k: self.arrays[k][idx] for k in REQUIRED_KEYS}

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
