"""Driving data as a training Dataset, with rewards weighted from the stored terms at load time."""

from __future__ import annotations

import os

import numpy as np

from dipole.data.dataset import Dataset, DatasetError, check_same_rows, read_npz
from dipole.envs.highway import OBS_DIM, TERMS, parse_highway_name

DEFAULT_DATA_DIR = "~/.dipole/highway"
DRIVING_TERMS = ("speed", "safety", "lane")  # the columns of term_rewards


def load_highway(name: str, dataset_path: str | None = None, clip_actions: bool = False):
    """-> Dataset with rewards from the terms under the weights in `name`; masks 0 only on crash/off-road ends."""
    base, weights = parse_highway_name(name)
    path = os.path.expanduser(dataset_path or os.path.join(DEFAULT_DATA_DIR, f"{base}.npz"))
    remake = "dipole data highway" + ("" if base == "highway-fast-v0" else f" {base}")
    arrays = read_npz(path, "highway dataset", remake)
    needed = ["observations", "actions", "next_observations", "terminated"] + [f"terms/{t}" for t in TERMS]
    missing = [k for k in needed if k not in arrays]
    if missing:
        raise DatasetError(f"{path}: missing key(s) {missing}; remake it with `{remake}`")
    check_same_rows(arrays, needed, path)
    terms = [f"terms/{t}" for t in TERMS] + ["terminated"]
    for key in terms:
        if arrays[key].ndim != 1:
            raise DatasetError(f"{path}: field '{key}' must have shape (N,), got {arrays[key].shape}; remake it with "
                               f"`{remake}`")
    arrays["rewards"] = sum(weights[t] * arrays[f"terms/{t}"] for t in TERMS).astype(np.float32)
    arrays["masks"] = 1.0 - arrays["terminated"]
    # per-term rewards for agents that weight terms at inference (dipole-terms), unweighted: speed in [0, 1],
    # safety = collision + off-road (-1 on the step either ends the episode), lane in [-1, 0]
    arrays["term_rewards"] = np.stack([arrays["terms/speed"], arrays["terms/collision"] + arrays["terms/offroad"],
                                       arrays["terms/lane"]], axis=1).astype(np.float32)
    return Dataset(arrays, name=path, clip_actions=clip_actions, obs_shape=(OBS_DIM,), action_dim=2,
                   term_names=DRIVING_TERMS)
