"""Throughput of every agent on this machine, printed as JSON.

Measures updates/s (batch 256) and action latency (batch 1 and 1024; K=1, and K=32 rejection sampling for the
agents with a critic to rank by) at small (3x128) and paper (4x512; DIPOLE 3x512) network sizes, the GFLOP/s an update reaches
(FLOPs counted by XLA's cost analysis), and next to it the peak of a plain 1024^3 float32 matmul measured in the
same run.

    python benchmarks/throughput.py [--agents dipole,dipole[critic=iql],bc,iql,ifql,fql,cfgrl,dipole-terms]
                                    [--sizes small,paper] [--seconds 5]

An agent may carry config fields, AGENT[FIELD=VALUE,...]; `dipole[critic=iql]` is DIPOLE's IQL-critic form (with its
own defaults). Every agent is listed by default, DIPOLE in both critic forms.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from dipole.agents import AGENTS, agent_spec, build_config, create_agent


def split_agents(text: str) -> list[str]:
    """'dipole,dipole[critic=iql,beta=3],fql' -> its agent specs (commas inside brackets stay)."""
    out, depth, cur = [], 0, ""
    for ch in text:
        depth += ch == "["
        depth -= ch == "]"
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    return [x.strip() for x in out + [cur] if x.strip()]


def timed(fn, seconds: float, min_iters: int = 3):
    fn()  # compile and warm up
    n, start = 0, time.perf_counter()
    while n < min_iters or time.perf_counter() - start < seconds:
        fn()
        n += 1
    return (time.perf_counter() - start) / n


def matmul_peak(seconds: float) -> float:
    a = jnp.ones((1024, 1024), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    dt = timed(lambda: f(a).block_until_ready(), seconds)
    return 2 * 1024**3 / dt / 1e9


def flops_of(jitted, *args) -> float | None:
    try:
        cost = jitted.lower(*args).compile().cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        return float(cost.get("flops", 0.0)) or None
    except Exception:
        return None


def bench_size(spec: str, name: str, obs_dim: int, action_dim: int, seconds: float) -> dict:
    agent_name, overrides = agent_spec(spec)
    agent_cls, _ = AGENTS[agent_name]
    config = build_config(agent_name, None, name, overrides)
    agent = create_agent(agent_cls, 0, np.zeros(obs_dim), np.zeros(action_dim), config)
    r = np.random.default_rng(0)
    b = config.batch_size
    batch = {
        "observations": jnp.asarray(r.normal(size=(b, obs_dim)), jnp.float32),
        "actions": jnp.asarray(r.uniform(-1, 1, (b, action_dim)), jnp.float32),
        "rewards": jnp.asarray(r.normal(size=b), jnp.float32),
        "masks": jnp.ones(b, jnp.float32),
        "next_observations": jnp.asarray(r.normal(size=(b, obs_dim)), jnp.float32),
    }
    if hasattr(config, "terms"):  # agents with a reward per term (dipole-terms) learn from those columns
        batch["term_rewards"] = jnp.asarray(r.normal(size=(b, len(config.terms))), jnp.float32)
    state = {"agent": agent}

    def step():
        state["agent"], info = state["agent"].update(batch)
        jax.block_until_ready(info)

    upd_dt = timed(step, seconds)
    update_flops = flops_of(type(agent).update, agent, batch)
    out = {
        "agent": spec,
        "size": name,
        "actor_hidden_dims": list(config.actor_hidden_dims),
        "value_hidden_dims": list(config.value_hidden_dims),
        "batch_size": b,
        "updates_per_s": 1.0 / upd_dt,
        "update_gflop": update_flops / 1e9 if update_flops else None,
        "update_gflop_per_s": update_flops / upd_dt / 1e9 if update_flops else None,
        "latency_ms": {},
    }
    for batch_obs in (1, 1024):
        obs = jnp.asarray(r.normal(size=(batch_obs, obs_dim)), jnp.float32)
        for k in (1, 32) if agent.samples_with("num_candidates") else (1,):
            key = jax.random.PRNGKey(0)
            dt = timed(lambda: agent.sample_actions(obs, key, num_candidates=k).block_until_ready(), seconds / 4)
            out["latency_ms"][f"batch{batch_obs}_K{k}"] = dt * 1e3
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__)
    every = ["dipole", "dipole[critic=iql]", *(a for a in AGENTS if a != "dipole")]
    p.add_argument("--agents", default=",".join(every),
                   help="comma-separated; AGENT[FIELD=VALUE] sets config fields")
    p.add_argument("--sizes", default="small,paper")
    p.add_argument("--obs-dim", type=int, default=29, help="observation width (cube-single-play has 28)")
    p.add_argument("--action-dim", type=int, default=5)
    p.add_argument("--seconds", type=float, default=5.0, help="time spent per measurement")
    args = p.parse_args()
    result = {
        "device": str(jax.devices()[0]),
        "backend": jax.default_backend(),
        "jax": jax.__version__,
        "machine": platform.machine(),
        "obs_dim": args.obs_dim,
        "action_dim": args.action_dim,
        "matmul_1024_gflop_per_s": matmul_peak(args.seconds / 2),
        "agents": [bench_size(a, s, args.obs_dim, args.action_dim, args.seconds)
                   for s in args.sizes.split(",") for a in split_agents(args.agents)],
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
