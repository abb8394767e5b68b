"""IQL (Kostrikov et al. 2022): expectile critic, Gaussian policy by advantage-weighted regression."""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from dipole.agents.base import Agent, AgentConfig, as_batch2d, make_optimizer, static
from dipole.nn import critic
from dipole.nn.networks import GaussianActor
from dipole.seeding import stream_key


@dataclasses.dataclass(frozen=True)
class IQLConfig(AgentConfig):
    agent: ClassVar[str] = "iql"
    num_qs: int = 2
    """Q heads in the ensemble; the advantage uses their minimum."""
    expectile: float = 0.9
    """Expectile of the V loss."""
    tau: float = 0.005
    """Polyak rate of the target Q."""
    alpha: float = 10.0
    """AWR inverse temperature: weights exp(alpha * A)."""
    max_weight: float = 100.0
    """AWR weight clip, as in the IQL paper."""


class IQLAgent(Agent):
    SAMPLING = frozenset({"temperature"})
    params: Any  # {'actor', 'q', 'v'}
    target_q: Any
    opt_state: Any
    rng: jax.Array
    step: jax.Array
    config: IQLConfig = static()
    actor_net: Any = static()  # GaussianActor
    q_net: Any = static()
    v_net: Any = static()
    tx: Any = static()
    obs_dim: int = static()
    action_dim: int = static()

    @classmethod
    def create(cls, seed: int, ex_obs, ex_actions, config: IQLConfig | None = None):
        config = config or IQLConfig()
        ex_obs, ex_actions = as_batch2d(ex_obs), as_batch2d(ex_actions)
        actor = GaussianActor(config.actor_hidden_dims, int(ex_actions.shape[-1]))
        rng, a_key, q_key, v_key = jax.random.split(stream_key(seed, "init"), 4)
        q, v, q_params, v_params = critic.make_iql_critic(config.value_hidden_dims, config.num_qs, ex_obs, ex_actions,
                                                          q_key, v_key)
        params = {"actor": actor.init(a_key, ex_obs), "q": q_params, "v": v_params}
        tx = make_optimizer(config.lr)
        return cls(params=params, target_q=q_params, opt_state=tx.init(params), rng=rng,
                   step=jnp.zeros((), jnp.int32), config=config, actor_net=actor, q_net=q, v_net=v, tx=tx,
                   obs_dim=int(ex_obs.shape[-1]), action_dim=int(ex_actions.shape[-1]))

    def actor_loss(self, params, batch, adv):
        mean, log_std = self.actor_net.apply(params["actor"], batch["observations"])
        logp = jnp.sum(-0.5 * jnp.square((batch["actions"] - mean) / jnp.exp(log_std)) - log_std
                       - 0.5 * jnp.log(2 * jnp.pi), axis=-1)
        w = jnp.minimum(jnp.exp(self.config.alpha * adv), self.config.max_weight)
        loss = -jnp.mean(w * logp)
        return loss, {"actor_loss": loss, "awr_weight_mean": w.mean(), "log_std_mean": log_std.mean()}

    def total_loss(self, params, batch, adv):
        c_loss, c_info = critic.iql_losses(self.q_net.apply, self.v_net.apply, params, self.target_q, batch,
                                           self.config.discount, self.config.expectile)
        a_loss, a_info = self.actor_loss(params, batch, adv)
        return c_loss + a_loss, {**c_info, **a_info}

    @jax.jit
    def update(self, batch):
        """batch may carry known `advantages` (B,) to replace the critic's G in the AWR weights."""
        qs = self.q_net.apply(self.params["q"], batch["observations"], batch["actions"])
        v = self.v_net.apply(self.params["v"], batch["observations"])
        adv = batch["advantages"] if "advantages" in batch else critic.advantage(qs, v)
        new, info = self.apply_loss(self.total_loss, batch, adv)
        return new, {**info, "adv_mean": adv.mean()}

    @partial(jax.jit, static_argnames=("num_candidates",))
    def _sample(self, obs, rng, omega, num_candidates: int, temperature=0.0):
        """mean + temperature * std * N(0, I), clipped: temperature 0 is IQL's deterministic evaluation, 1 samples the
        Gaussian policy (acting online)."""
        mean, log_std = self.actor_net.apply(self.params["actor"], obs)
        noise = jax.random.normal(rng, mean.shape)
        return jnp.clip(mean + temperature * jnp.exp(log_std) * noise, -1.0, 1.0)


def get_config() -> IQLConfig:
    return IQLConfig()
