"""Exact reference flows for 1-D densities: what a perfectly trained flow policy (or DIPOLE pair) would sample.

For the linear path x_t = (1-t) x0 + t x1 with x0 ~ N(0, 1) and x1 ~ p, the marginal velocity is
v(x, t) = (E[x1 | x_t = x] - x) / (1 - t), computed here by quadrature over a grid holding p.
"""

from __future__ import annotations

import numpy as np


def exact_velocity(grid: np.ndarray, p: np.ndarray, x: np.ndarray, t: float) -> np.ndarray:
    logw = -0.5 * ((x[:, None] - t * grid[None, :]) / (1 - t)) ** 2
    w = np.exp(logw - logw.max(axis=1, keepdims=True)) * p[None, :]
    return ((w * grid).sum(1) / w.sum(1) - x) / (1 - t)


def exact_guided_samples(grid, p_pos, p_neg, omega: float, flow_steps: int, n: int = 20_000, seed: int = 11):
    """Run dipole.nn.flow's guided Euler ODE, v = v- + (1+omega)(v+ - v-), with the exact fields of p_pos and p_neg."""
    p_pos, p_neg = p_pos / p_pos.sum(), p_neg / p_neg.sum()
    x = np.random.default_rng(seed).normal(size=n)
    for i in range(flow_steps):
        t = i / flow_steps
        v_pos, v_neg = exact_velocity(grid, p_pos, x, t), exact_velocity(grid, p_neg, x, t)
        x = x + (v_neg + (1 + omega) * (v_pos - v_neg)) / flow_steps
    return np.clip(x, -1, 1)


def tilted_density(mu: np.ndarray, adv: np.ndarray, beta: float, omega: float) -> np.ndarray:
    """DIPOLE's closed-form target mu · sigmoid(beta A) · exp(omega beta A), normalised on the grid."""
    p = mu / (1 + np.exp(-beta * adv)) * np.exp(omega * beta * adv)
    return p / p.sum()


# --------------------------------------------------------------------------- the two-mode bandit used in tests
MODES = (-0.5, 0.5)
MODE_STD = 0.2


def bandit_density(grid: np.ndarray) -> np.ndarray:
    """Behaviour density mu: 0.5 N(-0.5, 0.2^2) + 0.5 N(0.5, 0.2^2) restricted to [-1, 1], normalised on the grid."""
    mu = sum(0.5 * np.exp(-0.5 * ((grid - m) / MODE_STD) ** 2) for m in MODES)
    return mu / mu.sum()


def bandit_transitions(n: int, seed: int = 0) -> dict:
    """One-state bandit data with known advantage A(a) = a, as a batch dict with an `advantages` key."""
    rng = np.random.default_rng(seed)
    a = rng.choice(MODES, size=n) + MODE_STD * rng.normal(size=n)
    a = a[np.abs(a) <= 1.0][:, None].astype(np.float32)
    m = len(a)
    return {
        "observations": np.zeros((m, 1), np.float32),
        "next_observations": np.zeros((m, 1), np.float32),
        "actions": a,
        "rewards": np.zeros(m, np.float32),
        "masks": np.ones(m, np.float32),
        "advantages": a[:, 0].copy(),
    }


# --------------------------------------------------------------------------- a 2-D bandit with a learned critic
# Behaviour: three Gaussian modes (std 0.15) inside [-1, 1]^2; reward r(a) non-linear in both action dims. The data
# carries only rewards (masks 0, one state), so an agent's critic must learn Q = r and V = an expectile of r.
MODES_2D = ((-0.5, -0.4), (0.5, -0.4), (0.0, 0.5))
MODE_STD_2D = 0.15


def reward_2d(a: np.ndarray) -> np.ndarray:
    """r(a) for actions (..., 2): a ridge in a0 times a slope in a1, so the best actions lie inside modes, not at
    the box's corners."""
    return np.sin(3.0 * a[..., 0]) * 0.5 + 0.5 * a[..., 1] - 0.5 * a[..., 1] ** 2


