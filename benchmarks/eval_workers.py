"""How fast a population's evaluation environments step in this process and in worker processes, printed as JSON:
one object per number of workers.

A population's evaluation steps every member's environments once per policy call; for OGBench's manipulation tasks
the step itself (MuJoCo) is most of an evaluation's time. This times `--steps` steps of `--members` members x
`--envs` environments each of one task, with fixed random actions (no policy), stepped in this process (workers 1)
and by `dipole.runners.evaluation.EvalWorkers` (the processes `dipole bench --workers N` uses).

    env_step_ms       one environment step, stepped in this process (the members' steps / time)
    steps_per_s       steps of all members' environments per second (one step = members x envs env steps)
    speedup           steps_per_s / that of workers 1

    python benchmarks/eval_workers.py [--task scene-play-singletask-task1-v0] [--members 20] [--envs 1]
                                      [--workers 1 2] [--steps 50]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from dipole.runners.evaluation import EvalWorkers, _LocalGroup, close_eval_envs, make_eval_envs


def _time(group, members: int, envs: int, action_dim: int, steps: int) -> float:
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (steps, members, envs, action_dim)).astype(np.float32)
    active = np.ones((members, envs), bool)
    group.reset(0)
    group.step(actions[0], active)  # warm: first step of every env
    t0 = time.perf_counter()
    for a in actions:
        group.step(a, active)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="scene-play-singletask-task1-v0")
    ap.add_argument("--members", type=int, default=20)
    ap.add_argument("--envs", type=int, default=1, help="environments per member")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    ap.add_argument("--steps", type=int, default=50, help="steps timed (episodes end later than this)")
    args = ap.parse_args()
    seeds = list(range(args.members))
    base = None
    for workers in args.workers:
        if workers <= 1:
            envs = [make_eval_envs(args.task, args.envs, args.envs) for _ in seeds]
            group = _LocalGroup(envs, seeds)
        else:
            envs = EvalWorkers([(args.task, args.envs)] * args.members, workers)
            group = envs.start(seeds)
        try:
            probe = make_eval_envs(args.task, 1, 1)[0]
            action_dim = probe.action_space.shape[0]
            probe.close()
            seconds = _time(group, args.members, args.envs, action_dim, args.steps)
        finally:
            close_eval_envs(envs)
        rate = args.steps / seconds
        base = base or (rate if workers <= 1 else None)
        out = {"task": args.task, "members": args.members, "envs_per_member": args.envs, "workers": workers,
               "steps": args.steps, "seconds": round(seconds, 3), "steps_per_s": round(rate, 2),
               "speedup": round(rate / base, 2) if base else None, "cpus": os.cpu_count(),
               "machine": platform.processor() or platform.machine()}
        if workers <= 1:
            out["env_step_ms"] = round(1e3 * seconds / (args.steps * args.members * args.envs), 3)
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
