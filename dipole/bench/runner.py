"""Benchmark runner: every (task, agent, seed) of a suite, resumable run by run, aggregated as OGBench reports.

Each run trains in its own folder (checkpoints, resume after a kill) and writes `result.json` when done; a finished
run is skipped on the next call. The headline score of a run is its success rate at the omega and K of its
config, fixed before training; the omega sweep is evaluated and tabulated separately.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import os
import time

import jax
import numpy as np

from dipole.agents import build_config, get_agent
from dipole.bench.backends import LocalBackend, PopulationJob
from dipole.bench.report import bench_plots, curve_plots, markdown_tables, unit_of
from dipole.bench.stats import PROFILE_POINTS, rliable_stats, score_matrices, stats_markdown, stats_plot
from dipole.bench.suites import SUITES, Suite
from dipole.data import load_dataset
from dipole.data.ogbench import generated_pair_complete
from dipole.datagen.dmc import generate_dmc
from dipole.datagen.ogbench import generate_ogbench
from dipole.errors import RunFolderError, UsageError
from dipole.runfolder import check_resume, claimed, remove_entries
from dipole.runners.evaluation import (
    close_eval_envs,
    envs_per_member,
    row_selection,
    setting_label,
    sweep_settings,
)
from dipole.runners.logging import read_csv
from dipole.runners.loop import train_population
from dipole.runners.offline import TrainSettings, fmt_seconds
from dipole.runners.population import (
    Member,
    Population,
    evaluate_population,
    export_members,
    load_population,
    load_population_data,
    population_eval_envs,
    take,
)
from dipole.storage import CheckpointError, atomic_write_json, list_checkpoints, read_header
from dipole.version import __version__


def run_bench(suite_name: str, agents: list[str], seeds: int, out_dir: str | None = None, workers: int = 2,
              log=print, report_only: bool = False, overrides: dict | None = None, overwrite: bool = False,
              population: bool = True, max_population: int | None = None, backend=None) -> dict:
    """Run every (task, agent, seed) not yet finished, then write the tables; report_only just writes the tables.

    With `population` (the default) each agent's unfinished (task, seed) runs are trained as one population (one
    compiled program, at most `max_population` members each; see dipole.runners.population), whose members give
    the results the same runs trained one by one give; otherwise run by run (`max_population` 1: each run is a
    population of one, as `dipole train` trains a single run).

    `backend` says where the population programs run: `LocalBackend()` (the default: one after another in this
    process) or `RayBackend(...)` (Ray tasks on this machine or a cluster); see dipole.bench.backends. The results
    are the same files either way.

    `overrides` (config field -> value) apply, after the suite's own, to every agent whose config has the field.
    The output folder is this process's alone while it runs. It records the suite and the overrides (bench.json):
    a later call with other ones is refused unless `overwrite` (which deletes the earlier runs and results, not the
    data); more agents or seeds may be added to a folder at any time.
    """
    suite = get_suite(suite_name)
    overrides = dict(overrides or {})
    check_overrides(suite, agents, overrides)
    backend = backend or LocalBackend()
    out_dir = out_dir or os.path.join(backend.root, "bench", suite_name)
    with claimed(out_dir):
        if report_only:
            overrides = _recorded_overrides(out_dir, overrides)
            check_finished_runs(suite, agents, seeds, out_dir, overrides)
            return aggregate(suite, agents, seeds, out_dir)
        if max_population is not None and max_population < 1:
            raise UsageError(f"--max-population must be >= 1, got {max_population}")
        if not population:  # run by run: each run its own program, a population of one
            if max_population not in (None, 1):
                raise UsageError(f"--no-population trains run by run; drop --max-population {max_population}")
            max_population = 1
        _own_bench_folder(out_dir, suite, overrides, overwrite, log)
        check_finished_runs(suite, agents, seeds, out_dir, overrides)
        train_file = prepare_data(suite, os.path.join(out_dir, "data"), workers, log)
        backend.run(plan_jobs(suite, agents, seeds, out_dir, train_file, overrides, max_population,
                              eval_workers_of(backend, workers)), run_population_job, log)
        return aggregate(suite, agents, seeds, out_dir)


def eval_workers_of(backend, workers: int) -> int:
    """Processes that step a population's evaluation environments: `workers`, within a Ray task's CPUs."""
    return max(1, workers if isinstance(backend, LocalBackend) else min(workers, int(backend.cpus_per_run)))


def get_suite(name: str) -> Suite:
    if name not in SUITES:
        raise UsageError(f"unknown suite {name!r}; available: {sorted(SUITES)}")
    return SUITES[name]


def check_overrides(suite: Suite, agents: list[str], overrides: dict) -> None:
    """Refuse an unknown agent, a field no agent has, or a bad value, before any data is made."""
    known = {k for a in agents for k in build_config(a, None).to_dict()}  # an unknown agent fails here
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise UsageError(f"config field(s) {unknown} belong to none of the agents {agents}; valid: {sorted(known)}")
    for agent in agents:
        _config(suite, agent, suite.tasks[0], overrides)


BENCH_FILES = ("bench.json", "results.json", "results.md", "results.png", "runs", "populations")


def _own_bench_folder(out_dir, suite, overrides, overwrite, log):
    """Refuse a folder whose runs were made with another suite or other overrides (unless overwriting it)."""
    identity = {"suite": suite.name, **{f"suite.{k}": v for k, v in dataclasses.asdict(suite).items()},
                "overrides": {k: overrides[k] for k in sorted(overrides)}}
    path = os.path.join(out_dir, "bench.json")
    present = [n for n in BENCH_FILES if os.path.exists(os.path.join(out_dir, n))]
    if overwrite and present:
        remove_entries(out_dir, present)
        log(f"--overwrite: removed the earlier bench runs in {out_dir} ({', '.join(present)}); data kept")
    elif os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
        check_resume(path, saved, json.loads(json.dumps(identity)), prefix="")
    elif os.path.exists(os.path.join(out_dir, "runs")):
        raise RunFolderError(f"{out_dir} holds bench runs but no bench.json saying how they were made; pass "
                             "--overwrite to start again, or choose another --out")
    atomic_write_json(path, identity)


def _recorded_overrides(out_dir: str, overrides: dict) -> dict:
    """A report's overrides: those the folder's bench.json recorded when none are given, else the given ones, which
    must be the recorded ones."""
    path = os.path.join(out_dir, "bench.json")
    if not os.path.exists(path):
        return overrides
    with open(path) as f:
        saved = json.load(f).get("overrides", {})
    if overrides:
        check_resume(path, {"overrides": saved}, json.loads(json.dumps({"overrides": overrides})), prefix="")
    return dict(saved)


def check_finished_runs(suite: Suite, agents: list[str], seeds: int, out_dir: str, overrides: dict) -> None:
    """Refuse a folder whose finished runs were made with another config than this command gives their task now
    (an agent's task rules or defaults changed since, e.g. a frozen headline): a finished run is not run again, so
    its old result would be reported under today's settings."""
    stale = []
    for agent in agents:
        for task in suite.tasks:
            want = json.loads(json.dumps(_config(suite, agent, task, overrides).to_dict()))
            for seed in suite.seed_range(seeds):
                path = _run_dir(out_dir, task, agent, seed, "result.json")
                if not os.path.exists(path):
                    continue
                with open(path) as f:
                    saved = _with_defaults(agent, json.load(f).get("config")) or {}
                diff = [k for k in want if saved.get(k) != want[k]]
                if diff:
                    stale.append((agent, path, ", ".join(f"{k} {saved.get(k)!r} (now {want[k]!r})" for k in diff)))
    if stale:
        agent, path, fields = stale[0]
        names = sorted({a for a, _, _ in stale})
        raise RunFolderError(
            f"{len(stale)} finished run(s) of {', '.join(names)} in {out_dir} were made with another config than "
            f"this command gives now, so their results would be reported under today's settings (first: {path}: "
            f"{fields}); delete {' and '.join(f'runs/*/{a}' for a in names)} there to run them again, or choose "
            "another --out (--overwrite starts the whole folder again)")


def prepare_data(suite: Suite, default_dir: str, workers: int, log) -> str:
    """Make the suite's dataset unless it is there (in suite.data_dir, else `default_dir`); -> its training file."""
    data_dir = os.path.expanduser(suite.data_dir or default_dir)
    if suite.source == "dmc":
        train_file = os.path.join(data_dir, f"{suite.dataset}-explore.npz")
        if not os.path.exists(train_file):
            log(f"collecting {suite.data_steps} exploratory {suite.dataset} transitions into {data_dir}")
            generate_dmc(suite.dataset, steps=suite.data_steps, explorers=8, workers=workers, seed=0,
                         out_dir=data_dir)
    elif suite.source == "highway":
        train_file = os.path.join(data_dir, f"{suite.dataset}.npz")
        if not os.path.exists(train_file):  # written atomically, whole or not at all
            from dipole.datagen.highway import DEFAULT_DATA_EPISODES, generate_highway

            log(f"driving {suite.episodes or DEFAULT_DATA_EPISODES} scripted-driver {suite.dataset} episodes into "
                f"{data_dir}")
            generate_highway(suite.dataset, episodes=suite.episodes or DEFAULT_DATA_EPISODES, workers=workers, seed=0,
                             out_dir=data_dir)
    else:
        train_file = os.path.join(data_dir, f"{suite.dataset}.npz")
        if not generated_pair_complete(train_file):  # missing, or a generation that was killed half way
            log(f"generating {suite.dataset} ({suite.episodes or 'published'} episodes) into {data_dir}")
            generate_ogbench(suite.dataset, episodes=suite.episodes, workers=workers, seed=0, out_dir=data_dir)
    return train_file


def _unfinished(suite, agents, seeds, out_dir):
    runs = [(task, agent, seed) for task in suite.tasks for agent in agents for seed in suite.seed_range(seeds)]
    return runs, [r for r in runs if not os.path.exists(_run_dir(out_dir, *r, "result.json"))]


def plan_jobs(suite: Suite, agents: list[str], seeds: int, out_dir: str, train_file: str, overrides: dict,
              max_population: int | None = None, eval_workers: int = 1) -> list[PopulationJob]:
    """The population programs that finish this bench folder: per agent, its unfinished (task, seed) runs in
    groups of at most `max_population`; each evaluates with `eval_workers` processes stepping environments."""
    _, todo = _unfinished(suite, agents, seeds, out_dir)
    jobs = []
    for agent_name in agents:
        mine = [Member(t, s) for t, a, s in todo if a == agent_name]
        size = max_population or len(mine) or 1
        jobs += [PopulationJob(suite, agent_name, tuple(mine[i:i + size]), out_dir, train_file, dict(overrides),
                               eval_workers) for i in range(0, len(mine), size)]
    return jobs


def _config(suite, agent_name, task, overrides):
    fields = get_agent(agent_name)[1].field_names()
    # the agent's own overrides go through build_config: they may select a form (DIPOLE's critic) and its rules
    return build_config(agent_name, task, suite.preset,
                        {k: v for k, v in {**suite.overrides, **overrides}.items() if k in fields})


def _settings(suite, seed, progress=False):
    # a suite with learning curves evaluates the headline setting while training (eval.csv), at the end too
    return TrainSettings(steps=suite.steps, seed=seed, log_every=suite.log_every, eval_every=suite.eval_every,
                         eval_episodes=suite.eval_episodes if suite.eval_every else 0,
                         save_every=max(suite.log_every, suite.steps // 10 // suite.log_every * suite.log_every),
                         progress=progress)


def _load_task(suite, train_file):
    return lambda task: load_dataset(task, train_file)


def run_population_job(job: PopulationJob, log=print, progress: bool = True) -> None:
    """Train, evaluate and write the results of one job (in this process)."""
    _run_population(job.suite, job.agent, list(job.members), job.out_dir, job.train_file, log, job.overrides,
                    progress, job.eval_workers)


def _run_population(suite, agent_name, members, out_dir, train_file, log, overrides, progress=True, eval_workers=1):
    """Train `members` of one agent as populations (one per distinct config among their tasks), evaluate every
    member in one batched run per (omega, K), and write each member's result.json where a single run writes it."""
    by_config = {}
    for m in members:
        config = _config(suite, agent_name, m.task, overrides)
        by_config.setdefault(json.dumps(config.to_dict(), sort_keys=True), (config, []))[1].append(m)
    for config, group in by_config.values():
        tasks = sorted({m.task for m in group}, key=suite.tasks.index)
        tag = hashlib.blake2b(json.dumps([[m.task, m.seed] for m in group]).encode(), digest_size=4).hexdigest()
        pop_dir = os.path.join(out_dir, "populations", f"{agent_name}-{len(group)}-{tag}")
        data, val = load_population_data(tasks, _load_task(suite, train_file))
        done = _finished_population(out_dir, agent_name, group, config, suite.steps, data)
        if done is not None:
            pop, pop_dir = done
            log(f"{agent_name}: evaluating {len(group)} finished member(s) of the population in {pop_dir}")
        else:
            log(f"{agent_name}: {len(group)} runs ({len(tasks)} tasks, seeds "
                f"{sorted({m.seed for m in group})}) as one population in {pop_dir}")
            pop = train_population(pop_dir, group, data, agent_name, config, _settings(suite, 0, progress=progress),
                                   resume=True, log=log, val_data=val)
        export_members(pop, pop_dir, data, lambda m: _run_dir(out_dir, m.task, agent_name, m.seed, "agent.dpl"),
                       val)
        envs = population_eval_envs(pop, suite.eval_episodes, workers=eval_workers)
        try:
            params = params_digest(pop)
            t0 = time.time()
            # the headline setting is evaluated once: a sweep row with the same (omega, K, selection) is the same run
            head = pop.agents.sampling().fields()
            head_key = (head["omega"], head["num_candidates"], head["selection"])
            settings = swept_settings(suite, pop.agents)
            same = [j for j, (w, k, sel) in enumerate(settings)
                    if (None if w is None else float(w), int(k), sel if k > 1 else None) == head_key]
            # the headline's setting first, so that a bench stopped during a long sweep has its headline saved (a
            # headline off the sweep's grid is evaluated on its own, before the sweep)
            order = same[:1] + [j for j in range(len(settings)) if j not in same[:1]]
            off_grid = (None if same else
                        saved_evaluation(pop, pop_dir, agent_name, config, envs, suite.eval_episodes, None, log, params))
            rows_of, fresh = {}, []  # fresh: the settings this call evaluated (not read back), for the ETA
            for n, j in enumerate(order):
                w, k, sel = settings[j]
                rows = rows_of[j] = saved_evaluation(pop, pop_dir, agent_name, config, envs, suite.eval_episodes,
                                                     (w, k, sel), log, params, fresh)
                spent, metric = time.time() - t0, "success" if rows[0]["success"] is not None else "return"
                eta = fmt_seconds(spent / len(fresh) * (len(settings) - n - 1)) if fresh else "unknown"
                log(f"{agent_name}: evaluated setting {n + 1}/{len(settings)} ("
                    f"{setting_label(k, row_selection(rows[0]), w)}"
                    f"{', the headline' if j in same[:1] else ''}): mean {metric} "
                    f"{np.mean([r[metric] for r in rows]):.3g} over {len(group)} members; {fmt_seconds(spent)} "
                    f"elapsed, ETA {eta if n + 1 < len(settings) else fmt_seconds(0)}")
            sweeps = [[rows_of[j][i] for j in range(len(settings))] for i in range(len(group))]
            headline = [per[same[0]] for per in sweeps] if same else off_grid
            log(f"evaluated {len(group)} members x {len(settings) + (not same)} settings x {suite.eval_episodes} "
                f"episodes in {time.time() - t0:.0f} s")
        finally:
            close_eval_envs(envs)
        curves = learning_curves(pop_dir) if suite.eval_every else {}
        for m, head, sweep in zip(group, headline, sweeps):
            atomic_write_json(_run_dir(out_dir, m.task, agent_name, m.seed, "result.json"),
                              {"task": m.task, "agent": agent_name, "seed": m.seed, "steps": suite.steps,
                               "headline": head, "omega_sweep": sweep or None, "config": config.to_dict(),
                               "population": pop_dir, **({"curve": curves[(m.task, m.seed)]} if curves else {})})


CURVE_FIELDS = ("success", "progress", "return")


def learning_curves(run_dir: str) -> dict:
    """{(task, seed): [{step, success, progress, return}, ...]} from a population's eval.csv: the headline setting
    evaluated while training; progress only on manipulation tasks."""
    out = {}
    for row in read_csv(os.path.join(run_dir, "eval.csv")):
        point = {"step": int(row["step"]), **{k: row[k] for k in CURVE_FIELDS if isinstance(row.get(k), float)}}
        out.setdefault((row["task"], int(row["seed"])), []).append(point)
    return out


def params_digest(pop) -> str:
    """A hash of every member's parameters (and optimiser state): part of a saved evaluation's key."""
    digest = hashlib.blake2b(digest_size=16)
    for leaf in jax.tree_util.tree_leaves(pop.agents):
        digest.update(np.asarray(leaf).tobytes())
    return digest.hexdigest()


EVAL_PACKAGES = ("ogbench", "mujoco", "gymnasium", "dm_control", "highway-env", "jax", "jaxlib", "numpy")


def eval_package_versions() -> dict:
    """The installed version of each package an evaluation's numbers depend on, the environments' and the arrays'
    (None where not installed): a saved evaluation made with other versions is evaluated afresh."""
    versions = {}
    for name in EVAL_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def saved_evaluation(pop, pop_dir, agent_name, config, envs, episodes, setting, log=print,
                     params: str | None = None, evaluated: list | None = None) -> list[dict]:
    """One evaluation setting (omega, K, selection), or None for the config's own, of a trained population: its rows
    as an earlier call saved them in pop_dir/eval/ (a bench killed during a long sweep loses no finished setting),
    else evaluated and saved there atomically. The saved rows are used only for the same library version, members,
    parameters (hashed), config, episodes, environments per member, setting and package versions
    (`EVAL_PACKAGES`); on one machine, evaluation is deterministic given these. Delete pop_dir/eval/ to evaluate
    afresh. `params`:
    `params_digest(pop)` when the caller has it (computed here otherwise); `evaluated`, a list the setting is
    appended to when it was evaluated here rather than read back."""
    key = json.loads(json.dumps({
        "dipole": __version__, "agent": agent_name, "members": [[m.task, m.seed] for m in pop.members],
        "params": params or params_digest(pop),
        "config": config.to_dict(), "episodes": episodes, "envs_per_member": envs_per_member(envs),
        "setting": list(setting) if setting is not None else "config", "packages": eval_package_versions()}))
    name = hashlib.blake2b(json.dumps(key, sort_keys=True).encode(), digest_size=8).hexdigest()
    path = os.path.join(pop_dir, "eval", f"{name}.json")
    w, k, sel = setting if setting is not None else (None, None, None)
    if os.path.exists(path):
        try:
            with open(path) as f:
                saved = json.load(f)
            if saved.get("key") == key:
                what = ("its config's setting" if setting is None else
                        setting_label(k or 1, sel, w))
                log(f"{agent_name}: {what} was evaluated by an earlier call; its rows are read from {path}")
                return saved["rows"]
        except (OSError, ValueError):
            pass  # unreadable: evaluated again and overwritten
    rows = evaluate_population(pop, episodes, omega=w, num_candidates=k, envs=envs, selection=sel)
    atomic_write_json(path, {"key": key, "rows": rows})
    if evaluated is not None:
        evaluated.append(setting)
    return rows


def swept_settings(suite, agent) -> list[tuple]:
    """The (omega, K, selection) settings a suite evaluates besides the headline: omega x K x selection for an agent
    with a greediness knob (DIPOLE, CFGRL); K x selection, omega None, for one that only picks among candidates
    (IFQL); none for the rest."""
    if agent.samples_with("omega"):
        return sweep_settings(suite.sweep_omegas, suite.sweep_candidates, _selections(suite, agent))
    if agent.samples_with("num_candidates"):
        return sweep_settings((None,), suite.sweep_candidates, _selections(suite, agent))
    return []


def _selections(suite, agent) -> tuple:
    """The suite's sweep selection rules this agent can use ('tilt' needs an agent that tilts candidates)."""
    return tuple(s for s in suite.sweep_selections if s == "argmax" or agent.samples_with("selection"))


def _finished_population(out_dir, agent_name, group, config, steps, data):
    """(the members `group` of a population of this agent and config trained to `steps` earlier, its folder) or
    None: a run whose result.json was deleted is evaluated again from its population, not retrained."""
    root = os.path.join(out_dir, "populations")
    for name in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        folder = os.path.join(root, name)
        files = list_checkpoints(folder) if name.startswith(agent_name + "-") else []
        if not files:
            continue
        try:
            if read_header(files[-1]).get("step") != steps:
                continue
            pop, header = load_population(files[-1])  # the newest file itself, checksum verified
        except (CheckpointError, UsageError):
            continue
        have = pop.members
        same_data = all(header.get("dataset_fingerprints", {}).get(t) == f
                        for t, f in zip(data.tasks, data.fingerprints))
        saved = _with_defaults(agent_name, header.get("config"))  # fields added since (e.g. selection) at defaults
        if (header.get("agent") == agent_name and saved == json.loads(json.dumps(config.to_dict()))
                and same_data and set(group) <= set(have)):
            idx = [have.index(m) for m in group]
            return Population(take(pop.agents, idx), group), folder
    return None


def _with_defaults(agent_name: str, saved: dict | None) -> dict | None:
    try:
        cls = get_agent(agent_name)[1]
        known = {f.name for f in dataclasses.fields(cls)}  # fields removed since are dropped, added ones defaulted
        return json.loads(json.dumps(cls.from_dict({k: v for k, v in saved.items() if k in known}).to_dict()))
    except (UsageError, TypeError, AttributeError):
        return saved


def _run_dir(out_dir, task, agent, seed, *rest):
    return os.path.join(out_dir, "runs", task, agent, f"seed{seed}", *rest)


def _mean_std(xs):
    xs = np.asarray(xs, float)
    return float(xs.mean()), float(xs.std())


def _score(suite: Suite, res: dict) -> float:
    return 100 * res["success"] if suite.metric == "success" else res["return"]


def _curves(suite: Suite, points: dict) -> dict:
    """Learning curves of one agent: {metric: {"steps", "category": [mean, std] per step, "tasks": {task: ...}}}
    with success and progress in %, the category the task average per seed (seeds with every task at that step)."""
    if not points:
        return {}
    out = {}
    for metric in CURVE_FIELDS:
        scale = 100.0 if metric in ("success", "progress") else 1.0
        value = {(t, s, step): scale * p[metric] for t, by_seed in points.items() for s, by_step in by_seed.items()
                 for step, p in by_step.items() if metric in p}
        if not value:
            continue
        steps = sorted({step for _, _, step in value})
        tasks = {t: [_mean_std(v) if (v := [x for (tt, _, st), x in value.items() if tt == t and st == step]) else None
                     for step in steps] for t in suite.tasks if t in points}
        category = []
        for step in steps:
            per_seed = [np.mean([value[(t, s, step)] for t in suite.tasks]) for s in {s for _, s, _ in value}
                        if all((t, s, step) in value for t in suite.tasks)]
            category.append(_mean_std(per_seed) if per_seed else None)
        out[metric] = {"steps": steps, "category": category, "tasks": tasks}
    return out


def aggregate(suite: Suite, agents: list[str], seeds: int, out_dir: str) -> dict:
    """Per task: mean ± std over seeds of success (%) (DMC: return). Per category: the 5-task average per seed, then mean ± std.

    Runs without a result.json (not yet run) are left out and counted in `missing`; a task's cell is None when none
    of its seeds finished, and the category is None unless every task of that seed finished.
    """
    results, seed_scores = {}, {}
    missing = 0
    for agent in agents:
        per_task, per_seed = {}, {}
        sweeps, subgoals, curve_points = {}, {}, {}
        for task in suite.tasks:
            scores, shares = [], []
            for seed in suite.seed_range(seeds):
                path = _run_dir(out_dir, task, agent, seed, "result.json")
                if not os.path.exists(path):
                    missing += 1
                    continue
                r = json.load(open(path))
                scores.append(_score(suite, r["headline"]))
                if r["headline"].get("progress") is not None:  # manipulation tasks: subgoals held at the end
                    shares.append(100 * r["headline"]["progress"])
                for point in r.get("curve") or []:
                    curve_points.setdefault(task, {}).setdefault(seed, {})[point["step"]] = point
                per_seed.setdefault(seed, []).append(scores[-1])
                for row in r["omega_sweep"] or []:
                    key = (row["omega"], row["num_candidates"], row_selection(row) or "")
                    sweeps.setdefault(key, {}).setdefault(seed, []).append(_score(suite, row))
            per_task[task] = _mean_std(scores) if scores else None
            if shares:
                subgoals[task] = _mean_std(shares)
        complete = [np.mean(v) for v in per_seed.values() if len(v) == len(suite.tasks)]
        category = _mean_std(complete) if complete else None
        sweep_rows = [{"omega": w, "num_candidates": k, "selection": sel or None,
                       "score": _mean_std([np.mean(v) for v in by_seed.values() if len(v) == len(suite.tasks)])}
                      for (w, k, sel), by_seed in sorted(sweeps.items(), key=lambda x: (x[0][1], x[0][2], x[0][0]))
                      if any(len(v) == len(suite.tasks) for v in by_seed.values())]
        results[agent] = {"tasks": per_task, "category": category, "omega_sweep": sweep_rows,
                          "subgoal_progress": subgoals, "curves": _curves(suite, curve_points)}
        seed_scores[agent] = per_seed
    summary = {"suite": suite.name, "category": suite.category, "seeds": seeds, "steps": suite.steps,
               "seed_list": list(suite.seed_range(seeds)),
               "preset": suite.preset, "eval_episodes": suite.eval_episodes, "agents": results, "missing": missing,
               "metric": suite.metric}
    tau = np.linspace(0.0, 100.0, PROFILE_POINTS) if suite.metric == "success" else None
    stats = rliable_stats(score_matrices(seed_scores, len(suite.tasks)), list(suite.tasks), tau=tau,
                          reps=suite.stats_reps)
    atomic_write_json(os.path.join(out_dir, "results.json"), summary)
    atomic_write_json(os.path.join(out_dir, "stats.json"), stats)
    md = markdown_tables(summary) + "\n\n" + stats_markdown(stats, unit_of(summary))
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(md + "\n")
    bench_plots(summary, out_dir)
    curve_plots(summary, os.path.join(out_dir, "curves.png"))
    stats_plot(stats, unit_of(summary), os.path.join(out_dir, "stats.png"))
    return summary
