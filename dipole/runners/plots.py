"""Plots written into a run folder: learning curve, omega sweep (the controllability curve), fine-tuning curve.

Conventions: step axes read 10k / 1M; every axis has a label; legends sit below the axes, off the data; error bars
say what they are (here always the standard error of the mean over evaluation episodes, while tables give the
standard deviation, labelled as such).
"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402

from dipole.runners.evaluation import row_selection, setting_label  # noqa: E402


def _steps(value, _pos=None) -> str:
    """1500 -> '1.5k', 2000000 -> '2M'."""
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:g}{unit}"
    return f"{value:g}"


def _step_axis(ax, label: str) -> None:
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
    ax.xaxis.set_major_formatter(FuncFormatter(_steps))
    ax.set_xlabel(label)


def _legend_below(ax, handles=None, ncol: int = 2) -> None:
    handles = handles if handles is not None else ax.get_legend_handles_labels()[0]
    if handles:
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=ncol, fontsize=8,
                  frameon=False)


def _success_and_return(ax, evals: list[dict], prefix: str) -> list:
    """Success rate (%) on `ax` and episode return on a twin axis (on `ax` itself when the task has no success
    signal), against the evaluations' steps. Returns the line handles for one legend."""
    steps = [e["step"] for e in evals]
    handles = []
    if all(isinstance(e.get("success"), float) for e in evals):
        handles += ax.plot(steps, [100 * e["success"] for e in evals], "o-", label=f"{prefix}success rate (%)")
        ax.set_ylim(-2, 102)
        ax.set_ylabel("success rate (%)")
        ret_ax = ax.twinx()
    else:
        ret_ax = ax
    handles += ret_ax.plot(steps, [e["return"] for e in evals], "s--", color="tab:orange",
                           label=f"{prefix}episode return")
    ret_ax.set_ylabel("episode return")
    return handles


def _save(fig, path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def learning_curve(metrics: list[dict], evals: list[dict], path: str, title: str = "") -> str:
    """Critic losses, policy losses (validation split dashed, when logged) and evaluation against updates."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    steps = [m["step"] for m in metrics]
    groups = ((axes[0], ("q_loss", "v_loss"), "critic loss (log scale)", "critic losses"),
              (axes[1], ("actor_pos_loss", "actor_neg_loss", "actor_loss", "bc_loss", "distill_loss"), "policy loss",
               "policy losses"))
    for ax, keys, ylabel, name in groups:
        for key in keys:
            if metrics and key in metrics[0]:
                line, = ax.plot(steps, [m[key] for m in metrics], label=f"{key} (train)")
                if f"val/{key}" in metrics[0]:
                    ax.plot(steps, [m[f"val/{key}"] for m in metrics], "--", color=line.get_color(),
                            label=f"{key} (validation)")
        ax.set_title(name)
        ax.set_ylabel(ylabel)
        _step_axis(ax, "updates")
        _legend_below(ax)
    axes[0].set_yscale("log")
    ax = axes[2]
    _step_axis(ax, "updates")
    if evals:
        handles = _success_and_return(ax, evals, "")
        omega, k = evals[-1].get("omega"), int(evals[-1].get("num_candidates", 1))
        knob = "" if omega in (None, "") else f"omega={omega:g}, "
        how = f" {evals[-1].get('selection') or 'argmax'}" if k > 1 else ""
        ax.set_title(f"evaluation ({knob}K={k}{how}, {int(evals[-1]['episodes'])} episodes each)")
        _legend_below(ax, handles)
    else:
        ax.set_title("evaluation (none logged)")
        ax.set_ylabel("success rate (%)")
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def omega_sweep_plot(rows: list[dict], path: str, title: str = "", headline_omega: float | None = None) -> str:
    """Success rate and return against omega, one line per number of rejection-sampling candidates K."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    episodes = sorted({int(r.get("episodes", 1)) for r in rows})
    for k, how in sorted({(r["num_candidates"], row_selection(r) or "") for r in rows}):
        sel = sorted((r for r in rows if r["num_candidates"] == k and (row_selection(r) or "") == how),
                     key=lambda r: r["omega"] or 0.0)
        om = [r["omega"] or 0.0 for r in sel]  # None: an agent without omega, drawn at 0
        label = setting_label(k, how or None)
        if all(r["success"] is not None for r in sel):
            axes[0].errorbar(om, [100 * r["success"] for r in sel], yerr=[100 * _sem(r, "success") for r in sel],
                             marker="o", capsize=3, label=label)
        axes[1].errorbar(om, [r["return"] for r in sel], yerr=[_sem(r, "return") for r in sel], marker="o",
                         capsize=3, label=label)
    for ax, name in zip(axes, ("success rate (%)", "episode return")):
        if headline_omega is not None:
            ax.axvline(headline_omega, color="gray", ls=":", label=f"headline omega={headline_omega:g}")
        ax.set_xlabel("greediness omega" if any(r["omega"] is not None for r in rows) else "(agent without omega)")
        ax.set_ylabel(name)
        _legend_below(ax)
    axes[0].set_ylim(-2, 102)
    n = "/".join(map(str, episodes))
    fig.suptitle((title or "omega sweep") + f"\neach point its own evaluation of {n} episodes; "
                 "error bars: ±1 standard error of the mean over episodes")
    fig.tight_layout()
    return _save(fig, path)


def _sem(row, key):
    n = max(1, row.get("episodes", 1))
    return (row.get(f"{key}_std") or 0.0) / n**0.5


def finetune_curve(evals: list[dict], episodes: list[dict], path: str, title: str = "") -> str:
    """Evaluation success/return against environment steps (step 0 = the offline agent) and training episodes."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    ax = axes[0]
    _step_axis(ax, "environment steps")
    if evals:
        handles = _success_and_return(ax, evals, "eval ")
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_title("evaluation (step 0 = offline agent)")
        _legend_below(ax, handles)
    ax = axes[1]
    _step_axis(ax, "environment steps")
    ax.set_ylabel("episode return")
    ax.set_title("training episodes (acting policy)")
    if episodes:
        xs = np.array([e["step"] for e in episodes])
        rs = np.array([e["return"] for e in episodes])
        ax.plot(xs, rs, ".", alpha=0.4, label="training episode return")
        w = max(1, len(rs) // 20)
        if len(rs) >= w:
            ax.plot(xs[w - 1:], np.convolve(rs, np.ones(w) / w, mode="valid"), "-", label=f"running mean of {w}")
        _legend_below(ax)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)
