"""Make OGBench datasets locally, in OGBench's own file layout, following its published generation protocol.

Layout of NAME.npz (and NAME-val.npz with 10% as many episodes), one row per step, episodes concatenated:
`observations`, `actions` (clipped to [-1, 1]), `terminals` (1 at each episode's last step), `qpos` and `qvel`
(the physics state *before* the step, from info['prev_qpos'] / info['prev_qvel']).

Protocol for `pointmaze-*-navigate-v0`: env made with terminate_at_goal=False and max_episode_steps=1001; each
episode starts from OGBench's random reset; a goal cell is drawn uniformly among free cells and replaced by a
new one whenever it is reached; the action is the unit vector towards the BFS subgoal (the next cell on the
shortest path, or the goal itself in the goal's cell) plus N(0, 0.5^2) noise, clipped to [-1, 1].
1000 train + 100 validation episodes of 1001 steps.

Every episode is seeded from (seed, split, episode index) alone, so the output is the same for any number of
workers.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from dataclasses import dataclass

import numpy as np

from dipole.utils import atomic_write_npz


@dataclass(frozen=True)
class GenSpec:
    family: str  # 'pointmaze'
    env_id: str  # gymnasium id of the data-collection env
    episodes: int  # published number of training episodes
    episode_length: int  # steps per episode (max_episode_steps)
    noise: float


SPECS = {
    "pointmaze-medium-navigate-v0": GenSpec("pointmaze", "pointmaze-medium-v0", 1000, 1001, 0.5),
    "pointmaze-large-navigate-v0": GenSpec("pointmaze", "pointmaze-large-v0", 1000, 1001, 0.5),
    "pointmaze-giant-navigate-v0": GenSpec("pointmaze", "pointmaze-giant-v0", 1000, 1001, 0.5),
    "pointmaze-teleport-navigate-v0": GenSpec("pointmaze", "pointmaze-teleport-v0", 1000, 1001, 0.5),
}


def supported() -> list[str]:
    return sorted(SPECS)


def _episode_seed(seed: int, split: int, episode: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([seed, split, episode])


def _pointmaze_episode(env, spec: GenSpec, rng: np.random.Generator):
    u = env.unwrapped
    free_cells = [(i, j) for i in range(u.maze_map.shape[0]) for j in range(u.maze_map.shape[1]) if u.maze_map[i, j] == 0]

    def new_goal():
        u.set_goal(goal_ij=free_cells[rng.integers(len(free_cells))])

    ob, _ = env.reset()
    new_goal()
    rows = {k: [] for k in ("observations", "actions", "terminals", "qpos", "qvel")}
    for step in range(spec.episode_length):
        xy, goal_xy = u.get_xy(), np.asarray(u.cur_goal_xy)
        subgoal_xy, _ = u.get_oracle_subgoal(xy, goal_xy)
        if u.xy_to_ij(xy) == u.xy_to_ij(goal_xy):
            subgoal_xy = goal_xy
        direction = np.asarray(subgoal_xy) - xy
        direction = direction / (np.linalg.norm(direction) + 1e-6)
        action = np.clip(direction + rng.normal(0.0, spec.noise, size=direction.shape), -1.0, 1.0)
        next_ob, _, _, truncated, info = env.step(action)
        done = truncated or step == spec.episode_length - 1
        rows["observations"].append(ob)
        rows["actions"].append(action)
        rows["terminals"].append(float(done))
        rows["qpos"].append(info["prev_qpos"])
        rows["qvel"].append(info["prev_qvel"])
        if np.linalg.norm(u.get_xy() - goal_xy) <= u._goal_tol:
            new_goal()
        ob = next_ob
        if done:
            break
    return rows


def _run_episodes(args):
    """Worker: generate a list of episodes (split, index) and return their concatenated rows."""
    name, seed, jobs = args
    import gymnasium
    import ogbench  # noqa: F401  (registers the envs)

    spec = SPECS[name]
    env = gymnasium.make(spec.env_id, terminate_at_goal=False, max_episode_steps=spec.episode_length)
    out = []
    for split, episode in jobs:
        ss = _episode_seed(seed, split, episode)
        np.random.seed(ss.generate_state(1)[0])  # OGBench's resets draw from the global numpy RNG
        env.reset(seed=int(ss.generate_state(1)[0]))
        rng = np.random.default_rng(ss)
        rows = _pointmaze_episode(env, spec, rng)
        out.append((split, episode, {k: np.asarray(v) for k, v in rows.items()}))
    env.close()
    return out


def generate_ogbench(
    name: str,
    episodes: int | None = None,
    workers: int = 1,
    seed: int = 0,
    out_dir: str = "~/.ogbench/data",
    progress: bool = True,
) -> dict:
    """Write `out_dir/NAME.npz` and `out_dir/NAME-val.npz`; returns paths, sizes and timing."""
    if name not in SPECS:
        raise ValueError(f"cannot generate {name!r} here; supported: {supported()}")
    spec = SPECS[name]
    n_train = spec.episodes if episodes is None else int(episodes)
    if n_train < 1:
        raise ValueError(f"--episodes must be >= 1, got {n_train}")
    n_val = max(1, n_train // 10)
    jobs = [(0, i) for i in range(n_train)] + [(1, i) for i in range(n_val)]
    workers = max(1, min(int(workers), len(jobs)))
    chunk = max(1, min(10, len(jobs) // (workers * 4) or 1))
    batches = [(name, seed, jobs[i : i + chunk]) for i in range(0, len(jobs), chunk)]

    from tqdm import tqdm

    start = time.time()
    results = {}
    bar = tqdm(total=len(jobs), desc=f"generate {name}", unit="ep", disable=not progress)
    if workers == 1:
        iterator = map(_run_episodes, batches)
        pool = None
    else:
        pool = mp.get_context("spawn").Pool(workers)
        iterator = pool.imap(_run_episodes, batches)
    try:
        for part in iterator:
            for split, episode, rows in part:
                results[(split, episode)] = rows
            bar.update(len(part))
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()

    out_dir = os.path.expanduser(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    paths = {}
    for split, suffix, count in ((1, "-val", n_val), (0, "", n_train)):  # train file last: it marks completion
        eps = [results[(split, i)] for i in range(count)]
        arrays = {k: np.concatenate([e[k] for e in eps]) for k in eps[0]}
        arrays["observations"] = arrays["observations"].astype(np.float32)
        arrays["actions"] = arrays["actions"].astype(np.float32)
        arrays["terminals"] = arrays["terminals"].astype(np.float32)
        path = os.path.join(out_dir, f"{name}{suffix}.npz")  # OGBench: NAME.npz and NAME-val.npz
        atomic_write_npz(path, arrays)
        paths["val" if split else "train"] = path
    elapsed = time.time() - start
    return {
        "name": name,
        "train_path": paths["train"],
        "val_path": paths["val"],
        "train_episodes": n_train,
        "val_episodes": n_val,
        "steps": n_train * spec.episode_length,
        "bytes": os.path.getsize(paths["train"]) + os.path.getsize(paths["val"]),
        "seconds": elapsed,
        "workers": workers,
    }
