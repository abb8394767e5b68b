"""Plots written into a run folder: learning curve and omega sweep (the controllability curve)."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def learning_curve(metrics: list[dict], evals: list[dict], path: str, title: str = "") -> str:
    """Critic losses, policy losses and evaluation success/return against updates."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    steps = [m["step"] for m in metrics]
    for key in ("q_loss", "v_loss"):
        if metrics and key in metrics[0]:
            axes[0].plot(steps, [m[key] for m in metrics], label=key)
    axes[0].set_yscale("log")
    axes[0].set_title("critic losses")
    for key in ("actor_pos_loss", "actor_neg_loss", "actor_loss", "bc_loss"):
        if metrics and key in metrics[0]:
            axes[1].plot(steps, [m[key] for m in metrics], label=key)
    axes[1].set_title("policy losses")
    if evals:
        es = [e["step"] for e in evals]
        if all(isinstance(e.get("success"), float) for e in evals):
            axes[2].plot(es, [e["success"] for e in evals], "o-", label="success rate")
        ax2 = axes[2].twinx()
        ax2.plot(es, [e["return"] for e in evals], "s--", color="tab:orange", label="return")
        ax2.set_ylabel("return")
        omega, k = evals[-1].get("omega"), int(evals[-1].get("num_candidates", 1))
        axes[2].set_title(f"evaluation (omega={omega}, K={k})")
        axes[2].set_ylim(-0.02, 1.02)
    for ax in axes:
        ax.set_xlabel("updates")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def omega_sweep_plot(rows: list[dict], path: str, title: str = "", headline_omega: float | None = None) -> str:
    """Success rate and return against omega, one line per number of rejection-sampling candidates K."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for k in sorted({r["num_candidates"] for r in rows}):
        sel = sorted((r for r in rows if r["num_candidates"] == k), key=lambda r: r["omega"])
        om = [r["omega"] for r in sel]
        label = "K=1 (no rejection sampling)" if k == 1 else f"K={k} (rejection sampling)"
        if all(r["success"] is not None for r in sel):
            axes[0].errorbar(om, [r["success"] for r in sel], yerr=[_sem(r, "success") for r in sel], marker="o",
                             capsize=3, label=label)
        axes[1].errorbar(om, [r["return"] for r in sel], yerr=[_sem(r, "return") for r in sel], marker="o",
                         capsize=3, label=label)
    for ax, name in zip(axes, ("success rate", "return")):
        if headline_omega is not None:
            ax.axvline(headline_omega, color="gray", ls=":", label=f"headline omega={headline_omega}")
        ax.set_xlabel("greediness omega")
        ax.set_ylabel(name)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    axes[0].set_ylim(-0.02, 1.02)
    fig.suptitle(title or "omega sweep (each point is its own evaluation)")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _sem(row, key):
    n = max(1, row.get("episodes", 1))
    return (row.get(f"{key}_std") or 0.0) / n**0.5
