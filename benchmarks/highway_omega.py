"""Driving trade-off: how omega moves DIPOLE between cautious and assertive driving, next to the data's drivers.

    python benchmarks/highway_omega.py [--out runs/highway] [--steps 40000] [--episodes 30]

Makes the scripted-driver dataset (if missing), trains DIPOLE, BC and IQL on it (small networks), evaluates the
scripted drivers, the baselines, DIPOLE at its headline omega (fixed in advance in dipole/agents/presets.py) and DIPOLE over
an omega sweep (each point its own evaluation, K=1 so only guidance moves), all on the same episode seeds. Every
evaluation is cached in OUT/results.json (dipole.bench.cache), so a killed run resumes; a results.json made with other
settings is refused. Writes OUT/results.json, OUT/tradeoff.md and
OUT/tradeoff.png (mean speed against collision rate, and return terms against omega).
"""

from __future__ import annotations

import argparse
import os
import time

from dipole.bench.highway import failure

ENV = "highway-fast-v0"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/highway")
    p.add_argument("--env", default=ENV, help="highway env name, optionally with ':speed=W,collision=W,...'")
    p.add_argument("--data-episodes", type=int, help="scripted-driver episodes (default: 100 per driver)")
    p.add_argument("--steps", type=int, default=40_000)
    p.add_argument("--episodes", type=int, default=30, help="evaluation episodes per point")
    p.add_argument("--omegas", default="0,0.5,1,2,4")
    p.add_argument("--agents", default="dipole,bc,iql")
    p.add_argument("--preset", default="small")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for every agent that has KEY (repeatable), e.g. --config expectile=0.7")
    args = p.parse_args(argv)

    from dipole.agents import build_config
    from dipole.agents.base import parse_overrides
    from dipole.bench.cache import ResultsCache
    from dipole.bench.highway import evaluate_driver
    from dipole.data.highway import load_highway
    from dipole.datagen.highway import DEFAULT_DATA_EPISODES, DRIVERS, generate_highway
    from dipole.envs.highway import parse_highway_name
    from dipole.runners.evaluation import evaluate_agent
    from dipole.runners.loop import train
    from dipole.runners.offline import TrainSettings

    args.data_episodes = args.data_episodes or DEFAULT_DATA_EPISODES
    overrides = parse_overrides(args.config)

    t0 = time.time()
    base, weights = parse_highway_name(args.env)
    data_path = os.path.join(args.out, "data", f"{base}.npz")
    settings_key = {"env": args.env, "steps": args.steps, "episodes": args.episodes, "preset": args.preset,
                    "lr": args.lr, "seed": args.seed, "data_episodes": args.data_episodes, "config": sorted(args.config)}
    store = ResultsCache(os.path.join(args.out, "results.json"), settings_key)
    results = store.results

    if not os.path.exists(data_path):
        print(f"generating {args.data_episodes} scripted-driver episodes ...", flush=True)
        store.save(data=generate_highway(base, episodes=args.data_episodes, workers=args.workers, seed=args.seed,
                                         out_dir=os.path.dirname(data_path)))
    dataset = load_highway(args.env, data_path)

    def cached(key, fn):
        return store.cached(key, fn, lambda r: f"crash/off-road {failure(r):.2f}, speed {r['mean_speed']:.1f} m/s, "
                                               f"return {r['return']:.1f}")

    print("scripted drivers:", flush=True)
    for d in DRIVERS:
        cached(f"driver/{d.name}", lambda d=d: evaluate_driver(d, args.env, args.episodes, seed=args.seed))

    agents = {}
    for name in [a.strip() for a in args.agents.split(",") if a.strip()]:
        extra = {k: v for k, v in overrides.items() if k in build_config(name, args.env).to_dict()}
        config = build_config(name, args.env, args.preset, {"lr": args.lr, **extra})
        run_dir = os.path.join(args.out, "runs", name)
        print(f"training {name} for {args.steps} updates -> {run_dir}", flush=True)
        settings = TrainSettings(steps=args.steps, seed=args.seed, log_every=1000, eval_every=0, eval_episodes=0,
                                 save_every=args.steps, progress=True)
        agents[name] = agent = train(run_dir, args.env, dataset, name, config, settings, resume=True)
        cached(f"{name}/headline", lambda: evaluate_agent(agent, args.env, args.episodes, seed=args.seed))
        if agent.samples_with("omega") and name == "dipole":
            for w in [float(x) for x in args.omegas.split(",")]:
                cached(f"{name}/omega={w:g}", lambda w=w: evaluate_agent(agent, args.env, args.episodes, omega=w,
                                                                         num_candidates=1, seed=args.seed))
    store.save(weights=weights, seconds=results.get("seconds", 0) + time.time() - t0)
    md = table(results)
    with open(os.path.join(args.out, "tradeoff.md"), "w") as f:
        f.write(md + "\n")
    plot(results, os.path.join(args.out, "tradeoff.png"))
    print(md)
    print(f"wrote {args.out}/results.json, tradeoff.md, tradeoff.png ({time.time() - t0:.0f}s)")


