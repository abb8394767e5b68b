"""Offline driving data: episodes from scripted IDM/MOBIL-style drivers of graded assertiveness.

Drivers differ in target speed, time headway, lane-change safety margin and action noise; the reckless ones crash,
the distracted one has lapses of attention. Rows hold the unweighted reward terms too (`terms/speed`, ...), so the
reward can be reweighted at load time (`dipole.data.highway.load_highway`) without new data.
"""

from __future__ import annotations

import dataclasses
import os
import time

import numpy as np

from dipole.envs.highway import (
    DEFAULT_WEIGHTS,
    STEER_MAX,
    TERMS,
    HighwayDriving,
    parse_highway_name,
)
from dipole.errors import UsageError
from dipole.runfolder import writing_data
from dipole.storage import atomic_write_npz


@dataclasses.dataclass(frozen=True)
class Driver:
    """An IDM car-follower with MOBIL-style lane changes and a lane-keeping steering controller."""

    name: str
    target_speed: float  # m/s
    headway: float  # desired time gap T (s)
    min_gap: float  # jam distance s0 (m)
    max_accel: float = 3.0  # a (m/s^2)
    comfort_brake: float = 5.0  # b (m/s^2)
    lane_change_gain: float = 0.2  # MOBIL threshold on acceleration gain (m/s^2)
    safe_brake: float = 4.0  # MOBIL: the new follower may be made to brake at most this hard (m/s^2)
    noise: float = 0.05  # std of Gaussian noise on the acceleration action
    steer_noise: float = 0.04  # std of Gaussian noise on the steering action (1 unit = STEER_MAX rad)
    lapse_rate: float = 0.0  # per-step probability of a lapse of attention: the car ahead is ignored for a while
    lapse_steps: tuple = (10, 30)  # a lapse lasts this many policy steps (uniform, inclusive): 2-6 s at 5 Hz
    lapse_drift: float = 0.0  # during a lapse the wheel is held at N(0, lapse_drift^2) (action units), no lane keeping


DRIVERS = (
    Driver("cautious", target_speed=21.0, headway=2.0, min_gap=10.0, lane_change_gain=1.0, safe_brake=2.0, noise=0.05,
           steer_noise=0.04),
    Driver("normal", target_speed=25.0, headway=1.4, min_gap=6.0, noise=0.1, steer_noise=0.08),
    Driver("assertive", target_speed=30.0, headway=0.6, min_gap=3.0, lane_change_gain=0.1, safe_brake=6.0,
           noise=0.15, steer_noise=0.15),
    Driver("reckless", target_speed=36.0, headway=0.1, min_gap=0.5, max_accel=5.0, comfort_brake=1.0,
           lane_change_gain=0.0, safe_brake=50.0, noise=0.5, steer_noise=0.3),
    # drives like `normal` but faster and now and then stops paying attention for 2-6 s: ignores the car ahead and lets
    # the wheel drift. Many near misses, lane departures and recoveries, and rear-end crashes and road exits: the
    # same situations with and without a reaction, which is what a critic needs to learn what a crash costs
    Driver("distracted", target_speed=34.0, headway=1.2, min_gap=5.0, noise=0.1, steer_noise=0.08,
           lapse_rate=0.02, lapse_steps=(10, 30), lapse_drift=0.03),
)
DRIVER_NAMES = tuple(d.name for d in DRIVERS)
DEFAULT_DATA_EPISODES = 100 * len(DRIVERS)  # `dipole data highway` and the trade-off benchmark


def _idm(driver: Driver, speed: float, front, gap: float | None) -> float:
    accel = driver.max_accel * (1.0 - (max(speed, 0.0) / driver.target_speed) ** 4)
    if front is not None and gap is not None:
        dv = speed - front.speed
        s_star = driver.min_gap + max(0.0, speed * driver.headway + speed * dv / (2 * np.sqrt(
            driver.max_accel * driver.comfort_brake)))
        accel -= driver.max_accel * (s_star / max(gap, 0.5)) ** 2
    return accel


