"""The field's aggregate statistics for a bench, computed with `rliable` (Agarwal et al., 2021).

From the score matrix of each agent, one row per seed and one column per task (only seeds with every task finished),
this writes beside the bench's mean ± std tables:

- per task and aggregate: the interquartile mean (IQM, the mean of the middle 50 % of all runs x tasks) and the mean,
  each with a 95 % stratified bootstrap confidence interval (runs resampled within each task);
- the probability that the reference agent (DIPOLE when it is in the bench, else the first agent) improves on each
  other agent, P(X > Y) averaged over tasks, with its interval, and the IQM difference with its interval;
- performance profiles: the share of runs whose score exceeds tau, over a grid of tau.

Every interval comes from a fixed random state, so the same runs give the same report.
"""

from __future__ import annotations

import warnings

import numpy as np

CONFIDENCE = 0.95
REPS = 10_000  # bootstrap replications for the aggregate IQM, mean and IQM differences
FEW_REPS = 2_000  # for per-task intervals, probabilities of improvement (a Mann-Whitney test per task and
# replication) and performance profiles: they are many, or slow per replication
PROFILE_POINTS = 51


def score_matrices(per_seed: dict[str, dict[int, list[float]]], num_tasks: int) -> dict[str, np.ndarray]:
    """`{agent: {seed: [score per task]}}` -> `{agent: (seeds, tasks) array}` of the seeds with every task finished.

    An agent without one complete seed is left out (no interval can be formed from nothing)."""
    out = {}
    for agent, seeds in per_seed.items():
        rows = [seeds[s] for s in sorted(seeds) if len(seeds[s]) == num_tasks]
        if rows:
            out[agent] = np.asarray(rows, dtype=float)
    return out


def reference_agent(agents: list[str]) -> str:
    """The agent the probabilities of improvement are taken for: DIPOLE (its first entry) if present, else the first."""
    return next((a for a in agents if a.split("[")[0] == "dipole"), agents[0])


def _iqm(x):
    from rliable import metrics

    return metrics.aggregate_iqm(x)


def _mean(x):
    return float(np.mean(x))


def _interval(score_dict, func, reps, seed):
    from rliable import library as rly

    with warnings.catch_warnings():  # rliable 1.2 still passes arch the RandomState arch 7 calls deprecated
        warnings.simplefilter("ignore", FutureWarning)
        points, intervals = rly.get_interval_estimates(
            score_dict, lambda *xs: np.array([func(*xs)]), reps=reps, confidence_interval_size=CONFIDENCE,
            random_state=np.random.RandomState(seed))
    return {k: (float(np.squeeze(points[k])), float(intervals[k][0].item()), float(intervals[k][1].item()))
            for k in score_dict}


def rliable_stats(scores: dict[str, np.ndarray], tasks: list[str], reference: str | None = None,
                  reps: int = REPS, seed: int = 0, tau: np.ndarray | None = None) -> dict:
    """IQM, mean, probabilities of improvement and performance profiles (see the module's docstring).

    `scores`: `{agent: (runs, tasks)}`; every value is (point, low, high) with a `CONFIDENCE` interval from `reps`
    bootstrap replications (aggregates) or `min(reps, FEW_REPS)` (the rest).
    """
    if not scores:
        return {}
    agents = list(scores)
    for a, m in scores.items():
        if m.ndim != 2 or m.shape[1] != len(tasks):
            raise ValueError(f"scores of {a} must have shape (runs, {len(tasks)}), got {m.shape}")
    reference = reference if reference in scores else reference_agent(agents)
    global_state = np.random.get_state()  # rliable's stratified resampling draws from NumPy's global generator
    np.random.seed(seed)
    try:
        return _stats(scores, tasks, agents, reference, reps, seed, tau)
    finally:
        np.random.set_state(global_state)


def _stats(scores, tasks, agents, reference, reps, seed, tau):
    from rliable import library as rly
    from rliable import metrics

    few = min(reps, FEW_REPS)
    out = {"confidence": CONFIDENCE, "reps": reps, "few_reps": few, "seed": seed, "reference": reference,
           "runs": {a: int(m.shape[0]) for a, m in scores.items()}, "tasks": list(tasks)}
    out["iqm"] = _interval(scores, _iqm, reps, seed)
    out["mean"] = _interval(scores, _mean, reps, seed)
    out["per_task"] = {
        t: {"iqm": _interval({a: m[:, [j]] for a, m in scores.items()}, _iqm, few, seed),
            "mean": _interval({a: m[:, [j]] for a, m in scores.items()}, _mean, few, seed)}
        for j, t in enumerate(tasks)}
    others = [a for a in agents if a != reference]
    pairs = {a: [scores[reference], scores[a]] for a in others}
    out["improvement"] = _interval(pairs, metrics.probability_of_improvement, few, seed) if pairs else {}
    out["iqm_difference"] = _interval(pairs, lambda x, y: _iqm(x) - _iqm(y), reps, seed) if pairs else {}
    if tau is None:
        hi = max(float(m.max()) for m in scores.values())
        tau = np.linspace(0.0, max(hi, 1e-9), PROFILE_POINTS)
    profiles, profile_cis = rly.create_performance_profile(scores, np.asarray(tau), reps=few)
    out["profile"] = {"tau": [float(t) for t in tau],
                      **{a: {"share": [float(v) for v in profiles[a]],
                             "low": [float(v) for v in profile_cis[a][0]],
                             "high": [float(v) for v in profile_cis[a][1]]} for a in agents}}
    return out


