"""Driving trade-offs: one dipole-terms model dialled per reward term at inference, against retraining DIPOLE on each
combined reward, the scripted drivers, BC and IQL, over several seeds.

    python benchmarks/highway_tradeoff.py --out runs/highway-tradeoff                 # the reported table (final)
    python benchmarks/highway_tradeoff.py --stage dev --out runs/highway-tradeoff-dev  # where choices are made

Two stages that share no data and no episodes: `dev` (driver data drawn with seed 1, agents and evaluation episodes
seeded 100, 40 episodes per point) is where settings such as the safety critic's expectile, the guard and the
headline term weights are chosen (results/highway_terms.md); `final` (data seed 0, seeds 0, 1, 2, 50 episodes per seed
and point) reports with those choices frozen in dipole/agents/presets.py beforehand. Every agent of a stage trains as one population per agent (all seeds, and for
retrained DIPOLE all reward weightings, in one compiled program) in OUT/runs/NAME; every evaluation is cached in
OUT/results.json, so a killed run resumes where it stopped (training from its last checkpoint).

Points:
- `terms: W`: dipole-terms (one training run per seed) sampled at term weights W (K = 1: guidance alone), for each W
  of --term-grid; `terms: headline` samples at the config's weights, K and guard (fixed in advance in presets.py).
- `retrained: R`: DIPOLE trained on the combined reward R (the data's terms weighted as in `highway-fast-v0:R`), one
  training run per weighting and seed, evaluated at its config headline and at omega 0, K 1.
- the scripted drivers that made the data, and BC and IQL trained on the default reward.

Writes OUT/results.json, OUT/tradeoff.md (mean and std over seeds; per-seed failures) and OUT/tradeoff.png (mean
speed against the rate of episodes ended by a crash or by leaving the road, each point labelled by its weights).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from dipole.bench.highway import failure

ENV = "highway-fast-v0"
# the final front (the headline, every weight 1 at K = 1, is its own row): the behaviour policy (all weights 0), no
# safety, more safety, more speed, safety alone
TERM_GRID = ("speed=0,safety=0,lane=0", "speed=1,safety=0,lane=1", "speed=1,safety=2,lane=1",
             "speed=1,safety=4,lane=1", "speed=2,safety=1,lane=1", "speed=2,safety=2,lane=1",
             "speed=4,safety=2,lane=1", "speed=0,safety=1,lane=1")
RETRAIN_GRID = ("collision=10,offroad=10", "collision=100,offroad=100", "collision=1000,offroad=1000")
GUARDED = "num_candidates=16;selection=argmax;guard_term=safety;guard_threshold=0"
PARTS = ("drivers", "terms", "retrained", "baselines")
STAGES = {  # defaults of each stage (results/highway_terms.md, "Protocol")
    "final": {"data_seed": 0, "seeds": "0,1,2", "episodes": 50, "term_grid": ";".join(TERM_GRID),
              "retrain": ";".join(RETRAIN_GRID), "baselines": "bc,iql", "terms_eval": []},
    "dev": {"data_seed": 1, "seeds": "100", "episodes": 40,
            "term_grid": "speed=1,safety=1,lane=1;speed=1,safety=4,lane=1;speed=1,safety=16,lane=1;"
                         "speed=2,safety=4,lane=1",
            "retrain": "", "baselines": "", "terms_eval": [GUARDED]},
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/highway-tradeoff")
    p.add_argument("--stage", choices=sorted(STAGES), default="final",
                   help="final: data seed 0, seeds 0,1,2, 50 episodes; dev: data seed 1, seeds 100,101, 20 episodes")
    p.add_argument("--seeds", help="training and evaluation seeds (default: the stage's)")
    p.add_argument("--episodes", type=int, help="evaluation episodes per seed and point (default: the stage's)")
    p.add_argument("--data-episodes", type=int, help="scripted-driver episodes (default: 100 per driver)")
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--preset", default="small")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--term-grid",
                   help="';'-separated term weights for dipole-terms' front, e.g. 'safety=1;safety=4' (default: the stage's)")
    p.add_argument("--retrain", help="';'-separated reward weightings, each a retrained DIPOLE ('' for none; default: "
                                     "the stage's)")
    p.add_argument("--baselines", help="agents trained on the default reward ('' for none; default: the stage's)")
    p.add_argument("--parts", default=",".join(PARTS),
                   help=f"what to run, of {','.join(PARTS)}; two processes may run different parts into one --out")
    p.add_argument("--terms-config", action="append", default=[], metavar="KEY=VALUE",
                   help="dipole-terms config override (repeatable), e.g. --terms-config term_expectiles=0.7,0.3,0.7; "
                        "each distinct set of overrides is its own training run")
    p.add_argument("--terms-eval", action="append", metavar="KEY=VALUE[;KEY=VALUE]",
                   help="extra dipole-terms sampling setting evaluated at every --term-grid point (repeatable), e.g. "
                        "'num_candidates=16;selection=argmax;guard_term=safety;guard_threshold=-1' (default: the "
                        "stage's)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes for the data")
    args = p.parse_args(argv)
    stage = STAGES[args.stage]
    seeds = [int(s) for s in (args.seeds or stage["seeds"]).split(",") if s.strip()]
    episodes = args.episodes or stage["episodes"]

    from dipole.agents import build_config
    from dipole.agents.base import parse_overrides
    from dipole.bench.cache import ResultsCache
    from dipole.bench.highway import evaluate_driver
    from dipole.data.highway import load_highway
    from dipole.datagen.highway import DEFAULT_DATA_EPISODES, DRIVERS, generate_highway
    from dipole.errors import UsageError
    from dipole.runners.evaluation import make_eval_envs
    from dipole.runners.loop import train_population
    from dipole.runners.offline import TrainSettings
    from dipole.runners.population import PopulationData, evaluate_population, members_of, population_eval_envs

    data_episodes = args.data_episodes or DEFAULT_DATA_EPISODES
    parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    if not parts or set(parts) - set(PARTS):
        p.error(f"--parts: choose among {', '.join(PARTS)}, got {args.parts!r}")
    pick = lambda name: stage[name] if getattr(args, name) is None else getattr(args, name)  # noqa: E731
    term_grid = [w.strip() for w in pick("term_grid").split(";") if w.strip()]
    retrain = [w.strip() for w in pick("retrain").split(";") if w.strip()]
    baselines = [a.strip() for a in pick("baselines").split(",") if a.strip()]
    terms_overrides = parse_overrides(args.terms_config)
    terms_evals = [parse_overrides([kv for kv in s.split(";") if kv.strip()]) for s in pick("terms_eval")]
    from dipole.agents.terms import TermsConfig, parse_term_weights

    for text in term_grid:
        parse_term_weights(text)  # a malformed point fails before anything runs

    for extra in terms_evals:
        bad = sorted(set(extra) - set(TermsConfig.INFERENCE_FIELDS))
        if bad:
            raise UsageError(f"--terms-eval: {bad} are training settings; a sampling setting may change only "
                             f"{', '.join(TermsConfig.INFERENCE_FIELDS)} (training settings go in --terms-config)")

    t0 = time.time()
    os.makedirs(args.out, exist_ok=True)
    data_path = os.path.join(args.out, "data", f"{ENV}.npz")
    settings_key = {"stage": args.stage, "data_seed": stage["data_seed"], "data_episodes": data_episodes,
                    "seeds": seeds, "episodes": episodes, "steps": args.steps, "preset": args.preset, "lr": args.lr}
    # several processes may fill one OUT (e.g. --parts terms and --parts drivers,retrained,baselines on two cores):
    # the cache writes results.json read-modify-write under a lock, so none loses another's rows
    store = ResultsCache(os.path.join(args.out, "results.json"), settings_key)
    results = store.results

    if not os.path.exists(data_path):
        print(f"generating {data_episodes} scripted-driver episodes (data seed {stage['data_seed']}) ...", flush=True)
        store.save(data=generate_highway(ENV, episodes=data_episodes, workers=args.workers, seed=stage["data_seed"],
                                         out_dir=os.path.dirname(data_path)))

    def describe(per_seed):
        fail, speed = _stats(per_seed, "failure"), _stats(per_seed, "mean_speed")
        return f"crash or off-road {100 * fail[0]:.1f} ± {100 * fail[1]:.1f} %, speed {speed[0]:.2f} ± {speed[1]:.2f} m/s"

    def cached(key, fn):
        """fn() -> one result row per seed (in `seeds` order), evaluated once and kept in results.json."""
        return store.cached(key, lambda: {str(s): r for s, r in zip(seeds, fn())}, describe)

    settings = TrainSettings(steps=args.steps, seed=seeds[0], log_every=1000, eval_every=0, eval_episodes=0,
                             save_every=min(args.steps, 5000), progress=True)
    dataset = load_highway(ENV, data_path)

    def population(name, agent, tasks, overrides=None):
        config = build_config(agent, ENV, args.preset, {"lr": args.lr, **(overrides or {})})
        datasets = [dataset if t == ENV else load_highway(t, data_path) for t in tasks]
        run_dir = os.path.join(args.out, "runs", name)
        print(f"{name}: {agent}, {len(tasks)} reward weighting(s) x {len(seeds)} seed(s), {args.steps} updates -> "
              f"{run_dir}", flush=True)
        return train_population(run_dir, members_of(tasks, seeds), PopulationData(tasks, datasets), agent, config,
                                settings, resume=os.path.exists(os.path.join(run_dir, "config.json")))

    if "drivers" in parts:
        print("scripted drivers:", flush=True)
        for d in DRIVERS:
            cached(f"driver: {d.name}", lambda d=d: [evaluate_driver(d, ENV, episodes, seed=s) for s in seeds])

    # dipole-terms: one population (all seeds), its front over the term-weight grid and its headline
    terms_name = "terms" + "".join(f"-{k}={_fmt(v)}" for k, v in sorted(terms_overrides.items()))
    tag = terms_name[len("terms"):]
    terms_pop = population(terms_name, "dipole-terms", [ENV], terms_overrides) if "terms" in parts else None
    # dev chooses the headline; there the config's defaults are one of the grid's points
    if terms_pop is not None and args.stage == "final":
        cached(f"terms{tag}: headline", lambda: evaluate_population(terms_pop, episodes))
    for text in term_grid if terms_pop is not None else ():
        cached(f"terms{tag}: {text}", lambda text=text: evaluate_population(terms_pop, episodes, term_weights=text,
                                                                             num_candidates=1))
    for extra in terms_evals if terms_pop is not None else ():
        cfg = terms_pop.agents.config.replace(**extra)
        variant = type(terms_pop)(terms_pop.agents.replace(config=cfg), terms_pop.members)
        label = ",".join(f"{k}={_fmt(v)}" for k, v in extra.items())
        for text in term_grid:
            cached(f"terms{tag} [{label}]: {text}",
                   lambda text=text, variant=variant: evaluate_population(variant, episodes, term_weights=text))

    # DIPOLE retrained on each combined reward: one population over weightings x seeds
    if retrain and "retrained" in parts:
        tasks = [f"{ENV}:{w}" for w in retrain]
        pop = population("retrained-dipole", "dipole", tasks)
        # every member drives the default-weighted env, so that returns compare across rows (failures and speeds
        # do not depend on the weights)
        per_member = population_eval_envs(pop, episodes)
        envs = [make_eval_envs(ENV, episodes, len(e)) for e in per_member]
        for mode, kw in (("headline", {}), ("omega 0, K 1", {"omega": 0.0, "num_candidates": 1})):
            missing = [w for w in retrain if f"retrained: {w} ({mode})" not in results["evals"]]
            if missing:
                rows = evaluate_population(pop, episodes, envs=envs, **kw)
                for i, w in enumerate(retrain):
                    cached(f"retrained: {w} ({mode})", lambda i=i: rows[i * len(seeds):(i + 1) * len(seeds)])

    for name in baselines if "baselines" in parts else ():
        pop = population(name, name, [ENV])
        cached(f"{name}: headline", lambda pop=pop: evaluate_population(pop, episodes))

    store.save()
    md = table(results)
    with open(os.path.join(args.out, "tradeoff.md"), "w") as f:
        f.write(md + "\n")
    plot(results, os.path.join(args.out, "tradeoff.png"))
    print(md)
    print(f"wrote {args.out}/results.json, tradeoff.md, tradeoff.png ({time.time() - t0:.0f} s)")


def _short(label: str) -> str:
    """'speed=1,safety=2,lane=1' -> '(1, 2, 1)' for the plot; other labels as they are."""
    from dipole.agents.terms import parse_term_weights
    from dipole.errors import UsageError

    try:
        weights = parse_term_weights(label)
    except UsageError:  # 'headline' and other names that are not weights
        return label
    return "(" + ", ".join(f"{v:g}" for v in weights.values()) + ")" if weights else label


def _fmt(v) -> str:
    if isinstance(v, (tuple, list)):
        return ",".join(map(_fmt, v))
    return f"{v:g}" if isinstance(v, float) else str(v)


def _stats(per_seed: dict, key: str) -> tuple[float, float]:
    vals = [failure(r) if key == "failure" else r[key] for r in per_seed.values()]
    return float(np.mean(vals)), float(np.std(vals))


def goal_check(results) -> list[str]:
    """Issue's goal, stated on the table: an inference-time setting at least as safe as the `normal` driver and at
    least as fast as the `assertive` one; and, for every retrained point, the fastest inference-time point that
    fails no more often."""
    ev = results["evals"]
    episodes = results["settings"]["episodes"] * len(results["settings"]["seeds"])
    # every inference-time setting, headline too: (failure rate, mean speed), each a mean over seeds
    front = {k: (_stats(v, "failure")[0], _stats(v, "mean_speed")[0]) for k, v in ev.items() if k.startswith("terms")}
    lines = []
    normal, assertive = ev.get("driver: normal"), ev.get("driver: assertive")
    if front and normal and assertive:
        safe = _stats(normal, "failure")[0]
        fast = _stats(assertive, "mean_speed")[0]
        ok = [k for k, (fk, sk) in front.items() if fk <= safe + 1.0 / episodes and sk >= fast]
        lines.append(f"- Goal (as safe as `normal`, {100 * safe:.1f}% failures, within one episode of "
                     f"{episodes}; as fast as `assertive`, {fast:.2f} m/s): "
                     + (f"reached by {', '.join(ok)}." if ok else "not reached; " + _nearest(front, safe, fast)))
    for k, v in ev.items():
        if not k.startswith("retrained"):
            continue
        f, s = _stats(v, "failure")[0], _stats(v, "mean_speed")[0]
        better = [(sk, key) for key, (fk, sk) in front.items() if fk <= f]
        if better:
            best = max(better)
            line = (f"- {k} ({100 * f:.1f}%, {s:.2f} m/s): the fastest inference-time point that fails no more "
                    f"often is {best[1]} at {best[0]:.2f} m/s ({best[0] - s:+.2f})")
        else:
            line = f"- {k} ({100 * f:.1f}%, {s:.2f} m/s): every inference-time point fails more often"
        mixed = front_failure_at(list(front.values()), s)
        lines.append(line + ("; no inference-time setting or mixture of two drives that fast." if mixed is None else
                             f"; at its speed the inference-time front (two settings mixed per episode) fails in "
                             f"{100 * mixed:.1f}% ({100 * (mixed - f):+.1f} points)."))
    return lines


def front_failure_at(points, speed: float) -> float | None:
    """Lowest expected failure rate at a mean speed of at least `speed` over the given (failure, speed) points and
    every mixture of two of them (each episode run with one setting or the other at random), linear in both; None
    when no point is that fast."""
    best = None
    for fa, sa in points:
        if sa >= speed:
            best = fa if best is None else min(best, fa)
        for fb, sb in points:
            if sa < speed <= sb:  # the mixture that reaches exactly `speed`
                t = (speed - sa) / (sb - sa)
                f = (1 - t) * fa + t * fb
                best = f if best is None else min(best, f)
    return best


def _nearest(front, safe, fast) -> str:
    """`front`: name -> (failure rate, mean speed)."""
    safe_points = [(sk, k) for k, (fk, sk) in front.items() if fk <= safe + 0.02]
    if not safe_points:
        best = min((fk, k) for k, (fk, _) in front.items())
        return f"the safest point, {best[1]}, fails in {100 * best[0]:.1f}%."
    speed, key = max(safe_points)
    return f"the fastest point within 2 percentage points of that failure rate, {key}, drives {speed:.2f} m/s ({speed - fast:+.2f})."


def _order(key: str):
    """Rows: the scripted drivers in their own order, dipole-terms (headline first), retrained DIPOLE, baselines."""
    from dipole.datagen.highway import DRIVER_NAMES

    if key.startswith("driver: "):
        name = key[len("driver: "):]
        return 0, DRIVER_NAMES.index(name) if name in DRIVER_NAMES else 99, key
    if key.startswith("terms"):
        return 1, 0 if "headline" in key else 1, key
    return (2 if key.startswith("retrained") else 3), 0, key


def table(results) -> str:
    s = results["settings"]
    lines = [f"`{ENV}`, stage `{s['stage']}` (driver data seed {s['data_seed']}, {s['data_episodes']} episodes), "
             f"seeds {s['seeds']} (training and evaluation episodes), {s['episodes']} evaluation episodes per seed and "
             f"point, {s['steps']} updates, `{s['preset']}` networks, lr {s['lr']:g}. Mean ± std over seeds "
             "('per seed': episodes ended by a crash or off the road, out of each seed's); returns under the default "
             "weights (speed 1, collision 100, off-road 100, lane 0.2) for every row.", "",
             "| policy | crash or off-road % | per seed | collision % | off-road % | mean speed (m/s) | return | "
             "speed term | safety term | lane term |", "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for key, per_seed in sorted(results["evals"].items(), key=lambda kv: _order(kv[0])):
        f, fs = _stats(per_seed, "failure")
        sp, sps = _stats(per_seed, "mean_speed")
        col, off = _stats(per_seed, "collision")[0], _stats(per_seed, "offroad")[0]
        ret, rets = _stats(per_seed, "return")
        per = "/".join(str(int(round(failure(r) * r["episodes"]))) for r in per_seed.values())
        terms = [_stats(per_seed, k)[0] for k in ("return_speed",)]
        safety = _stats(per_seed, "return_collision")[0] + _stats(per_seed, "return_offroad")[0]
        lane = _stats(per_seed, "return_lane")[0]
        lines.append(f"| {key} | {100 * f:.1f} ± {100 * fs:.1f} | {per} | {100 * col:.1f} | {100 * off:.1f} | "
                     f"{sp:.2f} ± {sps:.2f} | {ret:.1f} ± {rets:.1f} | {terms[0]:.1f} | {safety:.1f} | {lane:.1f} |")
    lines += ["", *goal_check(results)]
    if s["stage"] == "dev":
        lines.append(dev_choice(results))
    return "\n".join(lines)


def dev_choice(results) -> str:
    """The dev stage's rule (results/highway_terms.md, written before the dev run): among dipole-terms' points, those
    failing at most one episode more often than the `normal` driver; the fastest of them; if none, the point with
    the fewest failures (ties: the faster)."""
    ev = results["evals"]
    points = {k: (_stats(v, "failure")[0], _stats(v, "mean_speed")[0]) for k, v in ev.items() if k.startswith("terms")}
    if not points or "driver: normal" not in ev:
        return "- Dev rule: needs dipole-terms points and the `normal` driver."
    episodes = results["settings"]["episodes"] * len(results["settings"]["seeds"])
    limit = _stats(ev["driver: normal"], "failure")[0] + 1.0 / episodes
    ok = {k: v for k, v in points.items() if v[0] <= limit + 1e-9}
    if ok:
        key = max(ok, key=lambda k: ok[k][1])
        why = f"the fastest of {len(ok)} point(s) failing in at most {100 * limit:.1f}% of episodes"
    else:
        key = min(points, key=lambda k: (points[k][0], -points[k][1]))
        why = f"no point fails in at most {100 * limit:.1f}% of episodes; the one with the fewest failures"
    return (f"- Dev rule picks **{key}** ({100 * points[key][0]:.1f}% failures, {points[key][1]:.2f} m/s): {why}.")


def _plot_label(key: str) -> str:
    """Short point labels: term weights as '(speed, safety, lane)', retrained rewards by their collision weight."""
    name = key.split(": ", 1)[-1]
    if key.startswith("retrained"):
        weights, _, sampler = name.partition(" (")
        first = weights.split(",")[0].split("=")[-1]
        return f"x{first}, " + ("headline" if sampler.startswith("headline") else sampler.rstrip(")"))
    if key.startswith(("bc", "iql")):
        return ""
    return _short(name)


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ev = results["evals"]
    fig, ax = plt.subplots(figsize=(10, 6.5))
    families = {"terms": ("o", "tab:blue", "dipole-terms: one model, term weights set at inference (star: headline)"),
                "retrained": ("D", "tab:orange", "DIPOLE retrained per combined reward (x collision and off-road "
                                                 "weight; headline: its config's omega and K)"),
                "driver": ("s", "grey", "scripted drivers (the data's behaviour)"),
                "bc": ("^", "tab:green", "BC"), "iql": ("v", "tab:purple", "IQL")}
    seen = set()
    front = []
    for key, per_seed in sorted(ev.items(), key=lambda kv: _order(kv[0])):
        family = key.split(":")[0]
        marker, color, legend = families.get(family, ("o", "black", family))
        f, fs = (100 * x for x in _stats(per_seed, "failure"))
        sp, sps = _stats(per_seed, "mean_speed")
        if family == "terms":
            front.append((f, sp))
        star = family == "terms" and "headline" in key
        ax.errorbar(sp, f, xerr=sps, yerr=fs, fmt="*" if star else marker, color=color, markersize=14 if star else 6,
                    capsize=2, label=None if family in seen else legend)
        seen.add(family)
        label = key.split(": ", 1)[-1] if family == "driver" else _plot_label(key)
        ax.annotate(label, (sp, f), textcoords="offset points", xytext=(4, 3), fontsize=7, color=color)
    if len(front) > 1:  # the lower envelope: every speed the model reaches, at the fewest failures a mixture gets
        lo, hi = min(s for _, s in front), max(s for _, s in front)
        speeds = np.linspace(lo, hi, 200)
        ax.plot(speeds, [front_failure_at(front, v) for v in speeds], "--", color="tab:blue", lw=1, alpha=0.6,
                label="dipole-terms' front (best mixture of two settings per episode)")
    ax.set_xlabel("mean forward speed (m/s); dipole-terms' points labelled by their term weights (speed, safety, "
                  "lane)")
    ax.set_ylabel("episodes ended by a crash or leaving the road (%)")
    s = results["settings"]
    ax.set_title(f"{ENV}, stage {s['stage']}: seeds {s['seeds']}, {s['episodes']} episodes each (bars: std over seeds)")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