def _gap(lane, a_pos, b_pos, length=5.0) -> float:
    return float(lane.local_coordinates(b_pos)[0] - lane.local_coordinates(a_pos)[0] - length)


def driver_action(driver: Driver, env: HighwayDriving, state: dict, rng: np.random.Generator) -> np.ndarray:
    """One action for the ego car; `state` keeps the driver's chosen target lane between steps."""
    base = env.unwrapped
    road, v = base.road, base.vehicle
    lane_index = v.lane_index
    if state.get("vehicle") is not v:  # a new episode: forget the previous target lane
        state.clear()
        state["vehicle"] = v
    target = state.get("target_lane", lane_index)
    if target[:2] != lane_index[:2]:
        target = lane_index
    network = road.network

    def accel_in(li):
        front, rear = road.neighbour_vehicles(v, li)
        lane = network.get_lane(li)
        gap = None if front is None else _gap(lane, v.position, front.position)
        return _idm(driver, v.speed, front, gap), rear, lane

    # MOBIL: move to a side lane when the gain beats the threshold and the new follower need not brake too hard
    lane_now = network.get_lane(lane_index)
    centred = abs(lane_now.local_coordinates(v.position)[1]) < 0.5
    if target == lane_index and centred:
        a_here = accel_in(lane_index)[0]
        best, best_gain = None, driver.lane_change_gain
        for li in network.side_lanes(lane_index):
            a_there, rear, lane = accel_in(li)
            if rear is not None:
                rear_gap = _gap(lane, rear.position, v.position)
                rear_accel = _idm(Driver("f", 25.0, 1.0, 2.0), rear.speed, v, rear_gap)
                if rear_gap < 0 or rear_accel < -driver.safe_brake:
                    continue
            if a_there - a_here > best_gain:
                best, best_gain = li, a_there - a_here
        if best is not None:
            target = best
    state["target_lane"] = target

    lapse = state.get("lapse", 0)
    if lapse == 0 and driver.lapse_rate > 0 and rng.random() < driver.lapse_rate:
        lapse = int(rng.integers(driver.lapse_steps[0], driver.lapse_steps[1] + 1))
        state["drift"] = float(rng.normal(0.0, driver.lapse_drift)) if driver.lapse_drift > 0 else None
    state["lapse"] = max(lapse - 1, 0)
    if lapse:  # not looking: accelerate towards the target speed as on an empty road
        accel = _idm(driver, v.speed, None, None)
    else:
        accel = accel_in(lane_index)[0]
        if target != lane_index:  # also keep a safe distance to the car ahead in the target lane
            accel = min(accel, accel_in(target)[0])
    lane = network.get_lane(target)
    s, lateral = lane.local_coordinates(v.position)
    lane_heading = lane.heading_at(s + max(v.speed, 1.0) * 0.2)
    desired = lane_heading + np.clip(np.arctan(-lateral / max(v.speed, 1.0)), -0.15, 0.15)  # lateral: ~1 s
    heading_error = (desired - v.heading + np.pi) % (2 * np.pi) - np.pi
    steering = v.LENGTH * heading_error / (max(v.speed, 1.0) * 0.5) / STEER_MAX  # close the error in ~0.5 s
    if lapse and state.get("drift") is not None:  # not looking: the wheel stays where it drifted
        steering = state["drift"]
    action = np.array([accel / 5.0, steering]) + rng.normal(0.0, 1.0, 2) * [driver.noise,
                                                                                            driver.steer_noise]
    return np.clip(action, -1.0, 1.0).astype(np.float32)


def _episode_seed(seed: int, episode: int) -> int:
    return int(np.random.SeedSequence([seed, 31337, episode]).generate_state(1)[0] % 2**31)


