"""Critics: the IQL critic shared by IQL, IFQL, CFGRL and DIPOLE's 'iql' form (networks, expectile V, TD Q ensemble
to V(s')), DIPOLE's policy-evaluation critic (TD Q ensemble to the target heads at a next action of the policy, V for
the advantage only), the Polyak target and the advantage."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dipole.nn.networks import QEnsemble, ValueNet


def make_iql_critic(hidden_dims, num_qs: int, ex_obs, ex_actions, q_key, v_key):
    """-> (Q ensemble, V network, Q params, V params), as every IQL-critic agent builds them."""
    q = QEnsemble(hidden_dims, num_qs=num_qs)
    v = ValueNet(hidden_dims)
    return q, v, q.init(q_key, ex_obs, ex_actions), v.init(v_key, ex_obs)


def expectile_loss(diff, expectile: float):
    """|tau - 1(diff < 0)| * diff^2, elementwise, for diff = Qt - V."""
    weight = jnp.where(diff < 0, 1.0 - expectile, expectile)
    return weight * jnp.square(diff)


def value_loss(v, target_q, expectile):
    """L_V = E[|tau - 1(Qt - V < 0)| (Qt - V)^2] with Qt = min_i Qtarget_i(s, a), or another `aggregate_q` of the
    target heads (no gradient into Qt). v, target_q: (B,), or (B, T) for T reward terms, each with its own
    expectile (T,) and the terms' losses summed."""
    return jnp.sum(jnp.mean(expectile_loss(jax.lax.stop_gradient(target_q) - v, expectile), axis=0))


Q_AGGS = ("min", "lcb")


def aggregate_q(qs, how: str = "min", pessimism: float = 1.0):
    """One pessimistic value from the heads' Q_i(s, a), shape (num_qs, B) -> (B,):

    - 'min': min_i Q_i (the paper's and IQL's form);
    - 'lcb': mean_i Q_i - pessimism * std_i Q_i, a lower confidence bound whose pessimism grows where the heads
      disagree. With 2 heads and pessimism 1 it equals the min ((a + b)/2 - |a - b|/2 = min(a, b)).
    """
    if how == "min":
        return jnp.min(qs, axis=0)
    if how == "lcb":
        return jnp.mean(qs, axis=0) - pessimism * jnp.std(qs, axis=0)
    raise ValueError(f"q aggregation must be one of {Q_AGGS}, got {how!r}")  # configs check user input


def q_loss(qs, rewards, masks, next_v, discount: float):
    """L_Q = E[sum_i (Q_i(s, a) - (r + gamma * mask * V(s')))^2]; qs has shape (num_qs, B), or (num_qs, B, T) with
    rewards and next_v (B, T) for T reward terms, their losses summed (masks stay (B,))."""
    if rewards.ndim > masks.ndim:
        masks = masks[:, None]
    target = jax.lax.stop_gradient(rewards + discount * masks * next_v)
    if qs.ndim == 2:
        return jnp.mean(jnp.sum(jnp.square(qs - target[None]), axis=0))
    return jnp.mean(jnp.sum(jnp.square(qs - target[None]), axis=(0, 2)))


ADV_NORMS = ("none", "running_std")


def advantage_moments(mean_ema, var_ema, adv, decay: float):
    """The EMAs of G's batch mean and variance over its first axis (one per term when G is (B, T))."""
    return (decay * mean_ema + (1 - decay) * adv.mean(axis=0), decay * var_ema + (1 - decay) * adv.var(axis=0))


def normalise_advantage(adv, var_ema, count, how: str, decay: float):
    """G as is (how='none'), or divided by its running std, the bias-corrected EMA of its variance after `count`
    updates (how='running_std')."""
    if how == "none":
        return adv
    debias = 1.0 - decay ** count.astype(jnp.float32)
    return adv / jnp.sqrt(var_ema / debias + 1e-8)


def polyak(target_params, online_params, tau: float):
    return jax.tree_util.tree_map(lambda t, o: (1.0 - tau) * t + tau * o, target_params, online_params)


def advantage(qs, v, how: str = "min", pessimism: float = 1.0):
    """G(s, a) = min_i Q_i(s, a) - V(s) (or another `aggregate_q` of the heads), with no gradient into the critic."""
    return jax.lax.stop_gradient(aggregate_q(qs, how, pessimism) - v)


def iql_losses(q_apply, v_apply, params, target_q_params, batch, discount: float, expectile,
               q_agg: str = "min", pessimism: float = 1.0):
    """The whole IQL critic objective on a batch: expectile V on min target Q (or the heads' `aggregate_q`), plus TD
    Q to r + gamma mask V(s').

    q_apply(q_params, obs, actions) -> (num_qs, B); v_apply(v_params, obs) -> (B,). params holds 'q' and 'v'.
    With T reward terms (dipole-terms) the batch's rewards are (B, T), the networks give (num_qs, B, T) and (B, T),
    `expectile` may be one per term, and the terms' losses are summed. Returns (loss, metrics).
    """
    obs, actions = batch["observations"], batch["actions"]
    target_qs = q_apply(target_q_params, obs, actions)
    v = v_apply(params["v"], obs)
    v_loss = value_loss(v, aggregate_q(target_qs, q_agg, pessimism), expectile)
    next_v = v_apply(params["v"], batch["next_observations"])
    qs = q_apply(params["q"], obs, actions)
    td_loss = q_loss(qs, batch["rewards"], batch["masks"], next_v, discount)
    return v_loss + td_loss, {"v_loss": v_loss, "q_loss": td_loss, "v_mean": v.mean(), "q_mean": qs.mean()}


def policy_td_loss(qs, rewards, masks, next_target_qs, discount: float):
    """L_Q = E_b[sum_i mean_j (Q_i(s, a) - y_j)^2] with y_j = r + gamma * mask * Qtarget_j(s', a'): every online head
    regresses to every target head's TD target (so, up to a constant, to their mean). qs and next_target_qs have
    shape (num_qs, B); a' is the policy's next action."""
    target = jax.lax.stop_gradient(rewards[None] + discount * masks[None] * next_target_qs)  # (num_qs, B)
    per_pair = jnp.square(qs[:, None, :] - target[None, :, :])  # (online i, target j, B)
    return jnp.mean(jnp.sum(jnp.mean(per_pair, axis=1), axis=0))


def policy_losses(q_apply, v_apply, params, target_q_params, batch, next_actions, discount: float, expectile: float,
                  q_agg: str = "min", pessimism: float = 1.0):
    """The policy-evaluation critic of DIPOLE's authors on a batch: TD Q to r + gamma mask Qtarget(s', a') with a'
    from the policy (`next_actions`, no gradient), and expectile V on min target Q (or the heads' `aggregate_q`) at
    the data actions; V forms the advantage only, never a TD target. Returns (loss, metrics)."""
    obs, actions = batch["observations"], batch["actions"]
    target_qs = q_apply(target_q_params, obs, actions)
    v = v_apply(params["v"], obs)
    v_loss = value_loss(v, aggregate_q(target_qs, q_agg, pessimism), expectile)
    next_target_qs = q_apply(target_q_params, batch["next_observations"], jax.lax.stop_gradient(next_actions))
    qs = q_apply(params["q"], obs, actions)
    td_loss = policy_td_loss(qs, batch["rewards"], batch["masks"], next_target_qs, discount)
    return v_loss + td_loss, {"v_loss": v_loss, "q_loss": td_loss, "v_mean": v.mean(), "q_mean": qs.mean(),
                              "next_q_mean": next_target_qs.mean()}
