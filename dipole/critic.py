"""IQL critic shared by DIPOLE, IQL, IFQL and CFGRL: expectile V, TD Q ensemble, Polyak target, advantage."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def expectile_loss(diff, expectile: float):
    """|tau - 1(diff < 0)| * diff^2, elementwise, for diff = Qt - V."""
    weight = jnp.where(diff < 0, 1.0 - expectile, expectile)
    return weight * jnp.square(diff)


def value_loss(v, target_q_min, expectile: float):
    """L_V = E[|tau - 1(Qt - V < 0)| (Qt - V)^2] with Qt = min_i Qtarget_i(s, a) (no gradient into Qt)."""
    return jnp.mean(expectile_loss(jax.lax.stop_gradient(target_q_min) - v, expectile))


def q_loss(qs, rewards, masks, next_v, discount: float):
    """L_Q = E[sum_i (Q_i(s, a) - (r + gamma * mask * V(s')))^2]; qs has shape (num_qs, B)."""
    target = jax.lax.stop_gradient(rewards + discount * masks * next_v)
    return jnp.mean(jnp.sum(jnp.square(qs - target[None]), axis=0))


def polyak(target_params, online_params, tau: float):
    return jax.tree_util.tree_map(lambda t, o: (1.0 - tau) * t + tau * o, target_params, online_params)


def advantage(qs, v):
    """G(s, a) = min_i Q_i(s, a) - V(s), with no gradient into the critic."""
    return jax.lax.stop_gradient(jnp.min(qs, axis=0) - v)
