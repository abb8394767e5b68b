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

Scripted drivers and `dipole data highway` live in `dipole.datagen.highway`; the loader in `dipole.data.highway`.
"""

from __future__ import annotations

import numpy as np

from dipole.errors import MissingDependencyError, UsageError

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
        raise UsageError(f"unknown highway environment {base!r}; available: {list(BASE_ENVS)} "
                         "(optionally ':speed=W,collision=W,offroad=W,lane=W')")
    weights = dict(DEFAULT_WEIGHTS)
    for item in filter(None, (s.strip() for s in spec.split(","))):
        key, eq, value = item.partition("=")
        if key not in weights or not eq:
            raise UsageError(f"{name!r}: reward weight {item!r} must be one of {list(TERMS)} as KEY=VALUE")
        try:
            weights[key] = float(value)
        except ValueError:
            raise UsageError(f"{name!r}: reward weight {key}={value!r} is not a number") from None
        if not np.isfinite(weights[key]) or weights[key] < 0:
            raise UsageError(f"{name!r}: reward weight {key} must be a finite number >= 0, got {value}")
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
        raise MissingDependencyError("the highway benchmark needs highway-env: pip install -e '.[highway]'") from None


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
            raise UsageError(f"highway action must be 2 finite numbers (acceleration, steering), got {action}")
        if np.any(np.abs(action) > 1.0):
            raise UsageError(f"highway actions must lie in [-1, 1], got {action}")
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
