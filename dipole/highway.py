"""Driving with controllable trade-offs: highway-env with continuous actions, a multi-term reward, scripted drivers.

Environment names: `highway-fast-v0` (3 lanes, 20 cars, 30 s) or `highway-v0` (4 lanes, 50 cars, 40 s),
optionally with reward weights after a colon: `highway-fast-v0:speed=1,collision=20,offroad=5,lane=0.2`.
The policy acts at 5 Hz (one simulation step per action), so a 30 s episode has 150 steps. Actions in [-1, 1]^2
are (acceleration / 5 m/s^2, steering / 0.1 rad), highway-env's continuous action with its steering range narrowed
from +-pi/4 to +-0.1 rad: at highway speed lane keeping needs steering of a few hundredths of a radian, which
+-pi/4 would squeeze into the last percent of the action range (0.1 rad at 25 m/s already turns at 0.5 rad/s).

Observation (30 numbers, each scaled so that its typical spread is about 1; `OBS_NAMES` lists them):
- ego (6): lateral offset from the lane centre / 2 m, heading / 0.1 rad, (forward speed - 25) / 5 m/s,
  lateral speed / 2 m/s, and whether a lane exists to the left and to the right (1/0);
- for each of the lanes left / current / right and each of ahead / behind, the nearest car there (6 slots x 4):
  presence (1/0), bumper-to-bumper gap / 50 m (2 when absent), its speed minus ours / 5 m/s (0 when absent), and
  its lateral offset from that lane's centre / 2 m (a car cutting in shows here before it changes lane index).
highway-env's own Kinematics observation normalises positions by +-200 m and speeds by +-80 m/s, which squeezes the
gap to the car ahead and the ego speed into a few hundredths; this lane-structured layout states them in units a
small network resolves, and names the car ahead explicitly instead of "the 4 nearest by distance".

Reward, per step, as a weighted sum of terms (each term is logged on its own in evaluation):
- `speed`: progress, clip((forward speed - 20) / (30 - 20), 0, 1), weight `speed` (default 1);
- `collision`: -1 on the step the car crashes (the episode ends there), weight `collision` (default 100);
- `offroad`: -1 when the car leaves the road (the episode ends there), weight `offroad` (default 100);
- `lane`: -min(|lateral offset from the lane centre| / half a lane width, 1), weight `lane` (default 0.2).
A 30 s episode earns at most 150 from `speed`, so with the default weights a crash costs more than driving at full
speed could have earned: no policy that crashes can outscore a safe one by being fast.

Offline data (`dipole data highway`): episodes from scripted IDM/MOBIL-style drivers of graded assertiveness
(target speed, time headway, lane-change safety margin, action noise; the reckless ones crash). Rows hold the
unweighted terms too (`terms/speed`, ...), so the reward can be reweighted at load time without new data.
"""

from __future__ import annotations

import dataclasses
import os
import time

import numpy as np

TERMS = ("speed", "collision", "offroad", "lane")
DEFAULT_WEIGHTS = {"speed": 1.0, "collision": 100.0, "offroad": 100.0, "lane": 0.2}
BASE_ENVS = ("highway-fast-v0", "highway-v0")
SPEED_RANGE = (20.0, 30.0)
POLICY_HZ = 5
STEER_MAX = 0.1  # rad, steering at action 1
SLOTS = [f"{lane}_{where}" for lane in ("left", "same", "right") for where in ("ahead", "behind")]
OBS_NAMES = (["ego_lane_offset", "ego_heading", "ego_speed", "ego_lateral_speed", "left_lane_exists",
              "right_lane_exists"] + [f"{slot}_{f}" for slot in SLOTS for f in ("present", "gap", "rel_speed",
                                                                                  "lane_offset")])
OBS_DIM = len(OBS_NAMES)
GAP_SCALE, ABSENT_GAP = 50.0, 2.0


def parse_highway_name(name: str) -> tuple[str, dict]:
    """'highway-fast-v0:collision=5' -> ('highway-fast-v0', weights with collision 5)."""
    base, _, spec = name.partition(":")
    if base not in BASE_ENVS:
        raise ValueError(f"unknown highway environment {base!r}; available: {list(BASE_ENVS)} "
                         "(optionally ':speed=W,collision=W,offroad=W,lane=W')")
    weights = dict(DEFAULT_WEIGHTS)
    for item in filter(None, (s.strip() for s in spec.split(","))):
        key, eq, value = item.partition("=")
        if key not in weights or not eq:
            raise ValueError(f"{name!r}: reward weight {item!r} must be one of {list(TERMS)} as KEY=VALUE")
        try:
            weights[key] = float(value)
        except ValueError:
            raise ValueError(f"{name!r}: reward weight {key}={value!r} is not a number") from None
        if not np.isfinite(weights[key]) or weights[key] < 0:
            raise ValueError(f"{name!r}: reward weight {key} must be a finite number >= 0, got {value}")
    return base, weights


