"""CFGRL (Frans et al. 2025): one flow network conditioned on an optimality label, guided at sampling time.

Labels: 0 = none (unconditional), 1 = optimal (G >= 0), 2 = not optimal; the label is dropped to 0 with
probability `label_dropout`. Sampling: v = v(none) + (1 + omega) (v(optimal) - v(none)), i.e. guidance weight
w = 1 + omega, the same greediness convention as DIPOLE.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any

import flax
import jax
import jax.numpy as jnp

from dipole import critic, flow
from dipole.agents.base import ActingMixin, AgentConfig, apply_updates, as_batch2d, iql_critic_init, make_optimizer
from dipole.networks import LabelledVelocityField

UNCOND, OPTIMAL, NOT_OPTIMAL = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class CFGRLConfig(AgentConfig):
    agent: str = "cfgrl"
    num_qs: int = 2
    expectile: float = 0.9
    tau: float = 0.005
    label_dropout: float = 0.1
    omega: float = 2.0  # guidance weight w = 1 + omega = 3
    num_candidates: int = 1


class CFGRLAgent(ActingMixin, flax.struct.PyTreeNode):
    ranks_candidates = True

    params: Any
    target_q: Any
    opt_state: Any
    rng: jax.Array
    step: jax.Array
    config: CFGRLConfig = flax.struct.field(pytree_node=False)
    nets: Any = flax.struct.field(pytree_node=False)  # (labelled velocity field, q, v)
    tx: Any = flax.struct.field(pytree_node=False)
    action_dim: int = flax.struct.field(pytree_node=False)

    @classmethod
    def create(cls, seed: int, ex_obs, ex_actions, config: CFGRLConfig | None = None):
        config = config or CFGRLConfig()
        ex_obs, ex_actions = as_batch2d(ex_obs), as_batch2d(ex_actions)
        field = LabelledVelocityField(config.actor_hidden_dims, int(ex_actions.shape[-1]), 3)
        rng, a_key, q_key, v_key = jax.random.split(jax.random.PRNGKey(seed), 4)
        q, v, q_params, v_params = iql_critic_init(config, ex_obs, ex_actions, q_key, v_key)
        n = ex_actions.shape[0]
        params = {"actor": field.init(a_key, ex_obs, ex_actions, jnp.zeros(n), jnp.zeros(n, jnp.int32)),
                  "q": q_params, "v": v_params}
        tx = make_optimizer(config.lr)
        return cls(params=params, target_q=q_params, opt_state=tx.init(params), rng=rng,
                   step=jnp.zeros((), jnp.int32), config=config, nets=(field, q, v), tx=tx,
                   action_dim=int(ex_actions.shape[-1]))

    def actor_loss(self, params, batch, rng, adv):
        flow_key, drop_key = jax.random.split(rng)
        x_t, t, target = flow.flow_matching_inputs(flow_key, batch["actions"])
        labels = jnp.where(adv >= 0, OPTIMAL, NOT_OPTIMAL)
        dropped = jax.random.uniform(drop_key, labels.shape) < self.config.label_dropout
        labels = jnp.where(dropped, UNCOND, labels)
        pred = self.nets[0].apply(params["actor"], batch["observations"], x_t, t, labels)
        loss = jnp.mean(flow.per_sample_flow_error(pred, target))
        return loss, {"actor_loss": loss, "optimal_fraction": jnp.mean(adv >= 0)}

    def total_loss(self, params, batch, rng, adv):
        c_loss, c_info = critic.iql_losses(self.nets[1].apply, self.nets[2].apply, params, self.target_q, batch,
                                           self.config.discount, self.config.expectile)
        a_loss, a_info = self.actor_loss(params, batch, rng, adv)
        return c_loss + a_loss, {**c_info, **a_info}

    @jax.jit
    def update(self, batch):
        """batch may carry known `advantages` (B,) to set the optimality labels instead of the critic's G."""
        rng, key = jax.random.split(self.rng)
        qs = self.nets[1].apply(self.params["q"], batch["observations"], batch["actions"])
        v = self.nets[2].apply(self.params["v"], batch["observations"])
        adv = batch["advantages"] if "advantages" in batch else critic.advantage(qs, v)
        grads, info = jax.grad(self.total_loss, has_aux=True)(self.params, batch, key, adv)
        updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
        params = apply_updates(self.params, updates)
        return self.replace(params=params, target_q=critic.polyak(self.target_q, params["q"], self.config.tau),
                            opt_state=opt_state, rng=rng, step=self.step + 1), info

    def guided_velocity_fn(self, omega):
        def fn(obs, x, t):
            labels = jnp.array([OPTIMAL, UNCOND]).reshape((2,) + (1,) * (x.ndim - 1))
            stack = lambda a: jnp.broadcast_to(a, (2,) + jnp.shape(a))
            both = self.nets[0].apply(self.params["actor"], stack(obs), stack(x), stack(t), labels)
            return flow.guided_velocity(both[0], both[1], omega)

        return fn

    @partial(jax.jit, static_argnames=("num_candidates",))
    def _sample(self, obs, rng, omega, num_candidates: int):
        sample_fn = lambda o, noise: flow.euler_sample(self.guided_velocity_fn(omega), o, noise, self.config.flow_steps)
        score_fn = lambda o, a: jnp.min(self.nets[1].apply(self.params["q"], o, a), axis=0)
        return flow.best_of_candidates(sample_fn, score_fn, rng, obs, num_candidates, self.action_dim)


def get_config() -> CFGRLConfig:
    return CFGRLConfig()
