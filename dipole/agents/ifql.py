"""IFQL: a BC flow policy plus an IQL critic; acts by the argmax of min Q over K flow samples (Park et al. 2025)."""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from dipole.agents.base import Agent, AgentConfig, as_batch2d, make_optimizer, static
from dipole.nn import critic, flow
from dipole.nn.networks import VelocityField
from dipole.seeding import stream_key


@dataclasses.dataclass(frozen=True)
class IFQLConfig(AgentConfig):
    agent: ClassVar[str] = "ifql"
    num_qs: int = 2
    """Q heads in the ensemble; candidates are ranked by their minimum."""
    expectile: float = 0.9
    """Expectile of the V loss."""
    tau: float = 0.005
    """Polyak rate of the target Q."""
    num_candidates: int = 32
    """K flow samples ranked by min Q at evaluation."""


class IFQLAgent(Agent):
    SAMPLING = frozenset({"num_candidates"})

    params: Any  # {'actor', 'q', 'v'}
    target_q: Any
    opt_state: Any
    rng: jax.Array
    step: jax.Array
    config: IFQLConfig = static()
    actor_net: Any = static()  # VelocityField (behaviour cloning)
    q_net: Any = static()
    v_net: Any = static()
    tx: Any = static()
    obs_dim: int = static()
    action_dim: int = static()

    @classmethod
    def create(cls, seed: int, ex_obs, ex_actions, config: IFQLConfig | None = None):
        config = config or IFQLConfig()
        ex_obs, ex_actions = as_batch2d(ex_obs), as_batch2d(ex_actions)
        field = VelocityField(config.actor_hidden_dims, int(ex_actions.shape[-1]))
        rng, a_key, q_key, v_key = jax.random.split(stream_key(seed, "init"), 4)
        q, v, q_params, v_params = critic.make_iql_critic(config.value_hidden_dims, config.num_qs, ex_obs, ex_actions,
                                                          q_key, v_key)
        params = {"actor": field.init(a_key, ex_obs, ex_actions, jnp.zeros(ex_actions.shape[:-1])),
                  "q": q_params, "v": v_params}
        tx = make_optimizer(config.lr)
        return cls(params=params, target_q=q_params, opt_state=tx.init(params), rng=rng,
                   step=jnp.zeros((), jnp.int32), config=config, actor_net=field, q_net=q, v_net=v, tx=tx,
                   obs_dim=int(ex_obs.shape[-1]), action_dim=int(ex_actions.shape[-1]))

    def total_loss(self, params, batch, rng):
        c_loss, info = critic.iql_losses(self.q_net.apply, self.v_net.apply, params, self.target_q, batch,
                                         self.config.discount, self.config.expectile)
        x_t, t, target = flow.flow_matching_inputs(rng, batch["actions"])
        pred = self.actor_net.apply(params["actor"], batch["observations"], x_t, t)
        bc = jnp.mean(flow.per_sample_flow_error(pred, target))
        return c_loss + bc, {**info, "bc_loss": bc}

    @jax.jit
    def update(self, batch):
        rng, key = jax.random.split(self.rng)
        return self.apply_loss(self.total_loss, batch, key, rng=rng)

    @partial(jax.jit, static_argnames=("num_candidates",))
    def _sample(self, obs, rng, omega, num_candidates: int):
        velocity = lambda o, x, t: self.actor_net.apply(self.params["actor"], o, x, t)
        sample_fn = lambda o, noise: flow.euler_sample(velocity, o, noise, self.config.flow_steps)
        score_fn = lambda o, a: jnp.min(self.q_net.apply(self.params["q"], o, a), axis=0)
        return flow.select_candidates(sample_fn, score_fn, rng, obs, num_candidates, self.action_dim)


def get_config() -> IFQLConfig:
    return IFQLConfig()
