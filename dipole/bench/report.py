"""Benchmark tables (markdown) and plots from aggregated results."""

from __future__ import annotations

import os

import numpy as np

from dipole.runners.evaluation import row_selection, setting_label


def unit_of(summary: dict) -> str:
    return "success rate (%)" if summary.get("metric", "success") == "success" else "episode return"


def _cell(ms, bold=False, seeds=2):
    if ms is None:
        return "—"
    text = f"{ms[0]:.1f} ± {ms[1]:.1f}" if seeds > 1 else f"{ms[0]:.1f}"  # no spread to report from one seed
    return f"**{text}**" if bold else text


def markdown_tables(summary: dict) -> str:
    agents = list(summary["agents"])
    tasks = list(next(iter(summary["agents"].values()))["tasks"])
    spread = f"mean ± std over {summary['seeds']} seeds" if summary["seeds"] > 1 else "one seed, so no spread"
    named = summary.get("seed_list") or [0]
    if named[0] != 0:  # a suite whose seeds start elsewhere (a test suite kept apart from a pilot's seeds) says which
        spread += f" ({', '.join(map(str, named))})" if len(named) > 1 else f" (seed {named[0]})"
    unit = unit_of(summary)
    lines = [f"Suite `{summary['suite']}`: {unit}, {spread}; "
             f"{summary['steps']} updates, `{summary['preset']}` networks, {summary['eval_episodes']} episodes per "
             "evaluation; headline omega and K from each agent's config (fixed in advance).", "",
             "| task | " + " | ".join(agents) + " |", "|---|" + "---:|" * len(agents)]
    for t in tasks:
        cells = [_cell(summary["agents"][a]["tasks"][t], seeds=summary["seeds"]) for a in agents]
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    cells = [_cell(summary["agents"][a]["category"], bold=True, seeds=summary["seeds"]) for a in agents]
    lines.append(f"| **{summary['category']} ({len(tasks)}-task average)** | " + " | ".join(cells) + " |")
    with_progress = [a for a in agents if summary["agents"][a].get("subgoal_progress")]
    if with_progress:
        lines += ["", "Subgoal progress at the headline setting: the share (%) of the goal's subgoals satisfied when "
                      "an episode ends (1 - unsatisfied / all, as OGBench's reward counts them), mean ± std over "
                      "seeds:", "", "| task | " + " | ".join(with_progress) + " |",
                  "|---|" + "---:|" * len(with_progress)]
        for t in tasks:
            cells = [_cell(summary["agents"][a]["subgoal_progress"].get(t), seeds=summary["seeds"])
                     for a in with_progress]
            lines.append(f"| {t} | " + " | ".join(cells) + " |")
    curves = {a: summary["agents"][a]["curves"] for a in agents if summary["agents"][a].get("curves")}
    for metric in ("success", "progress"):
        with_metric = [a for a, c in curves.items() if metric in c]
        if not with_metric:
            continue
        steps = sorted({st for a in with_metric for st in curves[a][metric]["steps"]})
        what = "success rate (%)" if metric == "success" else "subgoal progress (%)"
        lines += ["", f"Learning curves: category average {what} at the headline setting while training, mean ± std "
                      "over seeds:", "", "| updates | " + " | ".join(with_metric) + " |",
                  "|---:|" + "---:|" * len(with_metric)]
        for st in steps:
            cells = []
            for a in with_metric:
                c = curves[a][metric]
                cells.append(_cell(c["category"][c["steps"].index(st)] if st in c["steps"] else None,
                                   seeds=summary["seeds"]))
            lines.append(f"| {st} | " + " | ".join(cells) + " |")
    if summary.get("missing"):
        lines += ["", f"{summary['missing']} run(s) of this suite have not finished; their cells show — and the "
                      "average is given only over seeds with every task finished."]
    for a in agents:
        rows = summary["agents"][a]["omega_sweep"]
        if not rows:
            continue
        what = "Omega sweep" if rows[0]["omega"] is not None else "Candidate sweep"  # IFQL: K only
        lines += ["", f"{what} for `{a}` (category average {unit}, each point its own evaluation; "
                      "not used for the headline):", "", "| omega | K | selection | score |", "|---:|---:|---|---:|"]
        lines += [f"| {'-' if r['omega'] is None else format(r['omega'], 'g')} | {r['num_candidates']} | "
                  f"{row_selection(r) or '-'} | {_cell(r['score'], seeds=summary['seeds'])} |" for r in rows]
    return "\n".join(lines)