def _fmt(v, digits=1):
    return f"{v[0]:.{digits}f} [{v[1]:.{digits}f}, {v[2]:.{digits}f}]"


def stats_markdown(stats: dict, unit: str) -> str:
    """The tables of `rliable_stats`: aggregate, per task, and the reference against each other agent."""
    if not stats:
        return "No agent has a seed with every task finished: no aggregate statistics yet."
    agents = list(stats["iqm"])
    pct = round(100 * stats["confidence"])
    runs = ", ".join(f"{a} {n}" for a, n in stats["runs"].items())
    lines = [f"Aggregate statistics (`rliable`): {unit}; point estimate [{pct} % stratified bootstrap interval, "
             f"{stats['reps']} replications ({stats['few_reps']} per task), random state {stats['seed']}]; runs (seeds with every task finished): "
             f"{runs}.", "",
             "| | " + " | ".join(agents) + " |", "|---|" + "---:|" * len(agents),
             "| **IQM** | " + " | ".join(f"**{_fmt(stats['iqm'][a])}**" for a in agents) + " |",
             "| mean | " + " | ".join(_fmt(stats["mean"][a]) for a in agents) + " |"]
    for t, row in stats["per_task"].items():
        lines.append(f"| {t} (IQM) | " + " | ".join(_fmt(row["iqm"][a]) for a in agents) + " |")
    ref = stats["reference"]
    if stats["improvement"]:
        lines += ["", f"`{ref}` against each other agent: probability of improvement P({ref} > other), averaged over "
                      f"tasks ({stats['few_reps']} replications), and the IQM difference ({ref} - other):", "",
                  "| other agent | P(improvement) | IQM difference |", "|---|---:|---:|"]
        lines += [f"| {a} | {_fmt(stats['improvement'][a], 2)} | {_fmt(stats['iqm_difference'][a])} |"
                  for a in stats["improvement"]]
    return "\n".join(lines)


def stats_plot(stats: dict, unit: str, path: str) -> None:
    """Three panels: IQM and mean with intervals, performance profiles, probabilities of improvement."""
    if not stats:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    agents = list(stats["iqm"])
    fig, axes = plt.subplots(1, 3, figsize=(16, 4))
    y = np.arange(len(agents))
    for off, key, color in ((-0.15, "iqm", "C0"), (0.15, "mean", "C1")):
        v = np.array([stats[key][a] for a in agents])
        axes[0].errorbar(v[:, 0], y + off, xerr=[v[:, 0] - v[:, 1], v[:, 2] - v[:, 0]], fmt="o", capsize=3,
                         color=color, label=key.upper() if key == "iqm" else key)
    axes[0].set_yticks(y)
    axes[0].set_yticklabels(agents)
    axes[0].set_xlabel(unit)
    axes[0].set_title(f"aggregate, {round(100 * stats['confidence'])} % intervals")
    axes[0].legend(fontsize=8)
    tau = np.array(stats["profile"]["tau"])
    for a in agents:
        p = stats["profile"][a]
        (line,) = axes[1].plot(tau, p["share"], label=a)
        axes[1].fill_between(tau, p["low"], p["high"], alpha=0.2, color=line.get_color())
    axes[1].set_xlabel(f"tau ({unit})")
    axes[1].set_ylabel("share of runs with score > tau")
    axes[1].set_title("performance profiles")
    axes[1].legend(fontsize=8)
    others = list(stats["improvement"])
    if others:
        v = np.array([stats["improvement"][a] for a in others])
        yy = np.arange(len(others))
        axes[2].errorbar(v[:, 0], yy, xerr=[v[:, 0] - v[:, 1], v[:, 2] - v[:, 0]], fmt="o", capsize=3)
        axes[2].axvline(0.5, color="gray", ls="--", lw=1)
        axes[2].set_yticks(yy)
        axes[2].set_yticklabels(others)
        axes[2].set_xlim(0, 1)
        axes[2].set_xlabel(f"P({stats['reference']} > other)")
    axes[2].set_title("probability of improvement")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
