"""Generate each OGBench dataset at a given size and report size on disk, time on this machine, and the fraction
of transitions that succeed for task 2 under OGBench's own relabelling. Prints JSON and a markdown table.

    python benchmarks/datasets.py --episodes 20 --workers 2 [--out /tmp/dipole-datasets]
"""

import argparse
import json

import numpy as np


def main():
    import ogbench

    from dipole.datagen.ogbench import generate_ogbench

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default="/tmp/dipole-datasets")
    p.add_argument("--names", default="pointmaze-medium-navigate-v0,cube-single-play-v0,cube-double-play-v0,"
                                      "scene-play-v0,puzzle-3x3-play-v0")
    args = p.parse_args()
    rows = []
    for name in args.names.split(","):
        info = generate_ogbench(name, episodes=args.episodes, workers=args.workers, seed=0, out_dir=args.out,
                                progress=False)
        task2 = name.replace("-v0", "-singletask-task2-v0")
        _, train, _ = ogbench.make_env_and_datasets(task2, dataset_path=info["train_path"])
        rows.append({"dataset": name, "episodes": args.episodes, "steps": info["steps"], "bytes": info["bytes"],
                     "seconds": info["seconds"], "workers": info["workers"],
                     "task2_success_fraction": float(np.mean(train["masks"] == 0)),
                     "full_size_minutes_estimate": info["seconds"] * 1000 / args.episodes / 60,
                     "full_size_mb_estimate": info["bytes"] * 1000 / args.episodes / 1e6})
    print(json.dumps(rows, indent=2))
    for r in rows:
        print(f"| {r['dataset']} | {r['bytes'] / 1e6:.1f} MB | {r['seconds']:.0f} s | {100 * r['task2_success_fraction']:.2f}% "
              f"| {r['full_size_mb_estimate']:.0f} MB | {r['full_size_minutes_estimate']:.0f} min |")


if __name__ == "__main__":
    main()
