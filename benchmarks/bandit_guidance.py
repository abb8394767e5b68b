"""What DIPOLE's guided sampler draws on a bandit with a closed-form target; prints JSON and a markdown table.

Same setting as tests/test_bandit.py: mu = 0.5 N(-0.5, 0.2^2) + 0.5 N(0.5, 0.2^2) on [-1, 1], A(a) = a, beta = 2,
20 Euler steps. Columns: mean advantage under the closed form mu·sigmoid(beta A)·exp(omega beta A), under the
guided ODE with exact velocity fields, and under a DIPOLE agent trained for 4000 updates.

    python benchmarks/bandit_guidance.py
"""

import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import oracles as analysis  # noqa: E402  (tests/oracles.py: exact reference flows, a test oracle)

from dipole import DIPOLEAgent, DIPOLEConfig  # noqa: E402
from dipole.runners.offline import train_chunk  # noqa: E402

BETA, FLOW_STEPS = 2.0, 20


def main():
    data = analysis.bandit_transitions(200_000, seed=0)
    config = DIPOLEConfig(actor_hidden_dims=(64, 64, 64), value_hidden_dims=(16,), beta=BETA, lr=1e-3,
                          batch_size=512, flow_steps=FLOW_STEPS)
    agent = DIPOLEAgent.create(0, data["observations"][:1], data["actions"][:1], config)
    agent, _ = train_chunk(agent, jax.device_put(data), jax.random.PRNGKey(1), 4000, config.batch_size)
    grid = np.linspace(-1, 1, 801)
    mu = analysis.bandit_density(grid)
    sig = 1 / (1 + np.exp(-BETA * grid))
    rows = []
    for omega in (0.0, 0.5, 1.0, 2.0, 4.0):
        closed = float((analysis.tilted_density(mu, grid, BETA, omega) * grid).sum())
        exact = float(analysis.exact_guided_samples(grid, mu * sig, mu * (1 - sig), omega, FLOW_STEPS).mean())
        learned = float(np.asarray(agent._sample(jnp.zeros((20_000, 1)), jax.random.PRNGKey(7), jnp.float32(omega), 1)).mean())
        rows.append({"omega": omega, "closed_form": closed, "exact_guided_ode": exact, "learned": learned})
    print(json.dumps(rows, indent=2))
    for r in rows:
        print(f"| {r['omega']:g} | {r['closed_form']:.3f} | {r['exact_guided_ode']:.3f} | {r['learned']:.3f} |")


if __name__ == "__main__":
    main()
