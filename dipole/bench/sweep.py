"""Hyperparameter sweeps: one agent on one suite at every point of a grid over config fields, seeds at each point.

Each grid point is an ordinary bench folder (OUT/points/FIELD=VALUE,...; its own results.md/json/png, resumable,
refused if its overrides change) whose runs share the suite's data in OUT/data. Every point's population programs
go to the backend together, so on Ray they run side by side. The sweep table (OUT/sweep.md, .json, .png) gives the
category score of the agent's headline setting at each point, mean ± std over seeds.

Choosing settings is what development suites are for (results/protocol.md): a sweep refuses any other suite unless
`any_suite` is set.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os

from dipole.bench.backends import LocalBackend
from dipole.bench.report import _cell, unit_of
from dipole.bench.runner import (
    _own_bench_folder,
    aggregate,
    check_finished_runs,
    check_overrides,
    eval_workers_of,
    get_suite,
    plan_jobs,
    prepare_data,
    run_population_job,
)
from dipole.errors import RunFolderError, UsageError
from dipole.runfolder import claimed, remove_entries
from dipole.storage import atomic_write_json

SWEEP_FILES = ("sweep.json", "sweep.md", "sweep.png", "points")


def point_label(point: dict) -> str:
    """'beta=3,expectile=0.9': the folder name and table label of a grid point."""
    return ",".join(f"{k}={_show(v)}" for k, v in point.items())


def _show(v) -> str:
    if isinstance(v, (tuple, list)):
        return "-".join(_show(x) for x in v)
    return f"{v:g}" if isinstance(v, float) else str(v)


def grid_points(grid: dict[str, list]) -> list[dict]:
    """Every combination of the grid's values, the first field varying slowest."""
    for name, values in grid.items():
        if not values:
            raise UsageError(f"--grid {name}= has no values; give them as {name}=V1,V2,...")
        if len(set(map(_show, values))) != len(values):
            raise UsageError(f"--grid {name} repeats a value: {[_show(v) for v in values]}")
    return [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())]


def run_sweep(suite_name: str, agent: str, grid: dict[str, list], seeds: int, out_dir: str | None = None,
              backend=None, workers: int = 2, log=print, any_suite: bool = False, overwrite: bool = False,
              overrides: dict | None = None, max_population: int | None = None) -> dict:
    """Run (or resume) the sweep and write its table; -> the sweep summary (also OUT/sweep.json).

    `grid`: config field -> values (typed as the config types them); `overrides` apply at every point (a field may
    not be both swept and overridden).
    """
    suite = get_suite(suite_name)
    if suite.role != "development" and not any_suite:
        kind = f"a {suite.role} suite" if suite.role else "not a development suite"
        raise UsageError(f"--suite {suite_name} is {kind}: settings are chosen on development suites "
                         f"({', '.join(_development())}) and reported on test suites with the settings frozen "
                         "before (results/protocol.md); pass --any-suite to sweep it all the same")
    if not grid:
        raise UsageError("a sweep needs at least one --grid FIELD=V1,V2,...")
    overrides = dict(overrides or {})
    both = sorted(set(grid) & set(overrides))
    if both:
        raise UsageError(f"field(s) {both} are both swept (--grid) and fixed (--config.*); drop one of them")
    points = grid_points(grid)
    for point in points:  # an unknown field or a bad value is refused here, before any data or folder
        check_overrides(suite, [agent], {**overrides, **point})
    backend = backend or LocalBackend()
    out_dir = out_dir or os.path.join(backend.root, "sweep", f"{suite_name}-{agent}")
    folders = [os.path.join(out_dir, "points", point_label(p)) for p in points]
    with contextlib.ExitStack() as stack:
        stack.enter_context(claimed(out_dir))
        _own_sweep_folder(out_dir, suite_name, agent, overrides, overwrite, log)
        for folder in folders:
            stack.enter_context(claimed(folder))
        train_file = prepare_data(suite, os.path.join(out_dir, "data"), workers, log)
        jobs = []
        for point, folder in zip(points, folders):
            _own_bench_folder(folder, suite, {**overrides, **point}, False, log)
            check_finished_runs(suite, [agent], seeds, folder, {**overrides, **point})
            jobs += plan_jobs(suite, [agent], seeds, folder, train_file, {**overrides, **point}, max_population,
                              eval_workers_of(backend, workers))
        log(f"sweep: {len(points)} point(s) x {seeds} seed(s) of {agent} on {suite_name}; {len(jobs)} population "
            f"job(s) to run on the {backend.name} backend")
        backend.run(jobs, run_population_job, log)
        results = [aggregate(suite, [agent], seeds, folder) for folder in folders]
        return write_sweep(out_dir, suite_name, agent, grid, points, results, overrides)


def _development() -> list[str]:
    from dipole.bench.suites import SUITES

    return sorted(n for n, s in SUITES.items() if s.role == "development" and not n.startswith("smoke"))


