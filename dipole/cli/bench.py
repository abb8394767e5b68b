"""`dipole bench` and `dipole sweep`: suites of runs as populations, locally or on Ray, with tables and statistics."""

import dataclasses
import os
from typing import Annotated, Optional

import tyro

from dipole.cli.options import AgentName, BackendArgs, Context, Flat, given, make_backend, parse_grid


def command(ctx: Context) -> dict[str, type]:
    """This subcommand's option dataclass(es), their `--config.FIELD` options taken from `ctx`."""
    BenchConfig = ctx.bench_config
    SweepConfig = ctx.sweep_config

    @dataclasses.dataclass
    class Bench:
        """Run every (task, agent, seed) of a suite; resumable; writes results.md/json/png."""

        suite: str
        """Suite name: ogbench-mini, dmc-walker-mini, ogbench-cube-single-play, ..., smoke (see dipole/bench/suites.py)."""
        agents: str = "dipole"
        """Comma-separated agent names."""
        seeds: int = 2
        """Seeds per (task, agent)."""
        out: Optional[str] = None
        """Output folder; default runs/bench/SUITE."""
        workers: int = os.cpu_count() or 1
        """Processes for data generation and for stepping a population's evaluation environments (its members split
        among them; the results are the same for any number)."""
        report: bool = False
        """Only write the tables from the runs finished so far."""
        overwrite: bool = False
        """Delete the earlier runs and results in --out (not its data) and start again."""
        population: bool = True
        """Train each agent's tasks x seeds as one population (one compiled program); --no-population: run by run (each run its own program, a population of one)."""
        max_population: Optional[int] = None
        """At most this many members per population (default: all of an agent's unfinished runs)."""
        run: Annotated[BackendArgs, Flat] = dataclasses.field(default_factory=BackendArgs)
        config: BenchConfig = dataclasses.field(default_factory=BenchConfig)


    @dataclasses.dataclass
    class Sweep:
        """Train and evaluate one agent at every point of a grid over config fields (seeds at each point) on a
        development suite; writes sweep.md/json/png (mean ± std over seeds per point) and a bench folder per point."""

        suite: str
        """Suite name; a development suite (cube-single-mini, ogbench-mini, ...) unless --any-suite."""
        grid: Annotated[tuple[str, ...], tyro.conf.UseAppendAction]
        """FIELD=V1,V2,... (repeat for more fields: --grid beta=1,3,10 --grid expectile=0.7,0.9); values are read
        as --config.FIELD reads them."""
        agent: AgentName = "dipole"
        """Agent to sweep."""
        seeds: int = 2
        """Seeds per grid point."""
        out: Optional[str] = None
        """Output folder; default runs/sweep/SUITE-AGENT."""
        workers: int = os.cpu_count() or 1
        """Processes for data generation."""
        any_suite: bool = False
        """Allow a suite that is not a development suite (test suites are for reporting with settings frozen)."""
        overwrite: bool = False
        """Delete the earlier sweep in --out (not its data) and start again."""
        max_population: Optional[int] = None
        """At most this many members per population (default: all of a point's unfinished runs)."""
        run: Annotated[BackendArgs, Flat] = dataclasses.field(default_factory=BackendArgs)
        config: SweepConfig = dataclasses.field(default_factory=SweepConfig)


    return {"bench": Bench, "sweep": Sweep}


def cmd_bench(a):
    from dipole.bench.report import markdown_tables
    from dipole.bench.runner import run_bench

    agents = [x.strip() for x in a.agents.split(",") if x.strip()]
    backend = make_backend(a.run)
    summary = run_bench(a.suite, agents, a.seeds, out_dir=a.out, workers=a.workers, report_only=a.report,
                        overrides=given(a.config), overwrite=a.overwrite, population=a.population,
                        max_population=a.max_population, backend=backend)
    out = a.out or os.path.join(backend.root, "bench", a.suite)
    print(markdown_tables(summary))
    print(f"wrote {out}/results.md, results.json, results.png")


def cmd_sweep(a):
    from dipole.bench.sweep import run_sweep, sweep_table

    backend = make_backend(a.run)
    summary = run_sweep(a.suite, a.agent, parse_grid(a.agent, a.grid), a.seeds, out_dir=a.out, backend=backend,
                        workers=a.workers, any_suite=a.any_suite, overwrite=a.overwrite, overrides=given(a.config),
                        max_population=a.max_population)
    out = a.out or os.path.join(backend.root, "sweep", f"{a.suite}-{a.agent}")
    print(sweep_table(summary))
    print(f"wrote {out}/sweep.md, sweep.json, sweep.png (and a bench folder per point in {out}/points)")


