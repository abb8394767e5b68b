"""Fingerprints of the offline training loop: what a single run and a population give, for every OGBench agent.

Each agent trains 60 updates (tiny networks) on a few generated pointmaze episodes, alone and as a population of two
members (two tasks, two seeds), with a final evaluation of 2 episodes; the fingerprint is every parameter leaf's sum
and absolute sum, the actions for fixed observations and key, the last metrics.csv row (its clock aside) and the
evaluation's episodes. `tests/loop_fingerprint.json` was written by this script before the loops were merged into
one; `tests/test_loop_fingerprint.py` checks a part of it in the suite, and

    python tests/loop_fingerprint.py --check     # every agent, single runs and populations (about 2 minutes)
    python tests/loop_fingerprint.py --record    # rewrite the file (only when a change of numbers is intended)

checks or rewrites all of it.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile

os.environ.setdefault("JAX_NUM_CPU_DEVICES", "2")  # as the test suite and a 2-core machine run populations

import jax  # noqa: E402
import numpy as np  # noqa: E402

FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "loop_fingerprint.json")
TASKS = ("pointmaze-medium-navigate-singletask-task1-v0", "pointmaze-medium-navigate-singletask-task3-v0")
TINY = dict(actor_hidden_dims=(32, 32), value_hidden_dims=(32, 32), batch_size=64, flow_steps=4)
AGENTS = {"bc": {}, "iql": {}, "ifql": {"num_candidates": 4}, "fql": {}, "cfgrl": {},
          "dipole": {"num_candidates": 4}, "dipole-iql": {"critic": "iql", "num_candidates": 4}}
STEPS, EPISODES = 60, 2


def make_data(out_dir: str) -> str:
    from dipole.datagen.ogbench import generate_ogbench

    return generate_ogbench("pointmaze-medium-navigate-v0", episodes=4, workers=1, seed=0, out_dir=out_dir,
                            progress=False)["train_path"]


def _leaves(tree) -> dict:
    leaves = [np.asarray(x, np.float64) for x in jax.tree_util.tree_leaves(tree)]
    return {"param_sums": [float(x.sum()) for x in leaves], "param_abs": [float(np.abs(x).sum()) for x in leaves]}


def _last_rows(path: str, members: int) -> list[dict]:
    rows = list(csv.DictReader(open(path)))[-members:]
    return [{k: v for k, v in r.items() if k != "time"} for r in rows]


def _episodes(row: dict) -> dict:
    return {k: row[k] for k in ("success", "return", "length") if k in row}


def probe(train_path: str):
    """The fixed observations and key every fingerprint's actions are drawn for."""
    from dipole.data.ogbench import load_ogbench

    env, train_ds, _ = load_ogbench(TASKS[0], dataset_path=train_path)
    env.close()
    return train_ds["observations"][:5], jax.random.PRNGKey(5)


def solo_print(agent, run: str, obs, key) -> dict:
    out = _leaves(agent.params)
    out["actions"] = np.asarray(agent.sample_actions(obs, key), np.float64).tolist()
    out["metrics"] = _last_rows(os.path.join(run, "metrics.csv"), 1)
    return out


def population_print(pop, run: str, obs, key) -> dict:
    n = len(pop.members)
    out = _leaves(pop.agents.params)
    out["actions"] = np.asarray(pop.sample_actions(np.stack([obs] * n), jax.numpy.stack([key] * n)),
                                np.float64).tolist()
    out["metrics"] = _last_rows(os.path.join(run, "metrics.csv"), n)
    return out


