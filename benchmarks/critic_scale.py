"""The critic's scale and DIPOLE's weights in finished `dipole bench` folders, against the data's discounted return.

For every population of each bench folder: the last metrics.csv row of each member (q_mean, v_mean and, for DIPOLE,
w_mean, w_over_0.9, w_under_0.1, adv_mean, adv_std), averaged over members per task with their spread; beside them
the data's discounted return-to-go at the population's own discount (mean over the rows of the task's relabelled
training data, returns cut at episode ends as the data is), and the floor of an episode that never succeeds,
-1 / (1 - gamma) at reward -1 per step. Prints one JSON object; with --markdown, a table as well.

    python benchmarks/critic_scale.py runs/bench/cube-single-mini-policy runs/bench/cube-single-mini-iql --markdown
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import os

import numpy as np

COLUMNS = ("q_mean", "v_mean", "w_mean", "w_over_0.9", "w_under_0.1", "adv_mean", "adv_std")


def discounted_return(rewards: np.ndarray, masks: np.ndarray, ends: np.ndarray, gamma: float) -> np.ndarray:
    """Return-to-go of every row: r + gamma * mask * G(next row), cut where an episode ends (ends[t] = 1)."""
    out = np.zeros(len(rewards), np.float64)
    following = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        following = rewards[t] + gamma * masks[t] * (0.0 if ends[t] else following)
        out[t] = following
    return out


def data_return(task: str, path: str, gamma: float) -> float:
    from dipole.data.ogbench import load_ogbench

    env, ds, _ = load_ogbench(task, dataset_path=path)
    env.close()
    ends = np.asarray(ds["terminals"] if "terminals" in ds.arrays else np.zeros(len(ds["rewards"])), bool)
    return float(discounted_return(np.asarray(ds["rewards"], np.float64), np.asarray(ds["masks"], np.float64), ends,
                                   gamma).mean())


def population_scale(pop_dir: str) -> dict:
    header = json.load(open(os.path.join(pop_dir, "config.json")))
    gamma = float(header["config"]["discount"])
    rows = list(csv.DictReader(open(os.path.join(pop_dir, "metrics.csv"))))
    last_step = rows[-1]["step"]
    last = [r for r in rows if r["step"] == last_step]
    tasks = {}
    for r in last:
        tasks.setdefault(r["task"], []).append(r)
    out = {"agent": header["agent"], "critic": header["config"].get("critic"), "discount": gamma,
           "step": int(last_step), "floor": -1.0 / (1.0 - gamma), "tasks": {}}
    for task, members in sorted(tasks.items()):
        entry = {"seeds": [int(m["seed"]) for m in members]}
        for c in COLUMNS:
            values = [float(m[c]) for m in members if m.get(c) not in (None, "")]
            if values:
                entry[c] = {"mean": float(np.mean(values)), "std": float(np.std(values))}
        entry["data_return"] = data_return(task, header["datasets"][task]["path"], gamma)
        out["tasks"][task] = entry
    return out


def markdown(results: dict) -> str:
    lines = ["| bench | task | step | gamma | Q | V | data return | floor | w mean | w > 0.9 | w < 0.1 | G mean | G std |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def cell(e, c, scale=1.0, fmt="{:.2f}"):
        return (fmt.format(e[c]["mean"] * scale) + " ± " + fmt.format(e[c]["std"] * scale)) if c in e else "-"

    for bench, pops in results.items():
        for p in pops:
            for task, e in p["tasks"].items():
                short = task.replace("-singletask", "").replace("-v0", "")
                lines.append(f"| {os.path.basename(bench)} | {short} | {p['step']} | {p['discount']:g} | "
                             f"{cell(e, 'q_mean', fmt='{:.1f}')} | {cell(e, 'v_mean', fmt='{:.1f}')} | "
                             f"{e['data_return']:.1f} | {p['floor']:.0f} | {cell(e, 'w_mean')} | "
                             f"{cell(e, 'w_over_0.9', 100, '{:.1f}')} % | {cell(e, 'w_under_0.1', 100, '{:.1f}')} % | "
                             f"{cell(e, 'adv_mean')} | {cell(e, 'adv_std')} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("benches", nargs="+", help="dipole bench output folders")
    p.add_argument("--markdown", action="store_true", help="also print a markdown table (mean ± std over seeds)")
    a = p.parse_args(argv)
    results = {}
    for bench in a.benches:
        pops = sorted(glob.glob(os.path.join(bench, "populations", "*", "metrics.csv")))
        if not pops:
            raise SystemExit(f"error: {bench}: no populations/*/metrics.csv; pass a `dipole bench` output folder "
                             "whose training has logged")
        results[bench] = [population_scale(os.path.dirname(m)) for m in pops]
    print(json.dumps(results, indent=1))
    if a.markdown:
        print(markdown(results))


if __name__ == "__main__":
    main()
