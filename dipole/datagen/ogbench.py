"""Make OGBench datasets locally, in OGBench's own file layout, following its published generation protocol.

Layout of NAME.npz (and NAME-val.npz with 10% as many episodes), one row per step, episodes concatenated:
`observations`, `actions` (clipped to [-1, 1]), `terminals` (1 at each episode's last step), `qpos` and `qvel`
(the physics state *before* the step, from info['prev_qpos'] / info['prev_qvel']).

Protocol for `pointmaze-*-navigate-v0`: env made with terminate_at_goal=False and max_episode_steps=1001; each
episode starts from OGBench's random reset; a goal cell is drawn uniformly among free cells and replaced by a
new one whenever it is reached; the action is the unit vector towards the BFS subgoal (the next cell on the
shortest path, or the goal itself in the goal's cell) plus N(0, 0.5^2) noise, clipped to [-1, 1].
1000 train + 100 validation episodes of 1001 steps.

Protocol for the manipulation `*-play-v0` datasets: env made with terminate_at_goal=False,
mode='data_collection', max_episode_steps=1001; one scripted PlanOracle per task type (noise 0.1, noise smoothing
0.5) shipped in the ogbench wheel (cube, button, drawer, window; puzzle: the button oracle with the gripper always
closed); whenever the oracle reports done, `env.unwrapped.set_new_target(p_stack=...)` picks the next task
(p_stack 0 for cube-single, U(0, 0.25) per episode for cube-double, 0.5 for scene). Scene and puzzle files also
hold `button_states` (info['prev_button_states']). 1000 train + 100 validation episodes of 1001 steps.

Every episode is seeded from (seed, split, episode index) alone, so the output is the same for any number of
workers.

The pair is written as one unit: `NAME.manifest.json` beside the files is first replaced by one marked incomplete,
then NAME-val.npz and NAME.npz are written (each atomically), and the manifest is written last with the seed,
episode and row counts, and each file's size and SHA-256. `dipole.data.ogbench.load_ogbench` refuses a pair whose
manifest is incomplete or whose files differ from it (e.g. a run killed between the two files).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np

from dipole.data.ogbench import GENERATOR, MANIFEST_FORMAT, file_digest, manifest_path
from dipole.datagen.pool import parallel_map
from dipole.errors import UsageError
from dipole.runfolder import writing_data
from dipole.storage import atomic_write_json, atomic_write_npz


@dataclass(frozen=True)
class GenSpec:
    family: str  # 'pointmaze', 'cube', 'scene' or 'puzzle'
    env_id: str  # gymnasium id of the data-collection env
    episodes: int  # published number of training episodes
    episode_length: int  # steps per episode (max_episode_steps)
    noise: float
    noise_smoothing: float = 0.0
    p_stack: tuple = (0.0, 0.0)  # drawn uniformly per episode


def _maze(env_id):
    return GenSpec("pointmaze", env_id, 1000, 1001, 0.5)


def _play(family, env_id, p_stack=(0.0, 0.0)):
    return GenSpec(family, env_id, 1000, 1001, 0.1, 0.5, p_stack)


SPECS = {
    "pointmaze-medium-navigate-v0": _maze("pointmaze-medium-v0"),
    "pointmaze-large-navigate-v0": _maze("pointmaze-large-v0"),
    "pointmaze-giant-navigate-v0": _maze("pointmaze-giant-v0"),
    "pointmaze-teleport-navigate-v0": _maze("pointmaze-teleport-v0"),
    "cube-single-play-v0": _play("cube", "cube-single-v0"),
    "cube-double-play-v0": _play("cube", "cube-double-v0", (0.0, 0.25)),
    "scene-play-v0": _play("scene", "scene-v0", (0.5, 0.5)),
    "puzzle-3x3-play-v0": _play("puzzle", "puzzle-3x3-v0"),
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


def _make_oracles(env, spec: GenSpec) -> dict:
    from ogbench.manipspace.oracles.plan.button_plan import ButtonPlanOracle
    from ogbench.manipspace.oracles.plan.cube_plan import CubePlanOracle
    from ogbench.manipspace.oracles.plan.drawer_plan import DrawerPlanOracle
    from ogbench.manipspace.oracles.plan.window_plan import WindowPlanOracle

    kw = dict(env=env, noise=spec.noise, noise_smoothing=spec.noise_smoothing)
    if spec.family == "cube":
        return {"cube": CubePlanOracle(**kw)}
    if spec.family == "scene":
        return {"cube": CubePlanOracle(**kw), "button": ButtonPlanOracle(**kw), "drawer": DrawerPlanOracle(**kw),
                "window": WindowPlanOracle(**kw)}
    if spec.family == "puzzle":
        return {"button": ButtonPlanOracle(gripper_always_closed=True, **kw)}
    raise ValueError(spec.family)  # a bug, not bad input: SPECS names only the families above


def _manipulation_episode(env, spec: GenSpec, rng: np.random.Generator, oracles: dict):
    p_stack = rng.uniform(*spec.p_stack) if spec.p_stack[1] > spec.p_stack[0] else spec.p_stack[0]
    ob, info = env.reset()
    oracle = oracles[info["privileged/target_task"]]
    oracle.reset(ob, info)
    keys = ["observations", "actions", "terminals", "qpos", "qvel"]
    if spec.family in ("scene", "puzzle"):
        keys.append("button_states")
    rows = {k: [] for k in keys}
    for step in range(spec.episode_length):
        action = np.clip(np.asarray(oracle.select_action(ob, info), dtype=np.float64), -1.0, 1.0)
        next_ob, _, terminated, truncated, info = env.step(action)
        done = terminated or truncated or step == spec.episode_length - 1
        if oracle.done:
            target_ob, target_info = env.unwrapped.set_new_target(p_stack=p_stack)
            oracle = oracles[target_info["privileged/target_task"]]
            oracle.reset(target_ob, target_info)
        rows["observations"].append(ob)
        rows["actions"].append(action)
        rows["terminals"].append(float(done))
        rows["qpos"].append(info["prev_qpos"])
        rows["qvel"].append(info["prev_qvel"])
        if "button_states" in rows:
            rows["button_states"].append(info["prev_button_states"])
        ob = next_ob
        if done:
            break
    return rows


def _run_episodes(args):
    """Worker: generate a list of episodes (split, index) and return their concatenated rows."""
    spec, seed, jobs = args
    import gymnasium
    import ogbench  # noqa: F401  (registers the envs)

    if spec.family == "pointmaze":
        env = gymnasium.make(spec.env_id, terminate_at_goal=False, max_episode_steps=spec.episode_length)
    else:
        env = gymnasium.make(spec.env_id, terminate_at_goal=False, mode="data_collection",
                             max_episode_steps=spec.episode_length)
        oracles = _make_oracles(env, spec)
    out = []
    for split, episode in jobs:
        ss = _episode_seed(seed, split, episode)
        np.random.seed(ss.generate_state(1)[0])  # OGBench's resets draw from the global numpy RNG
        env.reset(seed=int(ss.generate_state(1)[0]))
        rng = np.random.default_rng(ss)
        if spec.family == "pointmaze":
            rows = _pointmaze_episode(env, spec, rng)
        else:
            rows = _manipulation_episode(env, spec, rng, oracles)
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
    """Write `out_dir/NAME.npz` and `out_dir/NAME-val.npz` (and NAME.manifest.json last); returns paths, sizes and
    timing. One process at a time writes a dataset: another one writing the same NAME in `out_dir` is refused."""
    if name not in SPECS:
        raise UsageError(f"cannot generate {name!r} here; supported: {supported()}")
    with writing_data(os.path.expanduser(out_dir), name):
        return _generate(name, episodes, workers, seed, out_dir, progress)


def _generate(name, episodes, workers, seed, out_dir, progress) -> dict:
    if name not in SPECS:
        raise UsageError(f"cannot generate {name!r} here; supported: {supported()}")
    spec = SPECS[name]
    n_train = spec.episodes if episodes is None else int(episodes)
    if n_train < 1:
        raise UsageError(f"--episodes must be >= 1, got {n_train}")
    n_val = max(1, n_train // 10)
    jobs = [(0, i) for i in range(n_train)] + [(1, i) for i in range(n_val)]
    workers = max(1, min(int(workers), len(jobs)))
    chunk = max(1, min(10, len(jobs) // (workers * 4) or 1))
    batches = [(spec, seed, jobs[i : i + chunk]) for i in range(0, len(jobs), chunk)]

    start = time.time()
    results = {}
    parts = parallel_map(_run_episodes, batches, workers, desc=f"generate {name}", unit="ep", progress=progress,
                         total=len(jobs), weight=len)
    for part in parts:
        for split, episode, rows in part:
            results[(split, episode)] = rows

    out_dir = os.path.expanduser(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    manifest_file = manifest_path(os.path.join(out_dir, f"{name}.npz"))
    manifest = {"format": MANIFEST_FORMAT, "dataset": name, "generator": GENERATOR, "complete": False, "seed": seed,
                "episodes": {"train": n_train, "val": n_val}, "episode_length": spec.episode_length}
    atomic_write_json(manifest_file, manifest)  # until the last line below, the pair on disk is not trusted
    paths, files = {}, {}
    for split, suffix, count in ((1, "-val", n_val), (0, "", n_train)):
        eps = [results[(split, i)] for i in range(count)]
        arrays = {k: np.concatenate([e[k] for e in eps]) for k in eps[0]}
        arrays["observations"] = arrays["observations"].astype(np.float32)
        arrays["actions"] = arrays["actions"].astype(np.float32)
        arrays["terminals"] = arrays["terminals"].astype(np.float32)
        path = os.path.join(out_dir, f"{name}{suffix}.npz")  # OGBench: NAME.npz and NAME-val.npz
        atomic_write_npz(path, arrays)
        key = "val" if split else "train"
        paths[key] = path
        files[key] = {"name": os.path.basename(path), "episodes": count, "rows": len(arrays["terminals"]),
                      "transitions": len(arrays["terminals"]) - int(arrays["terminals"].sum()), **file_digest(path)}
    atomic_write_json(manifest_file, {**manifest, "complete": True, "files": files})
    elapsed = time.time() - start
    return {
        "name": name,
        "train_path": paths["train"],
        "val_path": paths["val"],
        "manifest_path": manifest_file,
        "train_episodes": n_train,
        "val_episodes": n_val,
        "steps": n_train * spec.episode_length,
        "bytes": os.path.getsize(paths["train"]) + os.path.getsize(paths["val"]),
        "seconds": elapsed,
        "workers": workers,
    }
