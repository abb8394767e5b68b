"""The field's statistics over the tasks of several `dipole bench` folders pooled into one suite.

A suite has one dataset, so a test suite of tasks from several families (scene, puzzle-3x3, cube-double) is run as
one bench folder per family. This script reads every finished run of every folder (its `runs/TASK/AGENT/seedN/
result.json`), pools their tasks into one (seeds, tasks) score matrix per agent, and writes what `dipole bench`
writes for one folder: IQM and mean with 95 % stratified bootstrap intervals, per-task IQMs, the probability that
the reference agent (DIPOLE where present) improves on each other agent, performance profiles (`rliable`).

Besides each agent's headline, a row of an agent's sweep can enter as an agent of its own with `--row`, e.g.
`--row dipole:2:1` (DIPOLE at omega 2, K 1: "w/o rs" at its OGBench headline's omega) or `--row dipole:0:32:argmax`;
`-` for an agent without omega (`--row ifql:-:32`). A seed enters an agent's matrix only when every pooled task has
it.

    python benchmarks/pooled_stats.py runs/bench/test-scene runs/bench/test-puzzle-3x3 --agents bc,iql,ifql,dipole \
        --row dipole:2:1 --out results/round3-test
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys

import numpy as np

from dipole.bench.stats import PROFILE_POINTS, rliable_stats, score_matrices, stats_markdown, stats_plot
from dipole.runners.evaluation import row_selection


def parse_row(text: str) -> tuple[str, float | None, int, str | None]:
    """'AGENT:OMEGA:K[:SELECTION]' -> (agent, omega or None for '-', K, selection or None at K 1)."""
    parts = text.split(":")
    if len(parts) not in (3, 4):
        sys.exit(f"error: --row {text!r}: write AGENT:OMEGA:K or AGENT:OMEGA:K:SELECTION, e.g. dipole:0:1")
    agent, omega, k = parts[:3]
    try:
        w, k = (None if omega == "-" else float(omega)), int(k)
    except ValueError:
        sys.exit(f"error: --row {text!r}: OMEGA must be a number or -, K an integer")
    sel = (parts[3] if len(parts) == 4 else "argmax") if k > 1 else None
    return agent, w, k, sel


def row_label(agent: str, w: float | None, k: int, sel: str | None) -> str:
    return f"{agent}[{'' if w is None else f'omega={w:g},'}K={k}{f',{sel}' if sel else ''}]"


def folder_scores(folder: str, agents: list[str], rows: list[tuple]) -> tuple[list[str], dict, str]:
    """(the folder's tasks, {entry: {seed: {task: score}}}, metric) from its bench.json and finished runs."""
    path = os.path.join(folder, "bench.json")
    if not os.path.exists(path):
        sys.exit(f"error: {path} not found; pass folders written by `dipole bench`")
    with open(path) as f:
        bench = json.load(f)
    tasks, metric = list(bench["suite.tasks"]), "success" if bench.get("suite.source") == "ogbench" else "return"
    score = (lambda r: 100 * r["success"]) if metric == "success" else (lambda r: r["return"])
    out = {}
    for task in tasks:
        for agent in agents:
            for p in glob.glob(os.path.join(folder, "runs", task, agent, "seed*", "result.json")):
                with open(p) as f:
                    r = json.load(f)
                out.setdefault(agent, {}).setdefault(r["seed"], {})[task] = score(r["headline"])
                for a, w, k, sel in rows:
                    if a != agent:
                        continue
                    match = [x for x in r.get("omega_sweep") or []
                             if x["omega"] == w and int(x["num_candidates"]) == k and row_selection(x) == sel]
                    if match:
                        out.setdefault(row_label(a, w, k, sel), {}).setdefault(r["seed"], {})[task] = score(match[0])
    return tasks, out, metric


def pooled(folders: list[str], agents: list[str], rows: list[tuple]) -> tuple[list[str], dict, str]:
    """(every folder's tasks in order, {entry: {seed: [score per pooled task]}} of complete seeds, metric)."""
    tasks, by_entry, metrics = [], {}, set()
    for folder in folders:
        t, scores, metric = folder_scores(folder, agents, rows)
        if set(t) & set(tasks):
            sys.exit(f"error: {folder} repeats tasks of an earlier folder ({sorted(set(t) & set(tasks))}); pool "
                     "folders of different tasks")
        tasks += t
        metrics.add(metric)
        for entry, seeds in scores.items():
            for seed, cells in seeds.items():
                by_entry.setdefault(entry, {}).setdefault(seed, {}).update(cells)
    if len(metrics) > 1:
        sys.exit("error: the folders score by different metrics (success and return); pool one kind")
    per_seed = {e: {s: [cells[t] for t in tasks] for s, cells in seeds.items() if all(t in cells for t in tasks)}
                for e, seeds in by_entry.items()}
    return tasks, per_seed, metrics.pop() if metrics else "success"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="+", help="bench folders (each a suite of different tasks)")
    p.add_argument("--agents", required=True, help="comma-separated agents, e.g. bc,iql,ifql,fql,cfgrl,dipole")
    p.add_argument("--row", action="append", default=[], help="AGENT:OMEGA:K[:SELECTION], a sweep row as an entry")
    p.add_argument("--out", required=True, help="folder for stats.json, stats.md and stats.png")
    p.add_argument("--reps", type=int, default=10_000, help="bootstrap replications")
    args = p.parse_args(argv)
    agents = [a.strip() for a in args.agents.split(",") if a.strip()]
    rows = [parse_row(r) for r in args.row]
    tasks, per_seed, metric = pooled(args.folders, agents, rows)
    order = agents + [row_label(*r) for r in rows]
    scores = score_matrices({e: per_seed.get(e, {}) for e in order}, len(tasks))
    if not scores:
        sys.exit("error: no agent has a seed with every pooled task finished")
    unit = "success rate (%)" if metric == "success" else "episode return"
    tau = np.linspace(0.0, 100.0, PROFILE_POINTS) if metric == "success" else None
    stats = rliable_stats(scores, tasks, tau=tau, reps=args.reps)
    os.makedirs(args.out, exist_ok=True)
    stats["folders"], stats["seeds"] = args.folders, {e: len(m) for e, m in scores.items()}
    with open(os.path.join(args.out, "stats.json"), "w") as f:
        json.dump(stats, f, indent=1)
    md = (f"Pooled over {len(tasks)} tasks of {len(args.folders)} bench folders ({', '.join(args.folders)}); "
          f"seeds with every task: " + ", ".join(f"{e} {len(m)}" for e, m in scores.items()) + "\n\n"
          + stats_markdown(stats, unit))
    with open(os.path.join(args.out, "stats.md"), "w") as f:
        f.write(md + "\n")
    stats_plot(stats, unit, os.path.join(args.out, "stats.png"))
    print(md)


if __name__ == "__main__":
    main()
