"""Candidate selection on a 2-D bandit whose critic is learned from rewards: does `selection='tilt'` sample DIPOLE's
closed-form target mu·sigmoid(beta G)·exp(omega·beta·G) as K grows? Prints JSON and a markdown table.

Setting (tests/oracles.py): one state, behaviour mu = three Gaussian modes (std 0.15) in [-1, 1]^2, reward
r(a) = 0.5 sin(3 a0) + 0.5 a1 - 0.5 a1^2, masks 0 (so Q = r and V = the expectile of r); beta 2, 20 Euler steps.
A DIPOLE agent is trained from the rewards alone (no advantage is given). Per (omega, K) and selection rule, the mean
of the agent's own G over its actions is compared with the same mean under the closed form computed on a grid
with that G; `true_adv` is the mean of the true advantage r(a) - expectile(r).

    python benchmarks/bandit_tilt.py [--updates 6000] [--states 4000]
"""

import argparse
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import oracles as analysis  # noqa: E402  (tests/oracles.py: the bandit and its closed forms)

from dipole import DIPOLEAgent, DIPOLEConfig  # noqa: E402
from dipole.runners.offline import train_chunk  # noqa: E402

BETA, FLOW_STEPS, EXPECTILE = 2.0, 20, 0.7


def train_bandit_agent(updates: int, seed: int = 0, hidden=(64, 64, 64)):
    data = analysis.bandit2d_transitions(200_000, seed=0)
    config = DIPOLEConfig(actor_hidden_dims=hidden, value_hidden_dims=(64, 64), beta=BETA, lr=1e-3,
                          batch_size=512, flow_steps=FLOW_STEPS, expectile=EXPECTILE)
    agent = DIPOLEAgent.create(seed, data["observations"][:1], data["actions"][:1], config)
    agent, _ = train_chunk(agent, jax.device_put(data), jax.random.PRNGKey(seed + 1), updates, config.batch_size)
    return agent


_advantage = jax.jit(lambda agent, obs, actions: agent.sampling_advantage(obs, actions))


def learned_advantage(agent, actions: np.ndarray) -> np.ndarray:
    obs = jnp.zeros((len(actions), 1))
    return np.asarray(_advantage(agent, obs, jnp.asarray(actions, jnp.float32)))


def closed_form(agent, omega: float, grid=None) -> dict:
    """Mean of the agent's G, and of the true advantage, under mu·sigmoid(beta G)·exp(omega beta G) on a grid."""
    grid = analysis.grid_2d() if grid is None else grid
    mu = analysis.bandit2d_density(grid)
    g = learned_advantage(agent, grid)
    p = analysis.tilted_density(mu, g, BETA, omega)
    return {"adv": float((p * g).sum()), "true_adv": float((p * true_advantage(grid, mu)).sum())}


def true_advantage(actions, mu_grid=None):
    grid = analysis.grid_2d()
    mu = analysis.bandit2d_density(grid)
    v = analysis.expectile(analysis.reward_2d(grid), mu, EXPECTILE)
    return analysis.reward_2d(actions) - v


def measure(agent, omega: float, k: int, selection: str, states: int, seed: int = 3) -> dict:
    obs = jnp.zeros((states, 1))
    a = np.asarray(agent.sample_actions(obs, jax.random.PRNGKey(seed), omega=omega, num_candidates=k,
                                        selection=selection))
    row = {"omega": omega, "num_candidates": k, "selection": selection if k > 1 else None,
           "adv": float(learned_advantage(agent, a).mean()), "true_adv": float(true_advantage(a).mean())}
    if selection == "tilt" and k > 1:
        ess = np.asarray(agent.candidates(obs[:500], jax.random.PRNGKey(seed), jnp.float32(omega), k)["tilt_ess"])
        row["ess"] = float(ess.mean())
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--updates", type=int, default=6000)
    ap.add_argument("--states", type=int, default=4000)
    args = ap.parse_args()
    agent = train_bandit_agent(args.updates)
    grid = analysis.grid_2d()
    mu = analysis.bandit2d_density(grid)
    critic_error = float((mu * np.abs(learned_advantage(agent, grid) - true_advantage(grid))).sum())
    rows = []
    for omega in (0.5, 1.0, 2.0, 3.0):
        target = closed_form(agent, omega, grid)
        rows.append({"omega": omega, "closed_form": target,
                     "guided_k1": measure(agent, omega, 1, "argmax", args.states),
                     "tilt": [measure(agent, omega, k, "tilt", args.states) for k in (4, 16, 64, 256)],
                     "argmax_k32": measure(agent, omega, 32, "argmax", args.states)})
    out = {"updates": args.updates, "beta": BETA, "expectile": EXPECTILE, "states": args.states,
           "critic_mean_abs_error_under_mu": critic_error, "rows": rows}
    print(json.dumps(out, indent=1))
    print("| omega | closed form | guided ODE (K 1) | tilt K 4 | K 16 | K 64 | K 256 | ESS at K 4/16/64/256 | "
          "argmax K 32 |")
    print("|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    for r in rows:
        tilt = " | ".join(f"{t['adv']:.3f}" for t in r["tilt"])
        ess = " / ".join(f"{t['ess']:.1f}" for t in r["tilt"])
        print(f"| {r['omega']:g} | {r['closed_form']['adv']:.3f} | {r['guided_k1']['adv']:.3f} | {tilt} | {ess} | "
              f"{r['argmax_k32']['adv']:.3f} |")


if __name__ == "__main__":
    main()
