"""Benchmark runner: every (task, agent, seed) of a suite, resumable run by run, aggregated as OGBench reports.

Each run trains in its own folder (checkpoints, resume after a kill) and writes `result.json` when done; a finished
run is skipped on the next call. The headline score of a run is its success rate at the omega and K of its
config, fixed before training; the omega sweep is evaluated and tabulated separately.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field

import numpy as np

from dipole.utils import atomic_write_json


@dataclass(frozen=True)
class Suite:
    name: str
    dataset: str  # OGBench dataset to generate (or find) for every task of the suite
    tasks: tuple  # OGBench single-task names
    episodes: int | None  # dataset size in episodes (None: the published size)
    steps: int
    preset: str
    eval_episodes: int
    overrides: dict = field(default_factory=dict)  # config overrides for every agent that has the field
    sweep_omegas: tuple = (0.0, 0.5, 1.0, 2.0, 4.0)
    sweep_candidates: tuple = (1, 32)
    log_every: int = 1000
    data_dir: str | None = None  # None: <out>/data; the paper-scale suites use ~/.ogbench/data
    source: str = "ogbench"  # 'ogbench' (dataset = an OGBench dataset) or 'dmc' (dataset = a DMC domain)
    data_steps: int | None = None  # dmc: exploratory transitions to collect

    @property
    def category(self) -> str:
        return f"dmc-{self.dataset}" if self.source == "dmc" else self.dataset.removesuffix("-v0")

    @property
    def metric(self) -> str:
        """OGBench tasks are scored by success rate (%), DMC tasks (no success signal) by episode return."""
        return "return" if self.source == "dmc" else "success"


def _tasks(dataset: str) -> tuple:
    base = dataset.removesuffix("-v0")
    return tuple(f"{base}-singletask-task{i}-v0" for i in range(1, 6))


SUITES = {
    # ~1 hour for DIPOLE with 2 seeds on 2 CPU cores: 5 pointmaze tasks, 200-episode dataset, 40k updates, 3x128.
    "ogbench-mini": Suite("ogbench-mini", "pointmaze-medium-navigate-v0", _tasks("pointmaze-medium-navigate-v0"),
                          episodes=200, steps=40_000, preset="small", eval_episodes=10, overrides={"lr": 1e-3}),
    # Paper scale (GPU): full published datasets, 4x512, 1M updates, 50 evaluation episodes per task.
    **{
        f"ogbench-{cat}": Suite(f"ogbench-{cat}", f"{cat}-v0", _tasks(f"{cat}-v0"), episodes=None, steps=1_000_000,
                                preset="paper", eval_episodes=50, data_dir="~/.ogbench/data")
        for cat in ("cube-single-play", "cube-double-play", "scene-play", "puzzle-3x3-play")
    },
    # For tests and smoke runs: one task, a handful of updates.
    "smoke": Suite("smoke", "pointmaze-medium-navigate-v0", ("pointmaze-medium-navigate-singletask-task1-v0",),
                   episodes=2, steps=200, preset="tiny", eval_episodes=2, overrides={"flow_steps": 3},
                   sweep_omegas=(0.0, 2.0), sweep_candidates=(1, 2), log_every=100),
}
def _dmc_tasks(domain: str) -> tuple:
    from dipole.data.dmc import DOMAINS

    return tuple(f"dmc-{domain}-{task}" for task in DOMAINS[domain])


for _domain in ("walker", "cheetah", "quadruped"):
    # ExORL's setting: 1M exploratory transitions relabelled per task, 4x512 networks, 1M updates (GPU).
    SUITES[f"dmc-{_domain}"] = Suite(f"dmc-{_domain}", _domain, _dmc_tasks(_domain), episodes=None, steps=1_000_000,
                                     preset="paper", eval_episodes=10, source="dmc", data_steps=1_000_000,
                                     data_dir="~/.dipole/dmc")
# CPU-sized: 100k exploratory walker transitions, 20k updates, 3x128, 5 evaluation episodes per point.
SUITES["dmc-walker-mini"] = Suite("dmc-walker-mini", "walker", _dmc_tasks("walker"), episodes=None, steps=20_000,
                                  preset="small", eval_episodes=5, overrides={"lr": 1e-3}, source="dmc",
                                  data_steps=100_000, sweep_candidates=(1,))
SUITES["smoke-dmc"] = Suite("smoke-dmc", "walker", ("dmc-walker-stand",), episodes=None, steps=200, preset="tiny",
                            eval_episodes=1, overrides={"flow_steps": 3}, source="dmc", data_steps=2000,
                            sweep_omegas=(0.0, 2.0), sweep_candidates=(1,), log_every=100)
SUITES["ogbench"] = SUITES["ogbench-cube-single-play"]  # alias; run the other categories by name


def run_bench(suite_name: str, agents: list[str], seeds: int, out_dir: str | None = None, workers: int = 2,
              log=print, report_only: bool = False) -> dict:
    """Run every (task, agent, seed) not yet finished, then write the tables; report_only just writes the tables."""
    from dipole.configs import build_config
    from dipole.data.generate import generate_ogbench
    from dipole.data.ogbench_data import load_ogbench
    from dipole.evaluation import evaluate_agent, omega_sweep
    from dipole.train import TrainSettings, train

    if suite_name not in SUITES:
        raise ValueError(f"unknown suite {suite_name!r}; available: {sorted(SUITES)}")
    suite = SUITES[suite_name]
    out_dir = out_dir or os.path.join("runs", "bench", suite_name)
    if report_only:
        return aggregate(suite, agents, seeds, out_dir)
    data_dir = os.path.expanduser(suite.data_dir or os.path.join(out_dir, "data"))
    if suite.source == "dmc":
        from dipole.data.dmc import generate_dmc, load_dmc

        train_file = os.path.join(data_dir, f"{suite.dataset}-explore.npz")
        if not os.path.exists(train_file):
            log(f"collecting {suite.data_steps} exploratory {suite.dataset} transitions into {data_dir}")
            generate_dmc(suite.dataset, steps=suite.data_steps, explorers=8, workers=workers, seed=0,
                         out_dir=data_dir)
    else:
        train_file = os.path.join(data_dir, f"{suite.dataset}.npz")
        if not os.path.exists(train_file):
            log(f"generating {suite.dataset} ({suite.episodes or 'published'} episodes) into {data_dir}")
            generate_ogbench(suite.dataset, episodes=suite.episodes, workers=workers, seed=0, out_dir=data_dir)

    runs = [(task, agent, seed) for task in suite.tasks for agent in agents for seed in range(seeds)]
    todo = [r for r in runs if not os.path.exists(_run_dir(out_dir, *r, "result.json"))]
    start = time.time()
    for i, (task, agent_name, seed) in enumerate(todo):
        run_dir = _run_dir(out_dir, task, agent_name, seed)
        result_path = os.path.join(run_dir, "result.json")
        eta = "" if not i else f", ETA {(time.time() - start) / i * (len(todo) - i) / 60:.0f} min"
        log(f"[{len(runs) - len(todo) + i + 1}/{len(runs)}] {task} {agent_name} seed {seed}{eta}")
        if suite.source == "dmc":
            env, dataset = load_dmc(task, train_file)
            env.close()
        else:
            _, dataset, _ = load_ogbench(task, dataset_path=train_file)
        config = build_config(agent_name, task, suite.preset)
        fields = config.to_dict()
        config = config.replace(**{k: v for k, v in suite.overrides.items() if k in fields})
        settings = TrainSettings(steps=suite.steps, seed=seed, log_every=suite.log_every, eval_every=0,
                                 eval_episodes=0, save_every=max(suite.log_every, suite.steps // 10 // suite.log_every
                                                                 * suite.log_every), progress=False)
        agent = train(run_dir, task, dataset, agent_name, config, settings, resume=True, log=log)
        headline = evaluate_agent(agent, task, suite.eval_episodes, seed=seed)
        sweep = None
        if "omega" in fields:
            sweep = omega_sweep(agent, task, list(suite.sweep_omegas), list(suite.sweep_candidates),
                                suite.eval_episodes, seed=seed)
        atomic_write_json(result_path, {"task": task, "agent": agent_name, "seed": seed, "steps": suite.steps,
                                        "headline": headline, "omega_sweep": sweep, "config": config.to_dict()})
    return aggregate(suite, agents, seeds, out_dir)


def _run_dir(out_dir, task, agent, seed, *rest):
    return os.path.join(out_dir, "runs", task, agent, f"seed{seed}", *rest)


def _mean_std(xs):
    xs = np.asarray(xs, float)
    return float(xs.mean()), float(xs.std())


def _score(suite: Suite, res: dict) -> float:
    return 100 * res["success"] if suite.metric == "success" else res["return"]


def aggregate(suite: Suite, agents: list[str], seeds: int, out_dir: str) -> dict:
    """Per task: mean ± std over seeds of success (%) (DMC: return). Per category: the 5-task average per seed, then mean ± std.

    Runs without a result.json (not yet run) are left out and counted in `missing`; a task's cell is None when none
    of its seeds finished, and the category is None unless every task of that seed finished.
    """
    results = {}
    missing = 0
    for agent in agents:
        per_task, per_seed = {}, {}
        sweeps = {}
        for task in suite.tasks:
            scores = []
            for seed in range(seeds):
                path = _run_dir(out_dir, task, agent, seed, "result.json")
                if not os.path.exists(path):
                    missing += 1
                    continue
                r = json.load(open(path))
                scores.append(_score(suite, r["headline"]))
                per_seed.setdefault(seed, []).append(scores[-1])
                for row in r["omega_sweep"] or []:
                    sweeps.setdefault((row["omega"], row["num_candidates"]), {}).setdefault(seed, []).append(
                        _score(suite, row))
            per_task[task] = _mean_std(scores) if scores else None
        complete = [np.mean(v) for v in per_seed.values() if len(v) == len(suite.tasks)]
        category = _mean_std(complete) if complete else None
        sweep_rows = [{"omega": w, "num_candidates": k, "score": _mean_std([np.mean(v) for v in by_seed.values()
                                                                              if len(v) == len(suite.tasks)])}
                      for (w, k), by_seed in sorted(sweeps.items(), key=lambda x: (x[0][1], x[0][0]))
                      if any(len(v) == len(suite.tasks) for v in by_seed.values())]
        results[agent] = {"tasks": per_task, "category": category, "omega_sweep": sweep_rows}
    summary = {"suite": suite.name, "category": suite.category, "seeds": seeds, "steps": suite.steps,
               "preset": suite.preset, "eval_episodes": suite.eval_episodes, "agents": results, "missing": missing,
               "metric": suite.metric}
    atomic_write_json(os.path.join(out_dir, "results.json"), summary)
    md = markdown_tables(summary)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(md + "\n")
    bench_plots(summary, out_dir)
    return summary


def _unit(summary: dict) -> str:
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
    unit = _unit(summary)
    lines = [f"Suite `{summary['suite']}`: {unit}, {spread}; "
             f"{summary['steps']} updates, `{summary['preset']}` networks, {summary['eval_episodes']} episodes per "
             "evaluation; headline omega and K from each agent's config (fixed in advance).", "",
             "| task | " + " | ".join(agents) + " |", "|---|" + "---:|" * len(agents)]
    for t in tasks:
        cells = [_cell(summary["agents"][a]["tasks"][t], seeds=summary["seeds"]) for a in agents]
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    cells = [_cell(summary["agents"][a]["category"], bold=True, seeds=summary["seeds"]) for a in agents]
    lines.append(f"| **{summary['category']} ({len(tasks)}-task average)** | " + " | ".join(cells) + " |")
    if summary.get("missing"):
        lines += ["", f"{summary['missing']} run(s) of this suite have not finished; their cells show — and the "
                      "average is given only over seeds with every task finished."]
    for a in agents:
        rows = summary["agents"][a]["omega_sweep"]
        if not rows:
            continue
        lines += ["", f"Omega sweep for `{a}` (category average {unit}, each point its own evaluation; "
                      "not used for the headline):", "", "| omega | K | score |", "|---:|---:|---:|"]
        lines += [f"| {r['omega']:g} | {r['num_candidates']} | {_cell(r['score'], seeds=summary['seeds'])} |"
                  for r in rows]
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
    unit = _unit(summary)
    axes[0].set_ylabel(unit)
    axes[0].set_title(f"{summary['category']}: headline (fixed omega)")
    axes[0].legend(fontsize=8)
    for a in agents:
        rows = summary["agents"][a]["omega_sweep"]
        for k in sorted({r["num_candidates"] for r in rows}):
            sel = [r for r in rows if r["num_candidates"] == k]
            axes[1].errorbar([r["omega"] for r in sel], [r["score"][0] for r in sel],
                             yerr=[r["score"][1] for r in sel], marker="o", capsize=3, label=f"{a}, K={k}")
    axes[1].set_xlabel("omega")
    axes[1].set_ylabel(f"category {unit}")
    axes[1].set_title("omega sweep (separate from the headline)")
    if axes[1].get_legend_handles_labels()[0]:
        axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "results.png"), dpi=110)
    plt.close(fig)