def table(results) -> str:
    from dipole.datagen.highway import DRIVERS

    s = results["settings"]
    lines = [f"`{s['env']}`, {s['episodes']} evaluation episodes per row (same seeds), {s['steps']} updates, "
             f"`{s['preset']}` networks; reward weights {results['weights']}"
             + (f"; overrides {', '.join(s['config'])}." if s.get("config") else "."), "",
             "| policy | crash or off-road % | collision % | off-road % | mean speed (m/s) | distance (m) | return | "
             "speed term | lane term |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    drivers = [d.name for d in DRIVERS]

    def order(key):  # scripted drivers in their own order, then the baselines, then DIPOLE's headline and sweep
        if key.startswith("driver/"):
            return 0, drivers.index(key[7:]), 0.0, key
        omega = float(key.split("=")[1]) if "omega=" in key else -1.0
        return 2 if key.startswith("dipole") else 1, 0, omega, key

    keys = sorted(results["evals"], key=order)
    for key in keys:
        r = results["evals"][key]
        label = key.replace("/headline", " (headline: config omega, K)").replace("driver/", "scripted: ")
        lines.append(f"| {label} | {100 * failure(r):.1f} | {100 * r['collision']:.1f} | {100 * r['offroad']:.1f} | {r['mean_speed']:.2f} | "
                     f"{r['distance']:.0f} | {r['return']:.1f} ± {r['return_std']:.1f} | {r['return_speed']:.1f} | "
                     f"{r['return_lane']:.1f} |")
    return "\n".join(lines)


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ev = results["evals"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.3))
    ax = axes[0]
    for key, r in ev.items():
        if key.startswith("driver/"):
            ax.plot(r["mean_speed"], 100 * failure(r), "s", color="grey")
            ax.annotate(key[7:], (r["mean_speed"], 100 * failure(r)), textcoords="offset points", xytext=(4, 4),
                        fontsize=8, color="grey")
    sweep = sorted(((float(k.split("=")[1]), r) for k, r in ev.items() if k.startswith("dipole/omega=")),
                   key=lambda x: x[0])
    if sweep:
        ax.plot([r["mean_speed"] for _, r in sweep], [100 * failure(r) for _, r in sweep], "o-",
                color="tab:blue", label="DIPOLE, omega sweep (K=1)")
        for w, r in sweep:
            ax.annotate(f"ω={w:g}", (r["mean_speed"], 100 * failure(r)), textcoords="offset points",
                        xytext=(4, -10), fontsize=8, color="tab:blue")
    markers = {"dipole": ("*", "tab:red"), "bc": ("^", "tab:green"), "iql": ("v", "tab:purple")}
    for key, r in ev.items():
        if key.endswith("/headline"):
            name = key.split("/")[0]
            m, c = markers.get(name, ("D", "black"))
            label = f"{name} (headline)" if name != "dipole" else "DIPOLE headline (omega, K from config)"
            ax.plot(r["mean_speed"], 100 * failure(r), m, color=c, markersize=11, label=label)
    ax.set_xlabel("mean forward speed (m/s)")
    ax.set_ylabel("episodes ended by a crash or leaving the road (%)")
    ax.set_title("assertiveness vs safety")
    ax.legend(fontsize=8)
    ax = axes[1]
    if sweep:
        ws = [w for w, _ in sweep]
        for term in ("return", "return_speed", "return_lane", "return_collision", "return_offroad"):
            ax.plot(ws, [r[term] for _, r in sweep], "o-", label=term)
        ax.set_xlabel("omega")
        ax.set_ylabel("per-episode sum")
        ax.set_title("DIPOLE return terms over the omega sweep")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
