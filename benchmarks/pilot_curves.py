"""Learning curves of several `dipole bench` folders in one figure, and which (task, updates) pairs separate agents.

Each folder is a finished (or partly finished) bench of a suite that evaluates while training (`pilot-*`). The
figure has one column per task of every folder and one row per metric (success; subgoal progress where the tasks
report it), each agent's mean ± std over seeds against updates.

For every task and evaluation step, the printed JSON says whether the step ranks agents by the written rule of
issue 35's suites: the best of IQL and IFQL reaches 20-80 % success, and BC sits below it by more than the 95 %
interval of the difference of two success rates (episodes pooled over seeds, binomial standard errors:
1.96 * sqrt(p1 (1 - p1) / n1 + p2 (1 - p2) / n2)).

    python benchmarks/pilot_curves.py runs/bench/pilot-scene runs/bench/pilot-puzzle-3x3 --png results/pilot.png \
        --json results/pilot.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

RANGE = (20.0, 80.0)  # success (%) of the best of IQL/IFQL that leaves room above and below
STRONG, FLOOR = ("iql", "ifql"), "bc"


def load(folder: str) -> dict:
    path = os.path.join(folder, "results.json")
    if not os.path.exists(path):
        sys.exit(f"error: {path} not found; pass folders written by `dipole bench` (a finished job writes it, and "
                 "`dipole bench ... --report` writes it for the runs finished so far)")
    with open(path) as f:
        summary = json.load(f)
    if not any(a.get("curves") for a in summary["agents"].values()):
        sys.exit(f"error: {path} has no learning curves; its suite must evaluate while training (a pilot-* suite)")
    return summary


def separation(p_best: float, p_floor: float, n_best: int, n_floor: int) -> tuple[float, float]:
    """(difference, half-width of its 95 % interval), success rates in %, episodes pooled over seeds."""
    a, b = p_best / 100.0, p_floor / 100.0
    half = 1.96 * math.sqrt(a * (1 - a) / n_best + b * (1 - b) / n_floor)
    return p_best - p_floor, 100.0 * half


def ranking_steps(summary: dict) -> list[dict]:
    """One row per (task, step) where the strong baselines and BC were both evaluated."""
    agents, rows = summary["agents"], []
    episodes = summary["eval_episodes"]
    for task in next(iter(agents.values()))["tasks"]:
        by_agent = {}
        for name, a in agents.items():
            cur = a.get("curves", {}).get("success")
            if cur and cur["tasks"].get(task):
                by_agent[name] = dict(zip(cur["steps"], cur["tasks"][task]))
        steps = sorted({s for curve in by_agent.values() for s in curve})
        for step in steps:
            cells = {n: c.get(step) for n, c in by_agent.items() if c.get(step) is not None}
            strong = [n for n in STRONG if n in cells]
            row = {"suite": summary["suite"], "task": task, "step": step,
                   "success": {n: round(v[0], 1) for n, v in cells.items()}}
            if strong and FLOOR in cells:
                best = max(strong, key=lambda n: cells[n][0])
                n = episodes * summary["seeds"]
                diff, half = separation(cells[best][0], cells[FLOOR][0], n, n)
                row.update(best=best, bc_gap=round(diff, 1), gap_interval=round(half, 1),
                           ranks=bool(RANGE[0] <= cells[best][0] <= RANGE[1] and diff > half))
            rows.append(row)
    return rows


def figure(summaries: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    import numpy as np

    columns = [(s, t) for s in summaries for t in next(iter(s["agents"].values()))["tasks"]]
    metrics = [m for m in ("success", "progress")
               if any(m in a.get("curves", {}) for s in summaries for a in s["agents"].values())]
    agents = list(dict.fromkeys(a for s in summaries for a in s["agents"]))
    fig, axes = plt.subplots(len(metrics), len(columns), figsize=(3.0 * len(columns), 2.7 * len(metrics)),
                             squeeze=False)
    for r, metric in enumerate(metrics):
        for c, (summary, task) in enumerate(columns):
            ax, drawn = axes[r][c], 0
            for i, name in enumerate(agents):
                cur = summary["agents"].get(name, {}).get("curves", {}).get(metric)
                cells = cur and cur["tasks"].get(task)
                pts = [(st, v) for st, v in zip(cur["steps"], cells)] if cells else []
                pts = [(st, v) for st, v in pts if v is not None]
                if not pts:
                    continue
                x = np.array([p[0] for p in pts])
                m, s = np.array([p[1][0] for p in pts]), np.array([p[1][1] for p in pts])
                ax.plot(x, m, marker="o", ms=3, color=f"C{i}", label=name)
                ax.fill_between(x, m - s, m + s, color=f"C{i}", alpha=0.15)
                drawn += 1
            if not drawn:  # e.g. subgoal progress of a navigation task, which has no subgoals
                ax.set_axis_off()
                ax.text(0.5, 0.5, f"no {metric} reported", ha="center", va="center", fontsize=8, color="0.4",
                        transform=ax.transAxes)
                continue
            ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v / 1000:g}k"))
            if metric == "success":
                ax.axhspan(*RANGE, color="0.9", zorder=0)
            ax.set_ylim(-3, 103)
            ax.set_title(f"{summary['category'].split('-v0')[0]} {task.split('-singletask-')[-1].removesuffix('-v0')}",
                         fontsize=8)
            ax.set_xlabel("updates", fontsize=8)
            ax.set_ylabel({"success": "success (%)", "progress": "subgoal progress (%)"}[metric], fontsize=8)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"mean ± std over seeds; {summaries[0]['eval_episodes']} episodes per (task, seed, point); "
                 f"shaded: {RANGE[0]:g}-{RANGE[1]:g} %", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="+", help="bench folders of suites with learning curves")
    p.add_argument("--png", help="write the figure here")
    p.add_argument("--json", help="write the rows here too")
    args = p.parse_args(argv)
    summaries = [load(f) for f in args.folders]
    out = {"rule": {"best_of": list(STRONG), "range": list(RANGE), "floor": FLOOR,
                    "gap": "BC below the best by more than the 95 % binomial interval of the difference"},
           "folders": args.folders, "rows": [r for s in summaries for r in ranking_steps(s)]}
    if args.png:
        figure(summaries, args.png)
    text = json.dumps(out, indent=1)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