def bandit2d_density(grid_xy: np.ndarray) -> np.ndarray:
    """mu on points (N, 2), normalised over them (a regular grid)."""
    mu = sum(np.exp(-0.5 * (((grid_xy - np.asarray(m)) / MODE_STD_2D) ** 2).sum(-1)) for m in MODES_2D)
    return mu / mu.sum()


def bandit2d_transitions(n: int, seed: int = 0) -> dict:
    """One-state bandit data (observation 0) with rewards r(a) and masks 0: no advantage is given."""
    rng = np.random.default_rng(seed)
    a = np.asarray(MODES_2D)[rng.integers(3, size=n)] + MODE_STD_2D * rng.normal(size=(n, 2))
    a = a[np.all(np.abs(a) <= 1.0, axis=1)].astype(np.float32)
    m = len(a)
    return {
        "observations": np.zeros((m, 1), np.float32),
        "next_observations": np.zeros((m, 1), np.float32),
        "actions": a,
        "rewards": reward_2d(a).astype(np.float32),
        "masks": np.zeros(m, np.float32),
    }


def grid_2d(n: int = 161) -> np.ndarray:
    g = np.linspace(-1, 1, n)
    return np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)


def expectile(values: np.ndarray, weights: np.ndarray, tau: float) -> float:
    """The tau-expectile of a discrete distribution (values, weights summing to 1), by bisection."""
    lo, hi = float(values.min()), float(values.max())
    for _ in range(100):
        m = 0.5 * (lo + hi)
        d = values - m
        grad = (weights * np.where(d > 0, tau, 1 - tau) * d).sum()
        lo, hi = (m, hi) if grad > 0 else (lo, m)
    return 0.5 * (lo + hi)


# --------------------------------------------------------------------------- several reward terms, in 2-D
def _log_kernel(points: np.ndarray, x: np.ndarray, t: float) -> np.ndarray:
    """-|x - t g|^2 / (2 (1 - t)^2) for samples x (n, 2) and grid points g (M, 2) -> (n, M)."""
    d2 = (x**2).sum(1)[:, None] - 2 * t * x @ points.T + t**2 * (points**2).sum(1)[None]
    return -0.5 * d2 / (1 - t) ** 2


def _velocity_from_kernel(points, p, x, t, log_kernel):
    logw = np.log(np.maximum(p, 1e-300))[None] + log_kernel
    w = np.exp(logw - logw.max(axis=1, keepdims=True))
    return (w @ points / w.sum(1, keepdims=True) - x) / (1 - t)


def exact_velocity_2d(points: np.ndarray, p: np.ndarray, x: np.ndarray, t: float) -> np.ndarray:
    """The exact marginal velocity (E[x1 | x_t = x] - x) / (1 - t) of a density held on 2-D points (M, 2) with
    probabilities p (M,), at samples x (n, 2)."""
    return _velocity_from_kernel(points, p, x, t, _log_kernel(points, x, t))


def exact_term_guided_samples(points, p_ref, pairs, weights, flow_steps: int, n: int = 2000, seed: int = 11):
    """dipole.agents.terms' Euler ODE, v = v_ref + sum_k lambda_k (v_k+ - v_k-), driven by the exact fields of
    p_ref and of each (p_k+, p_k-) in `pairs`; clipped to [-1, 1] as the sampler clips."""
    norm = lambda q: q / q.sum()
    p_ref, pairs = norm(p_ref), [(norm(a), norm(b)) for a, b in pairs]
    x = np.random.default_rng(seed).normal(size=(n, 2))
    for i in range(flow_steps):
        t = i / flow_steps
        kernel = _log_kernel(points, x, t)
        v = _velocity_from_kernel(points, p_ref, x, t, kernel)
        for lam, (pp, pn) in zip(weights, pairs):
            if lam:
                v = v + lam * (_velocity_from_kernel(points, pp, x, t, kernel)
                               - _velocity_from_kernel(points, pn, x, t, kernel))
        x = x + v / flow_steps
    return np.clip(x, -1, 1)
