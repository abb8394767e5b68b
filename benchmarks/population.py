"""Populations against single runs on this machine, printed as JSON: one object per (size, agent).

A single run (`dipole.runners.offline.train_chunk`, one agent's scan of updates) and a population of tasks x seeds
members (`dipole.runners.population.population_chunk`, what `dipole train` and `dipole bench` compile; a single
run is its one-member case) update on the same synthetic data, shaped like OGBench's cube-double (40-dim observations,
5-dim actions, 5 tasks' reward columns). Each is compiled first, then timed for --seconds.

    single_updates_per_s       updates per second of one run alone
    population_updates_per_s   member-updates per second of the whole population (members x updates / s)
    speedup                    population_updates_per_s / single_updates_per_s: how much faster one program
                               trains all members than training them one after another
JAX gets one CPU device per core, as the CLI gives it; the population is split over the devices.

    python benchmarks/population.py [--sizes small,paper] [--agents dipole,dipole[critic=iql]] [--tasks 5]
                                    [--seeds 2] [--seconds 10] [--skip-single]

An agent may carry config fields, AGENT[FIELD=VALUE,...]: `dipole[critic=iql]` is DIPOLE's IQL-critic form with that
form's defaults, the size preset applied after them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

from dipole.runners.devices import use_cpu_cores

use_cpu_cores()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from dipole.agents import agent_spec, build_config, create_agent, get_agent  # noqa: E402
from dipole.runners.devices import member_mesh, pad_members, place_members, population_memory  # noqa: E402
from dipole.runners.offline import train_chunk  # noqa: E402
from dipole.runners.population import create_members, members_of, population_chunk, unstack  # noqa: E402
from dipole.seeding import stream_key  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from throughput import matmul_peak, split_agents  # noqa: E402


def rate(fn, state, updates_per_call: int, seconds: float, start_at: float | None = None):
    """Calls of fn(state) -> state until `seconds` pass (at least 2) -> (calls x updates_per_call / s, state, whether
    the warm-up ended after `start_at`).
    `start_at` (a time.time()): wait for it after the warm-up, so that processes started together time together."""
    state = jax.block_until_ready(fn(state))  # warm up
    late = start_at is not None and time.time() > start_at
    if start_at is not None:
        time.sleep(max(0.0, start_at - time.time()))
    n, start = 0, time.perf_counter()
    while n < 2 or time.perf_counter() - start < seconds:
        state = fn(state)
        n += 1
    jax.block_until_ready(state)
    return n * updates_per_call / (time.perf_counter() - start), state, late


def measure(spec: str, size: str, tasks: int, seeds: int, rows: int, chunk: int, seconds: float,
            single_run: bool = True, start_at: float | None = None) -> dict:
    agent_name, overrides = agent_spec(spec)
    agent_cls, _ = get_agent(agent_name)
    config = build_config(agent_name, None, size, overrides)
    r = np.random.default_rng(0)
    obs_dim, act_dim = 40, 5
    data = {"observations": r.normal(size=(rows, obs_dim)).astype(np.float32),
            "actions": r.uniform(-1, 1, (rows, act_dim)).astype(np.float32),
            "next_observations": r.normal(size=(rows, obs_dim)).astype(np.float32),
            "rewards": -(r.uniform(size=(rows, tasks)) > 0.1).astype(np.float32),
            "masks": np.ones((rows, tasks), np.float32)}

    # one run alone, on the first device, as `dipole train` runs it
    single = {**{k: data[k] for k in ("observations", "actions", "next_observations")},
              "rewards": data["rewards"][:, 0], "masks": data["masks"][:, 0]}
    single_rate = single_compile = None
    if single_run:
        single = jax.device_put(single)
        agent = create_agent(agent_cls, 0, data["observations"][:1], data["actions"][:1], config)
        key = stream_key(0, "data")
        t0 = time.perf_counter()
        step = train_chunk.lower(agent, single, key, chunk, config.batch_size).compile()
        single_compile = time.perf_counter() - t0
        single_rate, _, _ = rate(lambda a: step(a, single, key)[0], agent, chunk, seconds)

    # the population: tasks x seeds members split over the devices, as `dipole train --seeds` / `dipole bench`
    members = members_of([f"task{i}" for i in range(tasks)], range(seeds))
    mesh, padded = member_mesh(len(members))
    agents = create_members(agent_name, config, members, data["observations"][:1], data["actions"][:1])
    memory = population_memory(unstack(agents, 0), padded, sum(v.nbytes for v in data.values()), config.batch_size,
                               1 if mesh is None else mesh.size)
    keys = jnp.stack([stream_key(m.seed, "data") for m in members])
    task_idx = jnp.asarray([int(m.task[4:]) for m in members], jnp.int32)
    agents, keys, task_idx = (place_members(pad_members(x, padded), mesh, split=True) for x in (agents, keys, task_idx))
    dev_data = place_members(data, mesh, split=False)
    t0 = time.perf_counter()
    pstep = population_chunk.lower(agents, dev_data, keys, task_idx, chunk, config.batch_size).compile()
    pop_compile = time.perf_counter() - t0
    pop_rate, _, late = rate(lambda a: pstep(a, dev_data, keys, task_idx)[0], agents, chunk, seconds, start_at)
    pop_rate *= len(members)  # member-updates (padding members are not counted)
    return {
        "agent": spec, "config": {k: v for k, v in config.to_dict().items() if k in ("critic", "discount", "beta")
                                  or k in overrides}, "size": size, "actor_hidden_dims": list(config.actor_hidden_dims),
        "batch_size": config.batch_size, "dataset_rows": rows, "updates_per_call": chunk,
        "single_updates_per_s": single_rate and round(single_rate, 1),
        "population_size": len(members), "population_tasks": tasks, "population_seeds": seeds,
        "population_padded_to": padded, "population_devices": 1 if mesh is None else mesh.size,
        "population_updates_per_s": round(pop_rate, 1),
        "speedup": single_rate and round(pop_rate / single_rate, 2),
        "compile_s": {"single": single_compile and round(single_compile, 1), "population": round(pop_compile, 1)},
        "population_memory_estimate_gib": round(memory["total_bytes"] / 2**30, 3),
        **({"timed_from": start_at, "started_late": late} if start_at is not None else {}),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="small,paper")
    p.add_argument("--agents", default="dipole", help="comma-separated; AGENT[FIELD=VALUE] sets config fields")
    p.add_argument("--tasks", type=int, default=5, help="tasks (reward columns) in the population")
    p.add_argument("--seeds", type=int, default=2, help="seeds per task")
    p.add_argument("--rows", type=int, default=100_000, help="transitions in the synthetic dataset")
    p.add_argument("--chunk", type=int, default=100, help="updates per compiled call (as --log-every)")
    p.add_argument("--seconds", type=float, default=10.0, help="time spent per measurement")
    p.add_argument("--skip-single", action="store_true", help="time the population only (no single run)")
    p.add_argument("--start-at", type=float, default=None,
                   help="unix time at which the population's timing starts (after compiling): processes started "
                        "together with the same value share the machine over the same window")
    args = p.parse_args()
    specs = split_agents(args.agents)
    for spec in specs:
        agent_spec(spec)  # refuse a typo before any measurement
    devices = jax.devices()
    head = {"device": str(devices[0]), "device_kind": devices[0].device_kind, "devices": len(devices),
            "backend": jax.default_backend(), "jax": jax.__version__, "machine": platform.machine(),
            "cpu_cores": os.cpu_count(), "matmul_1024_gflop_per_s": round(matmul_peak(min(2.0, args.seconds)), 1)}
    for size in args.sizes.split(","):
        for spec in specs:
            print(json.dumps({**head, **measure(spec, size, args.tasks, args.seeds, args.rows, args.chunk,
                                                args.seconds, not args.skip_single, args.start_at)}), flush=True)



if __name__ == "__main__":
    main()
