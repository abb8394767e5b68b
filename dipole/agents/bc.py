"""BC-flow: behaviour cloning with a flow-matching policy (no critic, no reward)."""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any

import flax
import jax
import jax.numpy as jnp

from dipole import flow
from dipole.agents.base import ActingMixin, AgentConfig, apply_updates, as_batch2d, make_optimizer
from dipole.networks import VelocityField


@dataclasses.dataclass(frozen=True)
class BCConfig(AgentConfig):
    agent: str = "bc"


class BCAgent(ActingMixin, flax.struct.PyTreeNode):
    params: Any  # {'actor': ...}
    opt_state: Any
    rng: jax.Array
    step: jax.Array
    config: BCConfig = flax.struct.field(pytree_node=False)
    nets: Any = flax.struct.field(pytree_node=False)  # (velocity field,)
    tx: Any = flax.struct.field(pytree_node=False)
    action_dim: int = flax.struct.field(pytree_node=False)

    @classmethod
    def create(cls, seed: int, ex_obs, ex_actions, config: BCConfig | None = None):
        config = config or BCConfig()
        ex_obs, ex_actions = as_batch2d(ex_obs), as_batch2d(ex_actions)
        field = VelocityField(config.actor_hidden_dims, int(ex_actions.shape[-1]))
        rng, key = jax.random.split(jax.random.PRNGKey(seed))
        params = {"actor": field.init(key, ex_obs, ex_actions, jnp.zeros(ex_actions.shape[:-1]))}
        tx = make_optimizer(config.lr)
        return cls(params=params, opt_state=tx.init(params), rng=rng, step=jnp.zeros((), jnp.int32), config=config,
                   nets=(field,), tx=tx, action_dim=int(ex_actions.shape[-1]))

    def actor_loss(self, params, batch, rng):
        x_t, t, target = flow.flow_matching_inputs(rng, batch["actions"])
        pred = self.nets[0].apply(params["actor"], batch["observations"], x_t, t)
        loss = jnp.mean(flow.per_sample_flow_error(pred, target))
        return loss, {"bc_loss": loss}

    @jax.jit
    def update(self, batch):
        rng, key = jax.random.split(self.rng)
        grads, info = jax.grad(self.actor_loss, has_aux=True)(self.params, batch, key)
        updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
        return self.replace(params=apply_updates(self.params, updates), opt_state=opt_state, rng=rng,
                            step=self.step + 1), info

    def velocity_fn(self, obs, x, t):
        return self.nets[0].apply(self.params["actor"], obs, x, t)

    @partial(jax.jit, static_argnames=("num_candidates",))
    def _sample(self, obs, rng, omega, num_candidates: int):
        noise = jax.random.normal(rng, (obs.shape[0], self.action_dim))
        return flow.euler_sample(self.velocity_fn, obs, noise, self.config.flow_steps)


def get_config() -> BCConfig:
    return BCConfig()