def bench_plots(summary: dict, out_dir: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    agents = list(summary["agents"])
    tasks = list(next(iter(summary["agents"].values()))["tasks"])
    fig, axes = plt.subplots(1, 2, figsize=(13, 4))
    width = 0.8 / len(agents)
    for i, a in enumerate(agents):
        cells = [summary["agents"][a]["tasks"][t] or (np.nan, 0.0) for t in tasks]
        m, s = [c[0] for c in cells], [c[1] for c in cells]
        axes[0].bar(np.arange(len(tasks)) + i * width, m, width, yerr=s, capsize=3, label=a)
    axes[0].set_xticks(np.arange(len(tasks)) + width * (len(agents) - 1) / 2)
    axes[0].set_xticklabels([t.split("singletask-")[-1].removesuffix("-v0") for t in tasks])
    unit = unit_of(summary)
    axes[0].set_ylabel(unit)
    axes[0].set_title(f"{summary['category']}: headline (fixed omega)")
    axes[0].legend(fontsize=8)
    for a in agents:
        rows = [r for r in summary["agents"][a]["omega_sweep"] if r["omega"] is not None]  # K-only sweeps: the table
        for k, how in sorted({(r["num_candidates"], row_selection(r) or "") for r in rows}):
            sel = [r for r in rows if r["num_candidates"] == k and (row_selection(r) or "") == how]
            axes[1].errorbar([r["omega"] for r in sel], [r["score"][0] for r in sel],
                             yerr=[r["score"][1] for r in sel], marker="o", capsize=3,
                             label=f"{a}, {setting_label(k, how or None)}")
    axes[1].set_xlabel("omega")
    axes[1].set_ylabel(f"category {unit}")
    axes[1].set_title("omega sweep (separate from the headline)")
    if axes[1].get_legend_handles_labels()[0]:
        axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "results.png"), dpi=110)
    plt.close(fig)


def curve_plots(summary: dict, path: str) -> None:
    """Learning curves (bench suites that evaluate while training): success (and subgoal progress where the tasks
    report it) against updates, the category average and each task, mean ± std over seeds."""
    agents = [a for a in summary["agents"] if summary["agents"][a].get("curves")]
    if not agents:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in ("success", "progress") if any(m in summary["agents"][a]["curves"] for a in agents)]
    metrics = metrics or ["return"]  # tasks without a success signal (DMC)
    tasks = list(next(iter(summary["agents"].values()))["tasks"])
    cols = ["category"] + tasks
    fig, axes = plt.subplots(len(metrics), len(cols), figsize=(3.2 * len(cols), 2.8 * len(metrics)), squeeze=False)
    for r, metric in enumerate(metrics):
        for c, col in enumerate(cols):
            ax = axes[r][c]
            for i, a in enumerate(agents):
                cur = summary["agents"][a]["curves"].get(metric)
                cells = cur and (cur["category"] if col == "category" else cur["tasks"].get(col))
                if not cells:
                    continue
                pts = [(st, v) for st, v in zip(cur["steps"], cells) if v is not None]
                x = np.array([p[0] for p in pts])
                m, s = np.array([p[1][0] for p in pts]), np.array([p[1][1] for p in pts])
                ax.plot(x, m, marker="o", ms=3, color=f"C{i}", label=a)
                ax.fill_between(x, m - s, m + s, color=f"C{i}", alpha=0.15)
            title = summary["category"] if col == "category" else col.split("singletask-")[-1].removesuffix("-v0")
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("updates", fontsize=8)
            if c == 0:
                ax.set_ylabel({"success": "success (%)", "progress": "subgoal progress (%)"}.get(metric, metric))
            if metric != "return":
                ax.set_ylim(-3, 103)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
