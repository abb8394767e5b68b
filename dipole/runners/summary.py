"""What a finished run leaves for its user: summary.json, learning curves, members' own checkpoints, and one line
naming the files, for a single run, a population (`dipole train --seeds`), a fine-tune or the quickstart."""

from __future__ import annotations

import os

import numpy as np

from dipole.data.stacked import PopulationData
from dipole.runners.logging import read_csv
from dipole.runners.plots import learning_curve
from dipole.runners.population import export_members
from dipole.storage import atomic_write_json, list_checkpoints


def finish_run(run_dir, env_name, agent, sweep_rows=None, extra=None, plot=True, sweep_file=None):
    """Write summary.json (and the learning curve), then say which files the run folder holds."""
    metrics = read_csv(os.path.join(run_dir, "metrics.csv"))
    evals = read_csv(os.path.join(run_dir, "eval.csv"))
    if plot:
        learning_curve(metrics, evals, os.path.join(run_dir, "learning_curve.png"), title=f"{env_name}")
    summary = {
        "env": env_name,
        "agent": agent.config.agent,
        "config": agent.config.to_dict(),
        "steps": int(agent.step),
        "final_train_metrics": metrics[-1] if metrics else None,
        "evaluations": evals,
        "final_evaluation": evals[-1] if evals else None,
        **(extra or {}),
    }
    if sweep_rows is not None:
        summary["omega_sweep"] = sweep_rows
        from dipole.runners.evaluation import row_selection

        head_sel = agent.selection_of() if agent.config.num_candidates > 1 else None
        head = [r for r in sweep_rows if r["omega"] == agent.config.omega
                and r["num_candidates"] == agent.config.num_candidates and row_selection(r) == head_sel]
        summary["headline"] = head[0] if head else None
    atomic_write_json(os.path.join(run_dir, "summary.json"), summary)
    names = ["summary.json", "config.json", "metrics.csv", "eval.csv", "episodes.csv", "learning_curve.png",
             "finetune_curve.png"] + ([os.path.basename(f) for f in (sweep_file + ".json", sweep_file + ".png")]
                                      if sweep_file else [])
    present = [n for n in names if os.path.exists(os.path.join(run_dir, n))]
    ckpts = len(list_checkpoints(run_dir))
    if ckpts:
        present.append(f"checkpoints/ ({ckpts} file{'s' if ckpts > 1 else ''})")
    print(f"wrote {run_dir}/: " + ", ".join(present))



def finish_population(run_dir: str, env_name: str, agent_name: str, config, pop, dataset, val=None) -> None:
    """A population over seeds of one task (`dipole train --seeds`): each member's own checkpoint and learning
    curve in RUN/members/, summary.json with every member's last rows and the success over seeds."""
    data = PopulationData([env_name], [dataset])
    val_data = PopulationData([env_name], [val]) if val is not None else None
    paths = export_members(pop, run_dir, data, lambda m: os.path.join(run_dir, "members",
                                                                      f"{m.task}-seed{m.seed}.dpl"), val_data)
    metrics = read_csv(os.path.join(run_dir, "metrics.csv"))
    evals = read_csv(os.path.join(run_dir, "eval.csv"))
    members = []
    for m, path in zip(pop.members, paths):
        mine = lambda rows: [r for r in rows if r["task"] == m.task and int(r["seed"]) == m.seed]  # noqa: E731
        learning_curve(mine(metrics), mine(evals), path.removesuffix(".dpl") + ".png",
                       title=f"{m.task} seed {m.seed}")
        members.append({"task": m.task, "seed": m.seed, "checkpoint": path,
                        "final_train_metrics": (mine(metrics) or [None])[-1],
                        "final_evaluation": (mine(evals) or [None])[-1]})
    scores = [r["final_evaluation"]["success"] for r in members
              if r["final_evaluation"] and r["final_evaluation"].get("success") is not None]
    atomic_write_json(os.path.join(run_dir, "summary.json"), {
        "env": env_name, "agent": agent_name, "config": config.to_dict(), "steps": int(np.max(pop.agents.step)),
        "members": members,
        "success_mean_std": [float(np.mean(scores)), float(np.std(scores))] if scores else None})
    if scores:
        print(f"success over {len(scores)} seeds: {100 * np.mean(scores):.1f} ± {100 * np.std(scores):.1f} % "
              f"(per seed: {', '.join(f'{100 * x:.0f}' for x in scores)})")
    print(f"wrote {run_dir}/: summary.json, config.json, metrics.csv, eval.csv, checkpoints/ (the population), "
          f"members/ ({len(paths)} single-agent checkpoints with learning curves)")