def _collect(args):
    name, seed, episodes = args
    env = HighwayDriving(name)
    rows = []
    for ep in episodes:
        driver = DRIVERS[ep % len(DRIVERS)]
        rng = np.random.default_rng([seed, ep])
        obs, _ = env.reset(seed=_episode_seed(seed, ep))
        state, ep_rows = {}, {k: [] for k in ("observations", "actions", "next_observations", "terminated",
                                              "speed", *[f"terms/{t}" for t in TERMS])}
        done = False
        while not done:
            action = driver_action(driver, env, state, rng)
            next_obs, _, terminated, truncated, info = env.step(action)
            for k, val in (("observations", obs), ("actions", action), ("next_observations", next_obs),
                           ("terminated", float(terminated)), ("speed", info["speed"])):
                ep_rows[k].append(val)
            for t in TERMS:
                ep_rows[f"terms/{t}"].append(info["raw_terms"][t])
            obs, done = next_obs, terminated or truncated
        n = len(ep_rows["actions"])
        out = {k: np.asarray(v, np.float32) for k, v in ep_rows.items()}
        out["terminals"] = np.zeros(n, np.float32)
        out["terminals"][-1] = 1.0
        out["driver"] = np.full(n, ep % len(DRIVERS), np.int8)
        out["episode"] = np.full(n, ep, np.int32)
        rows.append(out)
    env.close()
    return rows


def generate_highway(name: str = "highway-fast-v0", episodes: int = DEFAULT_DATA_EPISODES, workers: int = 1, seed: int = 0,
                     out_dir: str = "~/.dipole/highway", progress: bool = True) -> dict:
    """Write `out_dir/BASE.npz`: episodes cycling through the scripted drivers, rows in the library's format."""
    from dipole.datagen.pool import parallel_map

    base, _ = parse_highway_name(name)
    if episodes < len(DRIVERS):
        raise UsageError(f"the number of driving episodes (--episodes; --data-episodes in the benchmark scripts) "
                         f"must be >= {len(DRIVERS)}, one per scripted driver; got {episodes}")
    out_dir = os.path.expanduser(out_dir)
    with writing_data(out_dir, base):  # one writer per file, for the whole generation
        chunk = max(1, min(8, episodes // (max(workers, 1) * 4) or 1))
        jobs = [(base, seed, list(range(i, min(i + chunk, episodes)))) for i in range(0, episodes, chunk)]
        start = time.time()
        parts = parallel_map(_collect, jobs, workers, desc=f"drive {base}", unit="ep", progress=progress,
                             total=episodes, weight=len)
        eps = [e for part in parts for e in part]
        arrays = {k: np.concatenate([e[k] for e in eps]) for k in eps[0]}
        path = os.path.join(out_dir, f"{base}.npz")
        atomic_write_npz(path, arrays)
        return {"name": base, "path": path, "episodes": episodes, "transitions": int(len(arrays["actions"])),
                "bytes": os.path.getsize(path), "seconds": time.time() - start, "workers": min(workers, len(jobs)),
                "drivers": driver_table(arrays)}


def driver_table(arrays: dict, weights: dict | None = None) -> list[dict]:
    """Per scripted driver in a dataset: episodes, collision rate, mean speed, return under `weights`."""
    weights = weights or DEFAULT_WEIGHTS
    rewards = sum(weights[t] * arrays[f"terms/{t}"] for t in TERMS)
    out = []
    for d, drv in enumerate(DRIVERS):
        sel = arrays["driver"] == d
        if not sel.any():
            continue
        ends = sel & (arrays["terminals"] == 1)
        ep_ids = arrays["episode"][sel]
        returns = [float(rewards[arrays["episode"] == e].sum()) for e in np.unique(ep_ids)]
        out.append({"driver": drv.name, "episodes": int(ends.sum()),
                    "collision_rate": float((arrays["terms/collision"][sel] < 0).sum() / ends.sum()),
                    "mean_speed": float(arrays["speed"][sel].mean()), "return": float(np.mean(returns))})
    return out
