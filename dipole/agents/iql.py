"""IQL (Kostrikov et al. 2022): expectile critic, Gaussian policy by advantage-weighted regression."""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any

import flax
import jax
import jax.numpy as jnp

from dipole import critic
from dipole.agents.base import ActingMixin, AgentConfig, apply_updates, as_batch2d, iql_critic_init, make_optimizer
from dipole.networks import GaussianActor


@dataclasses.dataclass(frozen=True)
class IQLConfig(AgentConfig):
    agent: str = "iql"
    num_qs: int = 2
    expectile: float = 0.9
    tau: float = 0.005
    alpha: float = 10.0  # AWR inverse temperature: weights exp(alpha * A)
    max_weight: float = 100.0  # AWR weight clip, as in the IQL paper


class IQLAgent(ActingMixin, flax.struct.PyTreeNode):
    params: Any
    target_q: Any
    opt_state: Any
    rng: jax.Array
    step: jax.Array
    config: IQLConfig = flax.struct.field(pytree_node=False)
    nets: Any = flax.struct.field(pytree_node=False)  # (gaussian actor, q, v)
    tx: Any = flax.struct.field(pytree_node=False)
    action_dim: int = flax.struct.field(pytree_node=False)

    @classmethod
    def create(cls, seed: int, ex_obs, ex_actions, config: IQLConfig | None = None):
        config = config or IQLConfig()
        ex_obs, ex_actions = as_batch2d(ex_obs), as_batch2d(ex_actions)
        actor = GaussianActor(config.actor_hidden_dims, int(ex_actions.shape[-1]))
        rng, a_key, q_key, v_key = jax.random.split(jax.random.PRNGKey(seed), 4)
        q, v, q_params, v_params = iql_critic_init(config, ex_obs, ex_actions, q_key, v_key)
        params = {"actor": actor.init(a_key, ex_obs), "q": q_params, "v": v_params}
        tx = make_optimizer(config.lr)
        return cls(params=params, target_q=q_params, opt_state=tx.init(params), rng=rng,
                   step=jnp.zeros((), jnp.int32), config=config, nets=(actor, q, v), tx=tx,
                   action_dim=int(ex_actions.shape[-1]))

    def actor_loss(self, params, batch, adv):
        mean, log_std = self.nets[0].apply(params["actor"], batch["observations"])
        logp = jnp.sum(-0.5 * jnp.square((batch["actions"] - mean) / jnp.exp(log_std)) - log_std
                       - 0.5 * jnp.log(2 * jnp.pi), axis=-1)
        w = jnp.minimum(jnp.exp(self.config.alpha * adv), self.config.max_weight)
        loss = -jnp.mean(w * logp)
        return loss, {"actor_loss": loss, "awr_weight_mean": w.mean(), "log_std_mean": log_std.mean()}

    def total_loss(self, params, batch, adv):
        c_loss, c_info = critic.iql_losses(self.nets[1].apply, self.nets[2].apply, params, self.target_q, batch,
                                           self.config.discount, self.config.expectile)
        a_loss, a_info = self.actor_loss(params, batch, adv)
        return c_loss + a_loss, {**c_info, **a_info}

    @jax.jit
    def update(self, batch):
        """batch may carry known `advantages` (B,) to replace the critic's G in the AWR weights."""
        qs = self.nets[1].apply(self.params["q"], batch["observations"], batch["actions"])
        v = self.nets[2].apply(self.params["v"], batch["observations"])
        adv = batch["advantages"] if "advantages" in batch else critic.advantage(qs, v)
        grads, info = jax.grad(self.total_loss, has_aux=True)(self.params, batch, adv)
        updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
        params = apply_updates(self.params, updates)
        return self.replace(params=params, target_q=critic.polyak(self.target_q, params["q"], self.config.tau),
                            opt_state=opt_state, step=self.step + 1), {**info, "adv_mean": adv.mean()}

    @partial(jax.jit, static_argnames=("num_candidates",))
    def _sample(self, obs, rng, omega, num_candidates: int):
        """The policy mean (IQL's deterministic evaluation)."""
        return jnp.clip(self.nets[0].apply(self.params["actor"], obs)[0], -1.0, 1.0)


def get_config() -> IQLConfig:
    return IQLConfig()
