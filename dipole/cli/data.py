"""`dipole data` and `dipole quickstart`: benchmark datasets made locally, and the small end-to-end run."""

import dataclasses
import json
import os
from typing import Literal, Optional

import tyro

from dipole.cli.options import DEFAULT_OMEGAS, Context
from dipole.errors import UsageError


def command(ctx: Context) -> dict[str, type]:
    """This subcommand's option dataclass(es), their `--config.FIELD` options taken from `ctx`."""

    @dataclasses.dataclass
    class Quickstart:
        """Small end-to-end run on pointmaze: OGBench-protocol data, DIPOLE (small networks), omega sweep, plots."""

        run_dir: str = "runs/quickstart"
        """Output folder."""
        episodes: int = 200
        """Training episodes of 1001 steps to generate."""
        steps: int = 40_000
        """Gradient updates."""
        lr: float = 1e-3
        """Adam learning rate (1e-3 for this short CPU budget)."""
        eval_episodes: int = 10
        """Episodes per evaluation."""
        omega: tuple[float, ...] = DEFAULT_OMEGAS
        """Greediness values of the sweep."""
        num_candidates: tuple[int, ...] = (1, 32)
        """Rejection-sampling K values of the sweep."""
        workers: int = os.cpu_count() or 1
        """Processes for data generation."""
        seed: int = 0
        """Seed of data, training and evaluation."""
        resume: bool = False
        """Continue from the newest checkpoint in --run-dir."""
        overwrite: bool = False
        """Delete an earlier run in --run-dir and start again."""


    @dataclasses.dataclass
    class Data:
        """Make benchmark datasets locally (OGBench's file layout and protocol; DMC exploration; highway drivers)."""

        source: tyro.conf.Positional[Literal["ogbench", "dmc", "highway"]]
        """Which benchmark."""
        name: tyro.conf.Positional[Optional[str]] = None
        """ogbench: a dataset such as cube-double-play-v0; dmc: walker, cheetah or quadruped; highway: highway-fast-v0."""
        episodes: Optional[int] = None
        """ogbench: training episodes (default: the published count); highway: driver episodes (default 500)."""
        steps: int = 1_000_000
        """dmc: transitions to collect."""
        explorers: int = 8
        """dmc: independent explorers (fixes the output)."""
        workers: int = os.cpu_count() or 1
        """Processes."""
        seed: int = 0
        """Seed of the data."""
        out: Optional[str] = None
        """Output folder; default ~/.ogbench/data (ogbench), ~/.dipole/dmc (dmc), ~/.dipole/highway (highway)."""


    return {"quickstart": Quickstart, "data": Data}


def cmd_data(a):
    if a.source != "highway" and not a.name:
        raise UsageError(f"`dipole data {a.source}` needs a NAME (see `dipole data --help`)")
    if a.source == "highway":
        from dipole.datagen.highway import DEFAULT_DATA_EPISODES, generate_highway

        info = generate_highway(a.name or "highway-fast-v0", episodes=a.episodes or DEFAULT_DATA_EPISODES,
                                workers=a.workers, seed=a.seed, out_dir=a.out or "~/.dipole/highway")
    elif a.source == "dmc":
        from dipole.datagen.dmc import generate_dmc

        info = generate_dmc(a.name, steps=a.steps, explorers=a.explorers, workers=a.workers, seed=a.seed,
                            out_dir=a.out or "~/.dipole/dmc")
    else:
        from dipole.datagen.ogbench import generate_ogbench

        info = generate_ogbench(a.name, episodes=a.episodes, workers=a.workers, seed=a.seed,
                                out_dir=a.out or "~/.ogbench/data")
    print(json.dumps(info, indent=2))


def cmd_quickstart(a):
    from dipole.bench.quickstart import quickstart
    from dipole.runners.summary import finish_run

    quickstart(run_dir=a.run_dir, episodes=a.episodes, steps=a.steps, lr=a.lr, eval_episodes=a.eval_episodes,
               omegas=a.omega, candidates=a.num_candidates, workers=a.workers, seed=a.seed, resume=a.resume,
               overwrite=a.overwrite,
               finish=lambda run_dir, env, agent, rows, extra: finish_run(run_dir, env, agent, rows, extra,
                                                                          sweep_file=os.path.join(run_dir,
                                                                                                  "omega_sweep")))


