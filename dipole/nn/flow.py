"""Flow matching pieces shared by every flow agent: interpolation, loss, guided Euler sampler, candidate selection.

Conventions (as FQL/CFGRL): x0 ~ N(0, I) is noise, x1 is the data action, t ~ U[0, 1],
x_t = (1 - t) x0 + t x1, and the target velocity is x1 - x0.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

ACTION_CLIP = 1.0 - 1e-5  # dataset actions are clipped to [-ACTION_CLIP, ACTION_CLIP] before flow matching


def flow_matching_inputs(rng, actions):
    """Draw (x_t, t, target velocity) for a batch of data actions x1 of shape (B, A)."""
    noise_rng, t_rng = jax.random.split(rng)
    x1 = jnp.clip(actions, -ACTION_CLIP, ACTION_CLIP)
    x0 = jax.random.normal(noise_rng, x1.shape)
    t = jax.random.uniform(t_rng, x1.shape[:-1])
    x_t = (1.0 - t[..., None]) * x0 + t[..., None] * x1
    return x_t, t, x1 - x0


def per_sample_flow_error(pred_velocity, target_velocity):
    """||v - (x1 - x0)||^2 averaged over action dims -> (..., B)."""
    return jnp.mean(jnp.square(pred_velocity - target_velocity), axis=-1)


def guided_velocity(v_pos, v_neg, omega):
    """DIPOLE / classifier-free guidance combination: v = v- + (1 + omega) (v+ - v-)."""
    return v_neg + (1.0 + omega) * (v_pos - v_neg)


def euler_sample(velocity_fn: Callable, obs, noise, num_steps: int):
    """Integrate dx/dt = velocity_fn(obs, x, t) from t=0 (noise) to t=1 with `num_steps` Euler steps; clip to [-1, 1]."""

    def body(i, x):
        t = jnp.full(x.shape[:-1], i / num_steps)
        return x + velocity_fn(obs, x, t) / num_steps

    x = jax.lax.fori_loop(0, num_steps, body, noise)
    return jnp.clip(x, -1.0, 1.0)


SELECTIONS = ("argmax", "tilt")


def select_candidates(sample_fn: Callable, score_fn: Callable, rng, obs, num_candidates: int, action_dim: int,
                      selection: str = "argmax", log_scale=1.0):
    """Draw `num_candidates` actions per state with sample_fn(obs, noise) and keep one, chosen by score_fn(obs, a):

    - 'argmax' keeps the highest score (rejection sampling as in IFQL and DIPOLE's headline rows);
    - 'tilt' resamples one with probability proportional to exp(log_scale * score) (self-normalised importance
      resampling: if the candidates come from p, the choice samples p * exp(log_scale * score) as K grows; argmax
      is its log_scale -> infinity limit).

    obs: (B, D). Returns (B, A). With num_candidates == 1 this is plain sampling (no scoring).
    """
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")  # callers check user input
    if num_candidates == 1:
        return sample_fn(obs, jax.random.normal(rng, (obs.shape[0], action_dim)))
    pick_rng = None
    if selection == "tilt":
        rng, pick_rng = jax.random.split(rng)
    tiled, actions = draw_candidates(sample_fn, rng, obs, num_candidates, action_dim)
    scores = score_fn(tiled, actions.reshape(-1, action_dim)).reshape(obs.shape[0], num_candidates)
    return actions[jnp.arange(obs.shape[0]), pick_candidate(scores, selection, pick_rng, log_scale)]


def draw_candidates(sample_fn: Callable, rng, obs, num_candidates: int, action_dim: int):
    """`num_candidates` actions per state from sample_fn(obs, noise), one noise draw for all -> (obs repeated per
    candidate (B*K, D), actions (B, K, A))."""
    tiled = jnp.repeat(obs, num_candidates, axis=0)  # (B*K, D)
    actions = sample_fn(tiled, jax.random.normal(rng, (obs.shape[0] * num_candidates, action_dim)))
    return tiled, actions.reshape(obs.shape[0], num_candidates, action_dim)


def pick_candidate(scores, selection: str, pick_rng=None, log_scale=1.0):
    """The index of the kept candidate per state from scores (B, K): the highest ('argmax') or one drawn with
    probability proportional to exp(log_scale * score) ('tilt', from `pick_rng`)."""
    if selection == "argmax":
        return jnp.argmax(scores, axis=1)
    return jax.random.categorical(pick_rng, log_scale * scores, axis=1)


def effective_sample_size(log_weights):
    """Kish's effective sample size (sum w)^2 / sum w^2 of importance weights exp(log_weights) over the last axis:
    K for equal weights, 1 when one candidate takes all the weight."""
    w = jax.nn.softmax(log_weights, axis=-1)
    return 1.0 / jnp.sum(jnp.square(w), axis=-1)
