"""The evaluations a bench saved for a population so far (POP/eval/*.json), without evaluating anything: one JSON
line per setting with each member's success and the category average per seed (mean ± std over seeds, as the
bench's results.md computes it). For a bench still sweeping, or stopped before its result.json files were written.

    python benchmarks/saved_evaluations.py runs/bench/scene-mini/populations/dipole-20-XXXX
"""

import argparse
import glob
import json
import os

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("population", help="a population's folder under a bench folder's populations/")
    args = ap.parse_args()
    files = sorted(glob.glob(os.path.join(args.population, "eval", "*.json")))
    if not files:
        raise SystemExit(f"error: {args.population}/eval/ holds no saved evaluation; `dipole bench` saves one per "
                         "evaluated setting of a population")
    for path in files:
        with open(path) as f:
            saved = json.load(f)
        key, rows = saved["key"], saved["rows"]
        metric = "success" if rows[0]["success"] is not None else "return"
        scale = 100 if metric == "success" else 1
        per_seed = {}
        for (task, seed), r in zip(key["members"], rows):
            per_seed.setdefault(seed, []).append(scale * r[metric])
        tasks = len({task for task, _ in key["members"]})
        cats = [float(np.mean(v)) for _, v in sorted(per_seed.items()) if len(v) == tasks]
        setting = key["setting"]
        print(json.dumps({
            "agent": key["agent"], "setting": "config" if setting == "config" else
            {"omega": setting[0], "num_candidates": setting[1], "selection": setting[2]},
            "episodes": key["episodes"], "metric": metric,
            "category_mean": float(np.mean(cats)) if cats else None,
            "category_std": float(np.std(cats)) if cats else None, "category_per_seed": cats,
            "members": [{"task": t, "seed": s, metric: r[metric]} for (t, s), r in zip(key["members"], rows)],
            "file": os.path.basename(path)}))


if __name__ == "__main__":
    main()