def env_config(base: str) -> dict:
    return {
        # highway-env's own observation is replaced by `observe` below; an empty attribute list costs nothing per step
        # (its Kinematics observation builds a pandas frame, about a quarter of a step's time)
        "observation": {"type": "AttributesObservation", "attributes": []},
        "action": {"type": "ContinuousAction", "steering_range": [-STEER_MAX, STEER_MAX]},
        "policy_frequency": POLICY_HZ,
        "simulation_frequency": 5 if base == "highway-fast-v0" else 15,
        "offroad_terminal": True,
        "reward_speed_range": list(SPEED_RANGE),
    }


def _import_highway():
    try:
        import highway_env  # noqa: F401  (registers the gymnasium ids)
    except ImportError:
        raise ImportError("the highway benchmark needs highway-env: pip install 'dipole-rl[highway]'") from None


class HighwayDriving:
    """gymnasium-style env: flat observations, our reward terms in info['terms'], episode stats at the end."""

    def __init__(self, name: str):
        _import_highway()
        import gymnasium as gym

        self.name = name
        self.base, self.weights = parse_highway_name(name)
        self.env = gym.make(self.base, config=env_config(self.base), disable_env_checker=True)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self._stats = None

    @property
    def unwrapped(self):
        return self.env.unwrapped

    @property
    def vehicle(self):
        return self.env.unwrapped.vehicle

    def reset(self, seed: int | None = None):
        _, info = self.env.reset(seed=seed)
        obs = self.observe()
        self._x0 = float(self.vehicle.position[0])
        self._stats = {"steps": 0, "speed_sum": 0.0, **{f"return_{t}": 0.0 for t in TERMS}}
        return obs, info

    def observe(self) -> np.ndarray:
        """The lane-structured observation described in the module docstring."""
        return observe(self.env.unwrapped)

    def raw_terms(self) -> dict:
        """Unweighted terms for the current state (after a step)."""
        v = self.vehicle
        fwd = float(v.speed * np.cos(v.heading))
        lane = v.lane
        lateral = abs(float(lane.local_coordinates(v.position)[1])) if lane is not None else 0.0
        width = float(lane.width_at(0)) if lane is not None else 4.0
        return {
            "speed": float(np.clip((fwd - SPEED_RANGE[0]) / (SPEED_RANGE[1] - SPEED_RANGE[0]), 0.0, 1.0)),
            "collision": -1.0 if v.crashed else 0.0,
            "offroad": 0.0 if v.on_road else -1.0,
            "lane": -min(lateral / (width / 2), 1.0),
        }

    def step(self, action):
        action = np.asarray(action, np.float32)
        if action.shape != (2,) or not np.all(np.isfinite(action)):
            raise ValueError(f"highway action must be 2 finite numbers (acceleration, steering), got {action}")
        if np.any(np.abs(action) > 1.0):
            raise ValueError(f"highway actions must lie in [-1, 1], got {action}")
        _, _, terminated, truncated, info = self.env.step(action)
        obs = self.observe()
        raw = self.raw_terms()
        terms = {t: self.weights[t] * raw[t] for t in TERMS}
        reward = float(sum(terms.values()))
        v = self.vehicle
        s = self._stats
        s["steps"] += 1
        s["speed_sum"] += float(v.speed * np.cos(v.heading))
        for t in TERMS:
            s[f"return_{t}"] += terms[t]
        info = {"speed": float(v.speed), "crashed": bool(v.crashed), "raw_terms": raw, "terms": terms}
        if terminated or truncated:
            info["episode_stats"] = {
                "collision": float(v.crashed), "offroad": float(not v.on_road),
                "failure": float(v.crashed or not v.on_road),
                "mean_speed": s["speed_sum"] / s["steps"], "distance": float(v.position[0]) - self._x0,
                **{f"return_{t}": s[f"return_{t}"] for t in TERMS},
            }
        return obs, reward, bool(terminated), bool(truncated), info

    def close(self):
        self.env.close()


