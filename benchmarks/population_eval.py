"""Evaluate a trained population (every member on its own task, in one batched run) at other sampling settings;
prints one JSON line per setting with each member's success and the category average per seed (mean ± std).

    python benchmarks/population_eval.py runs/bench/ogbench-mini-pop/populations/dipole-10-XXXX \
        --omega 0 0.5 1 2 4 --k 32 --selection tilt --episodes 10 --num-envs 10 [--workers 16]
"""

import argparse
import json
import time

import numpy as np

from dipole.runners.evaluation import close_eval_envs
from dipole.runners.population import evaluate_population, load_population, population_eval_envs
from dipole.storage import resolve_checkpoint


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("population", help="a population's folder (its newest valid checkpoint) or checkpoint file")
    ap.add_argument("--omega", type=float, nargs="+", default=[1.0], help="ignored for agents without omega (ifql)")
    ap.add_argument("--k", type=int, nargs="+", default=[32])
    ap.add_argument("--selection", nargs="+", default=["argmax"])
    ap.add_argument("--episodes", type=int, default=10)
    ap.add_argument("--num-envs", type=int, default=None,
                    help="environments per member (default: as the bench runner chooses)")
    ap.add_argument("--workers", type=int, default=1,
                    help="processes stepping the environments (the results are the same for any number)")
    args = ap.parse_args()
    pop, header = load_population(resolve_checkpoint(args.population))
    envs = population_eval_envs(pop, args.episodes, args.num_envs, workers=args.workers)
    # agents without a greediness knob (IFQL: K only) are evaluated once per K
    omegas = args.omega if pop.agents.samples_with("omega") else [None]
    for k in args.k:
        for sel in args.selection if k > 1 else ["argmax"]:
            for w in omegas:
                t0 = time.time()
                rows = evaluate_population(pop, args.episodes, omega=w, num_candidates=k, envs=envs, selection=sel)
                per_seed = {}
                for m, r in zip(pop.members, rows):
                    per_seed.setdefault(m.seed, []).append(100 * r["success"])
                cats = [float(np.mean(v)) for v in per_seed.values()]
                print(json.dumps({"omega": w, "num_candidates": k, "selection": sel if k > 1 else None,
                                  "episodes": args.episodes, "category_mean": float(np.mean(cats)),
                                  "category_std": float(np.std(cats)), "category_per_seed": cats,
                                  "members": [{"task": m.task, "seed": m.seed, "success": r["success"]}
                                              for m, r in zip(pop.members, rows)],
                                  "seconds": round(time.time() - t0, 1)}), flush=True)
    close_eval_envs(envs)


if __name__ == "__main__":
    main()
