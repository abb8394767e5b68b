"""BC-flow: behaviour cloning with a flow-matching policy (no critic, no reward)."""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from dipole.agents.base import Agent, AgentConfig, as_batch2d, make_optimizer, static
from dipole.nn import flow
from dipole.nn.networks import VelocityField
from dipole.seeding import stream_key


@dataclasses.dataclass(frozen=True)
class BCConfig(AgentConfig):
    agent: ClassVar[str] = "bc"


class BCAgent(Agent):
    params: Any  # {'actor': ...}
    opt_state: Any
    rng: jax.Array
    step: jax.Array
    config: BCConfig = static()
    actor_net: Any = static()  # VelocityField
    tx: Any = static()
    obs_dim: int = static()
    action_dim: int = static()

    @classmethod
    def create(cls, seed: int, ex_obs, ex_actions, config: BCConfig | None = None):
        config = config or BCConfig()
        ex_obs, ex_actions = as_batch2d(ex_obs), as_batch2d(ex_actions)
        field = VelocityField(config.actor_hidden_dims, int(ex_actions.shape[-1]))
        rng, key = jax.random.split(stream_key(seed, "init"))
        params = {"actor": field.init(key, ex_obs, ex_actions, jnp.zeros(ex_actions.shape[:-1]))}
        tx = make_optimizer(config.lr)
        return cls(params=params, opt_state=tx.init(params), rng=rng, step=jnp.zeros((), jnp.int32), config=config,
                   actor_net=field, tx=tx, obs_dim=int(ex_obs.shape[-1]), action_dim=int(ex_actions.shape[-1]))

    def actor_loss(self, params, batch, rng):
        x_t, t, target = flow.flow_matching_inputs(rng, batch["actions"])
        pred = self.actor_net.apply(params["actor"], batch["observations"], x_t, t)
        loss = jnp.mean(flow.per_sample_flow_error(pred, target))
        return loss, {"bc_loss": loss}

    @jax.jit
    def update(self, batch):
        rng, key = jax.random.split(self.rng)
        return self.apply_loss(self.actor_loss, batch, key, rng=rng)

    def velocity_fn(self, obs, x, t):
        return self.actor_net.apply(self.params["actor"], obs, x, t)

    @partial(jax.jit, static_argnames=("num_candidates",))
    def _sample(self, obs, rng, omega, num_candidates: int):
        noise = jax.random.normal(rng, (obs.shape[0], self.action_dim))
        return flow.euler_sample(self.velocity_fn, obs, noise, self.config.flow_steps)


def get_config() -> BCConfig:
    return BCConfig()