def observe(base_env) -> np.ndarray:
    road, v = base_env.road, base_env.vehicle
    network, lane_index = road.network, v.lane_index
    lane = network.get_lane(lane_index)
    s_ego, lateral = lane.local_coordinates(v.position)
    heading = (v.heading - lane.heading_at(s_ego) + np.pi) % (2 * np.pi) - np.pi
    fwd, side = v.speed * np.cos(heading), v.speed * np.sin(heading)
    n_lanes = len(network.graph[lane_index[0]][lane_index[1]])
    out = [lateral / 2.0, heading / 0.1, (fwd - 25.0) / 5.0, side / 2.0, float(lane_index[2] > 0),
           float(lane_index[2] < n_lanes - 1)]
    for offset in (-1, 0, 1):
        lane_id = lane_index[2] + offset
        if not 0 <= lane_id < n_lanes:
            out += [0.0, ABSENT_GAP, 0.0, 0.0] * 2
            continue
        li = (lane_index[0], lane_index[1], lane_id)
        other_lane = network.get_lane(li)
        s_here = other_lane.local_coordinates(v.position)[0]
        for car in road.neighbour_vehicles(v, li):  # (ahead, behind)
            if car is None:
                out += [0.0, ABSENT_GAP, 0.0, 0.0]
                continue
            s_car, lat_car = other_lane.local_coordinates(car.position)
            gap = abs(s_car - s_here) - (v.LENGTH + car.LENGTH) / 2
            out += [1.0, min(gap / GAP_SCALE, ABSENT_GAP), (car.speed - v.speed) / 5.0, lat_car / 2.0]
    return np.clip(np.asarray(out, np.float32), -10.0, 10.0)


def make_highway_env(name: str) -> HighwayDriving:
    return HighwayDriving(name)


# ------------------------------------------------------------------------------------------------ scripted drivers
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


# ------------------------------------------------------------------------------------------------ data
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
    from dipole.utils import atomic_write_npz, parallel_map

    base, _ = parse_highway_name(name)
    if episodes < len(DRIVERS):
        raise ValueError(f"--episodes must be >= {len(DRIVERS)} (one per scripted driver), got {episodes}")
    chunk = max(1, min(8, episodes // (max(workers, 1) * 4) or 1))
    jobs = [(base, seed, list(range(i, min(i + chunk, episodes)))) for i in range(0, episodes, chunk)]
    start = time.time()
    parts = parallel_map(_collect, jobs, workers, desc=f"drive {base}", unit="ep", progress=progress,
                         total=episodes, weight=len)
    eps = [e for part in parts for e in part]
    arrays = {k: np.concatenate([e[k] for e in eps]) for k in eps[0]}
    path = os.path.join(os.path.expanduser(out_dir), f"{base}.npz")
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


def load_highway(name: str, dataset_path: str | None = None, clip_actions: bool = False):
    """-> Dataset with rewards from the terms under the weights in `name`; masks 0 only on crash/off-road ends."""
    from dipole.data.dataset import Dataset, DatasetError

    base, weights = parse_highway_name(name)
    path = os.path.expanduser(dataset_path or os.path.join("~/.dipole/highway", f"{base}.npz"))
    if not os.path.exists(path):
        raise FileNotFoundError(f"highway dataset {path} not found; make it with `dipole data highway`")
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    needed = [f"terms/{t}" for t in TERMS] + ["terminated", "observations", "actions", "next_observations"]
    missing = [k for k in needed if k not in arrays]
    if missing:
        raise DatasetError(f"{path}: missing key(s) {missing}; remake it with `dipole data highway`")
    arrays["rewards"] = sum(weights[t] * arrays[f"terms/{t}"] for t in TERMS).astype(np.float32)
    arrays["masks"] = 1.0 - arrays["terminated"]
    return Dataset(arrays, name=path, clip_actions=clip_actions, obs_shape=(OBS_DIM,), action_dim=2)


def evaluate_driver(driver: Driver, env_name: str, episodes: int, seed: int = 0, num_envs: int = 16) -> dict:
    """A scripted driver under the same evaluation as the agents (same seeds, same stats)."""
    from dipole.evaluation import run_episodes

    envs = [HighwayDriving(env_name) for _ in range(min(episodes, num_envs))]
    states = [{} for _ in envs]
    rng = np.random.default_rng(seed)

    def act(obs, _key):
        return np.stack([driver_action(driver, e, s, rng) if e.vehicle is not None else np.zeros(2, np.float32)
                         for e, s in zip(envs, states)])

    out = run_episodes(act, env_name, episodes, seed=seed, envs=envs)
    out["driver"] = driver.name
    return out
