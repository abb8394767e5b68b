"""DeepMind Control: reward-free exploratory datasets made locally, relabelled per task from physics states.

ExORL's datasets are replay buffers of unsupervised exploration agents (RND among them) and a download. Here the
data are collected by cell-based, state-restoring exploration in the style of Go-Explore (Ecoffet et al., 2021):
an archive maps cells (a coarse discretisation of a few task-agnostic physical quantities: height, uprightness,
velocity) to a physics state that reached them; each segment starts from a cell chosen with probability
∝ 1/sqrt(1 + times chosen), restores its state, and explores with temporally correlated random actions, adding
every new cell it reaches. Why this method: it needs no learner, so it runs at simulator speed on a CPU, and it
pushes coverage outward systematically (rarely chosen cells are revisited first), which is what offline data for
several downstream tasks needs; RND needs an online RL learner for millions of steps (a GPU job).

File layout (`DOMAIN-explore.npz`): per transition `observations`, `actions`, `next_observations`, `physics`
(the full MuJoCo state after the action, from which every task's reward is recomputed, as ExORL relabels),
`terminals` (1 at each segment's end; DMC tasks never terminate, so masks are all 1), and a JSON `meta` string.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time

import numpy as np

from dipole.envs.dmc import DOMAINS, _load, action_scaler, flatten_obs
from dipole.errors import UsageError
from dipole.runfolder import writing_data
from dipole.storage import atomic_write_npz


def cell_of(domain: str, physics) -> tuple:
    """Coarse, task-agnostic description of a state: the cell it falls in."""
    if domain == "walker":
        return (int(physics.torso_height() // 0.2), int(np.floor(physics.horizontal_velocity())),
                int(np.floor(physics.torso_upright() * 2)))
    if domain == "cheetah":
        q = physics.data.qpos
        return (int(np.floor(physics.speed())), int(np.floor(q[2] / 0.5)), int(np.floor(q[1] / 0.1)))
    if domain == "quadruped":
        v = physics.torso_velocity()
        return (int(np.floor(v[0])), int(np.floor(v[1])), int(np.floor(physics.torso_upright() * 2)),
                int(physics.named.data.xpos["torso", "z"] // 0.2))
    raise ValueError(domain)


def _explore(args):
    """One explorer: `steps` transitions by archive-driven exploration; returns arrays and the archive's cells."""
    domain, seed, steps, segment = args
    rng = np.random.default_rng(seed)
    env = _load(domain, DOMAINS[domain][0], seed=int(rng.integers(2**31)))
    physics = env.physics
    a_dim = env.action_spec().shape[0]
    scale = action_scaler(env)
    archive: dict[tuple, dict] = {}
    rows = {k: [] for k in ("observations", "actions", "next_observations", "physics", "terminals")}
    collected = 0
    while collected < steps:
        if not archive or rng.uniform() < 0.1:  # fresh episodes keep the initial-state distribution covered
            ts = env.reset()
            obs = flatten_obs(ts.observation)
        else:
            keys = list(archive)
            w = np.array([1.0 / np.sqrt(1.0 + archive[k]["chosen"]) for k in keys])
            cell = archive[keys[rng.choice(len(keys), p=w / w.sum())]]
            cell["chosen"] += 1
            env.reset()
            with physics.reset_context():
                physics.set_state(cell["state"])
            obs = cell["obs"]
        n = min(segment, steps - collected)
        action = rng.uniform(-1, 1, a_dim)
        for i in range(n):
            if rng.uniform() < 0.1:  # correlated random actions: hold for ~10 steps, jitter in between
                action = rng.uniform(-1, 1, a_dim)
            act = np.clip(action + 0.1 * rng.normal(size=a_dim), -1, 1)
            ts = env.step(scale(act))  # stored actions stay in [-1, 1]
            next_obs = flatten_obs(ts.observation)
            state = physics.get_state().copy()
            rows["observations"].append(obs)
            rows["actions"].append(act.astype(np.float32))
            rows["next_observations"].append(next_obs)
            rows["physics"].append(state)
            rows["terminals"].append(float(i == n - 1 or ts.last()))
            c = cell_of(domain, physics)
            if c not in archive:
                archive[c] = {"state": state, "obs": next_obs, "chosen": 0}
            obs = next_obs
            collected += 1
            if ts.last():
                break
    return {k: np.asarray(v, np.float32) for k, v in rows.items()}, sorted(archive)


def generate_dmc(domain: str, steps: int = 1_000_000, explorers: int = 8, workers: int = 1, seed: int = 0,
                 out_dir: str = "~/.dipole/dmc", segment: int = 100, progress: bool = True) -> dict:
    """Write `out_dir/DOMAIN-explore.npz`; the result is the same for any number of workers."""
    if domain not in DOMAINS:
        raise UsageError(f"unknown DMC domain {domain!r}; available: {sorted(DOMAINS)}")
    if steps < explorers:
        raise UsageError(f"--steps ({steps}) must be at least --explorers ({explorers})")
    out_dir = os.path.expanduser(out_dir)
    with writing_data(out_dir, f"{domain}-explore"):  # one writer per file, for the whole generation
        from tqdm import tqdm

        share = [steps // explorers + (i < steps % explorers) for i in range(explorers)]
        jobs = [(domain, seed * 1000 + i, share[i], segment) for i in range(explorers)]
        start = time.time()
        workers = max(1, min(workers, explorers))
        pool = mp.get_context("spawn").Pool(workers) if workers > 1 else None
        parts = []
        try:
            it = pool.imap(_explore, jobs) if pool else map(_explore, jobs)
            for part in tqdm(it, total=explorers, desc=f"explore {domain}", unit="explorer", disable=not progress):
                parts.append(part)
        finally:
            if pool is not None:
                pool.terminate()
        arrays = {k: np.concatenate([p[0][k] for p in parts]) for k in parts[0][0]}
        cells = sorted({c for p in parts for c in p[1]})
        meta = {"domain": domain, "method": "cell-based state-restoring exploration (Go-Explore style)",
                "steps": int(len(arrays["actions"])), "explorers": explorers, "segment": segment, "seed": seed,
                "cells_discovered": len(cells), "seconds": time.time() - start}
        arrays["meta"] = np.array(json.dumps(meta))
        path = os.path.join(out_dir, f"{domain}-explore.npz")
        atomic_write_npz(path, arrays)
        meta.update(path=path, bytes=os.path.getsize(path))
        return meta
