"""CFGRL (Frans et al. 2025): one flow network conditioned on an optimality label, guided at sampling time.

Labels: 0 = none (unconditional), 1 = optimal (G >= 0), 2 = not optimal; the label is dropped to 0 with
probability `label_dropout`. Sampling: v = v(none) + (1 + omega) (v(optimal) - v(none)), i.e. guidance weight
w = 1 + omega, the same greediness convention as DIPOLE.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from dipole.agents.base import Agent, AgentConfig, as_batch2d, make_optimizer, static
from dipole.nn import critic, flow
from dipole.nn.networks import LabelledVelocityField
from dipole.seeding import stream_key

UNCOND, OPTIMAL, NOT_OPTIMAL = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class CFGRLConfig(AgentConfig):
    agent: ClassVar[str] = "cfgrl"
    num_qs: int = 2
    """Q heads in the ensemble; the advantage uses their minimum."""
    expectile: float = 0.9
    """Expectile of the V loss."""
    tau: float = 0.005
    """Polyak rate of the target Q."""
    label_dropout: float = 0.1
    """Probability of training a row with the unconditional label."""
    omega: float = 2.0
    """Greediness at evaluation: guidance weight w = 1 + omega."""
    num_candidates: int = 1
    """Rejection sampling over K guided candidates by min Q; 1 turns it off."""


class CFGRLAgent(Agent):
    SAMPLING = frozenset({"omega", "num_candidates"})

    params: Any
    target_q: Any
    opt_state: Any
    rng: jax.Array
    step: jax.Array
    config: CFGRLConfig = static()
    actor_net: Any = static()  # LabelledVelocityField (none / optimal / not optimal)
    q_net: Any = static()
    v_net: Any = static()
    tx: Any = static()
    obs_dim: int = static()
    action_dim: int = static()

    @classmethod
    def create(cls, seed: int, ex_obs, ex_actions, config: CFGRLConfig | None = None):
        config = config or CFGRLConfig()
        ex_obs, ex_actions = as_batch2d(ex_obs), as_batch2d(ex_actions)
        field = LabelledVelocityField(config.actor_hidden_dims, int(ex_actions.shape[-1]), 3)
        rng, a_key, q_key, v_key = jax.random.split(stream_key(seed, "init"), 4)
        q, v, q_params, v_params = critic.make_iql_critic(config.value_hidden_dims, config.num_qs, ex_obs, ex_actions,
                                                          q_key, v_key)
        n = ex_actions.shape[0]
        params = {"actor": field.init(a_key, ex_obs, ex_actions, jnp.zeros(n), jnp.zeros(n, jnp.int32)),
                  "q": q_params, "v": v_params}
        tx = make_optimizer(config.lr)
        return cls(params=params, target_q=q_params, opt_state=tx.init(params), rng=rng,
                   step=jnp.zeros((), jnp.int32), config=config, actor_net=field, q_net=q, v_net=v, tx=tx,
                   obs_dim=int(ex_obs.shape[-1]), action_dim=int(ex_actions.shape[-1]))

    def actor_loss(self, params, batch, rng, adv):
        flow_key, drop_key = jax.random.split(rng)
        x_t, t, target = flow.flow_matching_inputs(flow_key, batch["actions"])
        labels = jnp.where(adv >= 0, OPTIMAL, NOT_OPTIMAL)
        dropped = jax.random.uniform(drop_key, labels.shape) < self.config.label_dropout
        labels = jnp.where(dropped, UNCOND, labels)
        pred = self.actor_net.apply(params["actor"], batch["observations"], x_t, t, labels)
        loss = jnp.mean(flow.per_sample_flow_error(pred, target))
        return loss, {"actor_loss": loss, "optimal_fraction": jnp.mean(adv >= 0)}

    def total_loss(self, params, batch, rng, adv):
        c_loss, c_info = critic.iql_losses(self.q_net.apply, self.v_net.apply, params, self.target_q, batch,
                                           self.config.discount, self.config.expectile)
        a_loss, a_info = self.actor_loss(params, batch, rng, adv)
        return c_loss + a_loss, {**c_info, **a_info}

    @jax.jit
    def update(self, batch):
        """batch may carry known `advantages` (B,) to set the optimality labels instead of the critic's G."""
        rng, key = jax.random.split(self.rng)
        qs = self.q_net.apply(self.params["q"], batch["observations"], batch["actions"])
        v = self.v_net.apply(self.params["v"], batch["observations"])
        adv = batch["advantages"] if "advantages" in batch else critic.advantage(qs, v)
        return self.apply_loss(self.total_loss, batch, key, adv, rng=rng)

    def guided_velocity_fn(self, omega):
        def fn(obs, x, t):
            labels = jnp.array([OPTIMAL, UNCOND]).reshape((2,) + (1,) * (x.ndim - 1))
            stack = lambda a: jnp.broadcast_to(a, (2,) + jnp.shape(a))
            both = self.actor_net.apply(self.params["actor"], stack(obs), stack(x), stack(t), labels)
            return flow.guided_velocity(both[0], both[1], omega)

        return fn

    @partial(jax.jit, static_argnames=("num_candidates",))
    def _sample(self, obs, rng, omega, num_candidates: int):
        sample_fn = lambda o, noise: flow.euler_sample(self.guided_velocity_fn(omega), o, noise, self.config.flow_steps)
        score_fn = lambda o, a: jnp.min(self.q_net.apply(self.params["q"], o, a), axis=0)
        return flow.select_candidates(sample_fn, score_fn, rng, obs, num_candidates, self.action_dim)


def get_config() -> CFGRLConfig:
    return CFGRLConfig()
