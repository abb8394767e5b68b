"""Replay buffer for online fine-tuning: the offline dataset (never overwritten) followed by a ring of online rows."""

from __future__ import annotations

import numpy as np

from dipole.data.dataset import REQUIRED_KEYS, Dataset
from dipole.storage import CheckpointError


class ReplayBuffer:
    """The offline dataset (fixed, first rows) followed by a ring of `capacity` online transitions."""

    def __init__(self, offline: Dataset, capacity: int):
        self.num_offline = len(offline)
        self.capacity = int(capacity)
        self.count = 0  # online transitions ever added
        self.data = {}
        for k in REQUIRED_KEYS:
            src = offline[k]
            self.data[k] = np.empty((self.num_offline + self.capacity,) + src.shape[1:], np.float32)
            self.data[k][: self.num_offline] = src

    @property
    def online_size(self) -> int:
        return min(self.count, self.capacity)

    def __len__(self) -> int:
        return self.num_offline + self.online_size

    @property
    def nbytes(self) -> int:
        return sum(v.nbytes for v in self.data.values())

    def add(self, obs, action, reward, mask, next_obs) -> None:
        i = self.num_offline + self.count % self.capacity
        self.data["observations"][i] = obs
        self.data["actions"][i] = action
        self.data["rewards"][i] = reward
        self.data["masks"][i] = mask
        self.data["next_observations"][i] = next_obs
        self.count += 1

    def sample(self, rng: np.random.Generator, shape) -> dict:
        idx = rng.integers(0, len(self), size=shape)
        return {k: v[idx] for k, v in self.data.items()}

    def online_arrays(self) -> dict:
        """The filled online rows in storage order (what a checkpoint keeps)."""
        lo, hi = self.num_offline, self.num_offline + self.online_size
        return {f"buffer/{k}": v[lo:hi] for k, v in self.data.items()}

    def restore_online(self, arrays: dict, count: int) -> None:
        size = min(count, self.capacity)
        for k in REQUIRED_KEYS:
            rows = np.asarray(arrays[f"buffer/{k}"])
            if len(rows) != size:
                raise CheckpointError(f"checkpoint buffer field '{k}' has {len(rows)} rows, expected {size}")
            self.data[k][self.num_offline : self.num_offline + size] = rows
        self.count = int(count)