def _own_sweep_folder(out_dir, suite_name, agent, overrides, overwrite, log):
    identity = {"suite": suite_name, "agent": agent, "overrides": {k: overrides[k] for k in sorted(overrides)}}
    path = os.path.join(out_dir, "sweep.json")
    present = [n for n in SWEEP_FILES if os.path.exists(os.path.join(out_dir, n))]
    if overwrite and present:
        remove_entries(out_dir, present)
        log(f"--overwrite: removed the earlier sweep in {out_dir} ({', '.join(present)}); data kept")
    elif os.path.exists(path):
        with open(path) as f:
            saved = json.load(f).get("identity", {})
        for key, value in json.loads(json.dumps(identity)).items():
            if key in saved and saved[key] != value:
                raise RunFolderError(f"{path} holds a sweep made with {key} = {saved[key]!r}, but this command asks "
                                     f"for {value!r}; pass --overwrite to start again, or choose another --out")
    elif os.path.exists(os.path.join(out_dir, "points")):
        raise RunFolderError(f"{out_dir} holds sweep points but no sweep.json saying how they were made; pass "
                             "--overwrite to start again, or choose another --out")
    atomic_write_json(path, {"identity": identity})


def write_sweep(out_dir, suite_name, agent, grid, points, results, overrides) -> dict:
    rows = []
    for point, summary in zip(points, results):
        res = summary["agents"][agent]
        rows.append({"point": point, "label": point_label(point), "score": res["category"],
                     "tasks": res["tasks"], "missing": summary["missing"]})
    first = results[0]
    summary = {"identity": {"suite": suite_name, "agent": agent,
                            "overrides": {k: overrides[k] for k in sorted(overrides)}},
               "suite": suite_name, "agent": agent, "category": first["category"], "metric": first["metric"],
               "seeds": first["seeds"], "steps": first["steps"], "eval_episodes": first["eval_episodes"],
               "grid": {k: list(v) for k, v in grid.items()}, "points": rows}
    atomic_write_json(os.path.join(out_dir, "sweep.json"), summary)
    with open(os.path.join(out_dir, "sweep.md"), "w") as f:
        f.write(sweep_table(summary) + "\n")
    sweep_plot(summary, os.path.join(out_dir, "sweep.png"))
    return summary


def sweep_table(summary: dict) -> str:
    fields = list(summary["grid"])
    scored = [r["score"][0] for r in summary["points"] if r["score"] is not None]
    best = max(scored) if scored else None
    spread = f"mean ± std over {summary['seeds']} seeds" if summary["seeds"] > 1 else "one seed, so no spread"
    fixed = ", ".join(f"{k}={_show(v)}" for k, v in summary["identity"]["overrides"].items())
    lines = [f"Sweep of `{summary['agent']}` on `{summary['suite']}`: {summary['category']} category average "
             f"{unit_of(summary)} at the agent's headline setting, {spread}; {summary['steps']} updates, "
             f"{summary['eval_episodes']} episodes per evaluation" + (f"; fixed: {fixed}" if fixed else "") +
             ". Best mean in bold.", "",
             "| " + " | ".join(fields) + " | score |", "|" + "---:|" * (len(fields) + 1)]
    for r in summary["points"]:
        bold = r["score"] is not None and r["score"][0] == best
        lines.append("| " + " | ".join(_show(r["point"][k]) for k in fields) + " | "
                     + _cell(r["score"], bold=bold, seeds=summary["seeds"]) + " |")
    missing = sum(r["missing"] for r in summary["points"])
    if missing:
        lines += ["", f"{missing} run(s) have not finished; — marks a point with no seed whose every task finished."]
    return "\n".join(lines)


def sweep_plot(summary: dict, path: str) -> None:
    """Score against the first grid field, one line per combination of the other fields."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fields = list(summary["grid"])
    xs = summary["grid"][fields[0]]
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in xs)
    pos = {_show(v): (v if numeric else i) for i, v in enumerate(xs)}
    lines: dict[str, list] = {}
    for r in summary["points"]:
        rest = point_label({k: r["point"][k] for k in fields[1:]})
        lines.setdefault(rest, []).append(r)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for rest, rows in lines.items():
        rows = [r for r in rows if r["score"] is not None]
        if rows:
            ax.errorbar([pos[_show(r["point"][fields[0]])] for r in rows], [r["score"][0] for r in rows],
                        yerr=[r["score"][1] for r in rows], marker="o", capsize=3, label=rest or None)
    if numeric and min(xs) > 0 and max(xs) / min(xs) >= 10:
        ax.set_xscale("log")
    if not numeric:
        ax.set_xticks(range(len(xs)))
        ax.set_xticklabels([_show(v) for v in xs])
    ax.set_xlabel(fields[0])
    ax.set_ylabel(f"category {unit_of(summary)}")
    ax.set_title(f"{summary['agent']} on {summary['suite']} ({summary['seeds']} seed(s), mean ± std)")
    if len(lines) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