def fingerprint(name: str, train_path: str, work: str, population: bool, evaluate: bool = True) -> dict:
    from dipole.agents import get_agent
    from dipole.data.ogbench import load_ogbench
    from dipole.runners.evaluation import evaluate_agent
    from dipole.runners.loop import train, train_population
    from dipole.runners.offline import TrainSettings
    from dipole.runners.population import Member, PopulationData, evaluate_population

    agent_name = "dipole" if name.startswith("dipole") else name
    config = get_agent(agent_name)[1]().replace(**TINY, **AGENTS[name])
    quiet = dict(log=lambda *a: None)
    data = {}
    for task in TASKS:
        env, train_ds, val_ds = load_ogbench(task, dataset_path=train_path)
        env.close()
        data[task] = (train_ds, val_ds)
    obs = data[TASKS[0]][0]["observations"][:5]
    key = jax.random.PRNGKey(5)
    run = os.path.join(work, f"{name}-{'pop' if population else 'solo'}")
    if not population:
        settings = TrainSettings(steps=STEPS, log_every=30, eval_every=0, eval_episodes=0, save_every=STEPS,
                                 progress=False, seed=1)
        agent = train(run, TASKS[1], data[TASKS[1]][0], agent_name, config, settings,
                      val_dataset=data[TASKS[1]][1], **quiet)
        out = solo_print(agent, run, obs, key)
        if evaluate:
            out["eval"] = [_episodes(evaluate_agent(agent, TASKS[1], EPISODES, seed=1, num_envs=2))]
        return out
    members = [Member(TASKS[0], 0), Member(TASKS[1], 1)]
    settings = TrainSettings(steps=STEPS, log_every=30, eval_every=0, eval_episodes=0, save_every=STEPS,
                             progress=False)
    pop = train_population(run, members, PopulationData(list(TASKS), [data[t][0] for t in TASKS]), agent_name,
                           config, settings, val_data=PopulationData(list(TASKS), [data[t][1] for t in TASKS]),
                           **quiet)
    out = population_print(pop, run, obs, key)
    if evaluate:
        out["eval"] = [_episodes(r) for r in evaluate_population(pop, episodes=EPISODES, num_envs=2)]
    return out


def compare(want, got, where="") -> list[str]:
    """-> the differences beyond float printing (rtol 1e-5, atol 1e-6), one line each."""
    if isinstance(want, dict):
        if set(want) != set(got):
            return [f"{where}: keys {sorted(want)} != {sorted(got)}"]
        return [d for k in want for d in compare(want[k], got[k], f"{where}.{k}")]
    if isinstance(want, list):
        if len(want) != len(got):
            return [f"{where}: length {len(want)} != {len(got)}"]
        return [d for i, (a, b) in enumerate(zip(want, got)) for d in compare(a, b, f"{where}[{i}]")]
    try:
        a, b = float(want), float(got)
    except (TypeError, ValueError):
        return [] if want == got else [f"{where}: {want!r} != {got!r}"]
    return [] if np.isclose(a, b, rtol=1e-5, atol=1e-6) or (np.isnan(a) and np.isnan(b)) else [
        f"{where}: {want!r} != {got!r}"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--record", action="store_true")
    p.add_argument("--check", action="store_true")
    p.add_argument("--agents", default=",".join(AGENTS))
    a = p.parse_args(argv)
    if a.record == a.check:
        p.error("give one of --record or --check")
    names = a.agents.split(",")
    with tempfile.TemporaryDirectory() as work:
        path = make_data(os.path.join(work, "data"))
        got = {f"{n}/{kind}": fingerprint(n, path, work, kind == "population") for n in names
               for kind in ("single", "population")}
    if a.record:
        json.dump(got, open(FILE, "w"), indent=1)
        print(f"wrote {FILE}: {len(got)} fingerprints")
        return 0
    want = json.load(open(FILE))
    diffs = [d for k in got for d in compare(want[k], got[k], k)]
    exact = all(json.dumps(want[k], sort_keys=True) == json.dumps(got[k], sort_keys=True) for k in got)
    print("\n".join(diffs[:40]) or f"{len(got)} fingerprints equal to {FILE}"
          + (", bit for bit" if exact else " within float printing (rtol 1e-5), not bit for bit"))
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
