"""DIPOLE's two critic forms side by side, from two finished `dipole bench` folders of the same suite and seeds.

Per task and for the category: each form's headline success (mean ± std over seeds), the aggregate statistics of
`rliable` on the headline scores (IQM and mean with 95 % stratified bootstrap intervals, the probability that the
first form improves on the second, the IQM difference), and each form's omega/K/selection sweep (category average,
a sweep: not used for any headline). With --png, the two sweeps drawn side by side.

    python benchmarks/critic_forms.py policy=runs/bench/cube-single-mini-policy iql=runs/bench/cube-single-mini-iql \
        --png results/critic_forms_cube_single_mini.png
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys

import numpy as np


def _load(folder: str) -> dict:
    path = os.path.join(folder, "results.json")
    if not os.path.exists(path):
        sys.exit(f"error: {path} not found; pass folders written by a finished `dipole bench` run")
    with open(path) as f:
        results = json.load(f)
    if "dipole" not in results["agents"]:
        sys.exit(f"error: {path} has no dipole results; run the bench with --agents dipole")
    tasks = sorted(results["agents"]["dipole"]["tasks"])
    per_seed: dict[int, dict[str, float]] = {}
    for p in glob.glob(os.path.join(folder, "runs", "*", "dipole", "seed*", "result.json")):
        with open(p) as f:
            r = json.load(f)
        per_seed.setdefault(int(r["seed"]), {})[r["task"]] = 100.0 * float(r["headline"][results["metric"]])
    complete = [seed for seed, s in sorted(per_seed.items()) if len(s) == len(tasks)]  # seeds with every task done
    scores = np.asarray([[per_seed[seed][t] for t in tasks] for seed in complete])
    with open(glob.glob(os.path.join(folder, "runs", "*", "dipole", "seed*", "result.json"))[0]) as f:
        headline = json.load(f)
    return {"results": results, "tasks": tasks, "scores": scores, "seeds": complete,
            "setting": {k: headline["headline"][k] for k in ("omega", "num_candidates", "selection")}}


def _pm(v) -> str:
    return f"{v[0]:.1f} ± {v[1]:.1f}"


def _ci(v) -> str:
    return f"{v[0]:.1f} [{v[1]:.1f}, {v[2]:.1f}]"


def _setting(s: dict) -> str:
    return f"omega {s['omega']:g}, K {s['num_candidates']}" + (f" {s['selection']}" if s["selection"] else "")


def report(forms: dict[str, dict]) -> tuple[str, dict]:
    from dipole.bench.stats import rliable_stats

    (a, fa), (b, fb) = forms.items()
    if fa["tasks"] != fb["tasks"]:
        sys.exit(f"error: the folders hold different tasks ({fa['tasks']} against {fb['tasks']}); pass one suite")
    if fa["seeds"] != fb["seeds"]:
        sys.exit(f"error: the folders hold different seeds ({fa['seeds']} against {fb['seeds']}); compare like with "
                 "like")
    tasks = fa["tasks"]
    stats = rliable_stats({a: fa["scores"], b: fb["scores"]}, tasks, reference=a)
    res = {k: f["results"] for k, f in forms.items()}
    first = res[a]
    lines = [(f"Suite `{first['suite']}`: success rate (%), mean ± std over seeds {fa['seeds']}; {first['steps']} "
             f"updates, `{first['preset']}` networks, {first['eval_episodes']} episodes per evaluation."), "",
             f"| task | {a} ({_setting(fa['setting'])}) | {b} ({_setting(fb['setting'])}) |", "|---|---:|---:|"]
    for t in tasks:
        lines.append(f"| {t} | {_pm(res[a]['agents']['dipole']['tasks'][t])} | "
                     f"{_pm(res[b]['agents']['dipole']['tasks'][t])} |")
    lines.append(f"| **{first['category']} (average)** | **{_pm(res[a]['agents']['dipole']['category'])}** | "
                 f"**{_pm(res[b]['agents']['dipole']['category'])}** |")
    lines += ["", (f"`rliable` on the headline scores ({len(fa['seeds'])} runs x {len(tasks)} tasks per form; 95 % "
              f"stratified bootstrap, {stats['reps']} replications, {stats['few_reps']} for the probability; random "
              "state 0):"), "", f"| | {a} | {b} |", "|---|---:|---:|",
              f"| IQM | {_ci(stats['iqm'][a])} | {_ci(stats['iqm'][b])} |",
              f"| mean | {_ci(stats['mean'][a])} | {_ci(stats['mean'][b])} |", "",
              (f"P({a} > {b}) = {_ci(stats['improvement'][b])}; IQM difference ({a} - {b}) = "
              f"{_ci(stats['iqm_difference'][b])}."), "",
              ("Sweep (category average success (%), mean ± std over seeds; each point its own evaluation, a sweep, "
              "not a headline):"), "", f"| omega | K | selection | {a} | {b} |", "|---:|---:|---|---:|---:|"]
    sweep = {k: {(p["omega"], p["num_candidates"], p["selection"]): p["score"]
                 for p in r["agents"]["dipole"]["omega_sweep"]} for k, r in res.items()}
    for key in sweep[a]:
        other = sweep[b].get(key)
        lines.append(f"| {key[0]:g} | {key[1]} | {key[2] or '-'} | {_pm(sweep[a][key])} | "
                     f"{_pm(other) if other else 'not run'} |")
    return "\n".join(lines), {"stats": stats, "sweep": {k: [[*key, *v] for key, v in s.items()]
                                                        for k, s in sweep.items()}}


def plot(forms: dict[str, dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(forms), figsize=(6 * len(forms), 3.8), sharey=True)
    for ax, (name, f) in zip(np.atleast_1d(axes), forms.items()):
        points = f["results"]["agents"]["dipole"]["omega_sweep"]
        for k, sel in sorted({(p["num_candidates"], p["selection"]) for p in points}, key=str):
            row = sorted((p["omega"], *p["score"]) for p in points if (p["num_candidates"], p["selection"]) == (k, sel))
            x, m, s = np.asarray(row).T
            ax.errorbar(x, m, yerr=s, marker="o", capsize=3, label=f"K={k}" + (f", {sel}" if sel else ""))
        ax.set_title(f"critic={name}: {f['results']['category']}")
        ax.set_xlabel("omega (cfg = 1 + omega)")
        ax.legend(fontsize=8)
    np.atleast_1d(axes)[0].set_ylabel("category success rate (%)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("forms", nargs=2, metavar="LABEL=FOLDER", help="two bench folders, the reference first")
    p.add_argument("--png", help="draw both sweeps into this file")
    p.add_argument("--json", help="write the statistics and sweeps as JSON into this file")
    args = p.parse_args()
    forms = {}
    for item in args.forms:
        label, sep, folder = item.partition("=")
        if not sep or not label or not folder:
            sys.exit(f"error: {item!r} is not LABEL=FOLDER (e.g. policy=runs/bench/cube-single-mini-policy)")
        forms[label] = _load(folder)
    text, data = report(forms)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(data, f, indent=1)
    if args.png:
        plot(forms, args.png)


if __name__ == "__main__":
    main()
