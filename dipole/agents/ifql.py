"""IFQL: a BC flow policy plus an IQL critic; acts by the argmax of min Q over K flow samples (Park et al. 2025)."""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any

import flax
import jax
import jax.numpy as jnp

from dipole import critic, flow
from dipole.agents.base import ActingMixin, AgentConfig, apply_updates, as_batch2d, iql_critic_init, make_optimizer
from dipole.networks import VelocityField


@dataclasses.dataclass(frozen=True)
class IFQLConfig(AgentConfig):
    agent: str = "ifql"
    num_qs: int = 2
    expectile: float = 0.9
    tau: float = 0.005
    num_candidates: int = 32  # K flow samples ranked by min Q


class IFQLAgent(ActingMixin, flax.struct.PyTreeNode):
    ranks_candidates = True

    params: Any  # {'actor', 'q', 'v'}
    target_q: Any
    opt_state: Any
    rng: jax.Array
    step: jax.Array
    config: IFQLConfig = flax.struct.field(pytree_node=False)
    nets: Any = flax.struct.field(pytree_node=False)  # (velocity field, q, v)
    tx: Any = flax.struct.field(pytree_node=False)
    action_dim: int = flax.struct.field(pytree_node=False)

    @classmethod
    def create(cls, seed: int, ex_obs, ex_actions, config: IFQLConfig | None = None):
        config = config or IFQLConfig()
        ex_obs, ex_actions = as_batch2d(ex_obs), as_batch2d(ex_actions)
        field = VelocityField(config.actor_hidden_dims, int(ex_actions.shape[-1]))
        rng, a_key, q_key, v_key = jax.random.split(jax.random.PRNGKey(seed), 4)
        q, v, q_params, v_params = iql_critic_init(config, ex_obs, ex_actions, q_key, v_key)
        params = {"actor": field.init(a_key, ex_obs, ex_actions, jnp.zeros(ex_actions.shape[:-1])),
                  "q": q_params, "v": v_params}
        tx = make_optimizer(config.lr)
        return cls(params=params, target_q=q_params, opt_state=tx.init(params), rng=rng,
                   step=jnp.zeros((), jnp.int32), config=config, nets=(field, q, v), tx=tx,
                   action_dim=int(ex_actions.shape[-1]))

    def total_loss(self, params, batch, rng):
        c_loss, info = critic.iql_losses(self.nets[1].apply, self.nets[2].apply, params, self.target_q, batch,
                                         self.config.discount, self.config.expectile)
        x_t, t, target = flow.flow_matching_inputs(rng, batch["actions"])
        pred = self.nets[0].apply(params["actor"], batch["observations"], x_t, t)
        bc = jnp.mean(flow.per_sample_flow_error(pred, target))
        return c_loss + bc, {**info, "bc_loss": bc}

    @jax.jit
    def update(self, batch):
        rng, key = jax.random.split(self.rng)
        grads, info = jax.grad(self.total_loss, has_aux=True)(self.params, batch, key)
        updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
        params = apply_updates(self.params, updates)
        return self.replace(params=params, target_q=critic.polyak(self.target_q, params["q"], self.config.tau),
                            opt_state=opt_state, rng=rng, step=self.step + 1), info

    @partial(jax.jit, static_argnames=("num_candidates",))
    def _sample(self, obs, rng, omega, num_candidates: int):
        velocity = lambda o, x, t: self.nets[0].apply(self.params["actor"], o, x, t)
        sample_fn = lambda o, noise: flow.euler_sample(velocity, o, noise, self.config.flow_steps)
        score_fn = lambda o, a: jnp.min(self.nets[1].apply(self.params["q"], o, a), axis=0)
        return flow.best_of_candidates(sample_fn, score_fn, rng, obs, num_candidates, self.action_dim)


def get_config() -> IFQLConfig:
    return IFQLConfig()
