"""`dipole train`: one run, or seeds as one population, through the one offline loop."""

import dataclasses
import os
from typing import Annotated, Optional

from dipole.agents import get_agent
from dipole.cli.options import (
    AgentName,
    Context,
    Flat,
    LogSettingsArgs,
    PresetName,
    TrainSettingsArgs,
    checked,
    load_training_data,
    parse_seeds,
)
from dipole.runners.logging import LogSettings
from dipole.runners.offline import TrainSettings


def command(ctx: Context) -> dict[str, type]:
    """This subcommand's option dataclass(es), their `--config.FIELD` options taken from `ctx`."""
    TrainConfig = ctx.train_config

    @dataclasses.dataclass
    class Train:
        """Train an agent offline (OGBench single-task name, dmc-DOMAIN-TASK, or highway-fast-v0[:weights]).

        The agent's config is its defaults <- --preset <- settings fixed in advance for --env <- --config.FIELD.
        Defaults shown below are those that apply to the --agent, --preset and --env on this command line.
        """

        env: str
        """Environment / task, e.g. cube-single-play-singletask-task2-v0."""
        dataset: Optional[str] = None
        """Path to NAME.npz (NAME-val.npz beside it for OGBench); default: ~/.ogbench/data."""
        agent: AgentName = "dipole"
        """Agent to train."""
        preset: PresetName = "paper"
        """Network sizes: paper (4x512, a GPU job at 1M steps), small (3x128, for CPUs), tiny (2x32, tests)."""
        run_dir: Optional[str] = None
        """Output folder; default runs/ENV-AGENT-seedSEED."""
        resume: bool = False
        """Continue from the newest checkpoint in --run-dir (refused if its seed, data or config differ)."""
        overwrite: bool = False
        """Delete an earlier run in --run-dir (only the files a run writes) and start again."""
        download: bool = False
        """Let OGBench download missing dataset files (needs the internet)."""
        clip_actions: bool = False
        """Clip out-of-range dataset actions to [-1, 1] (and report how many)."""
        seeds: Optional[str] = None
        """Train these seeds as one population, one compiled program (e.g. 0,1,2,3); --seed is then not used."""
        settings: Annotated[TrainSettingsArgs, Flat] = dataclasses.field(default_factory=TrainSettingsArgs)
        logging: Annotated[LogSettingsArgs, Flat] = dataclasses.field(default_factory=LogSettingsArgs)
        config: TrainConfig = dataclasses.field(default_factory=TrainConfig)


    return {"train": Train}


def cmd_train(a):
    from dipole.runfolder import open_run_folder
    from dipole.runners.loop import train
    from dipole.runners.summary import finish_population, finish_run

    a.settings, a.logging = checked(TrainSettings, a.settings), checked(LogSettings, a.logging)
    config = get_agent(a.agent)[1]().replace(**dataclasses.asdict(a.config))
    seeds = parse_seeds(a.seeds) if a.seeds is not None else None
    tag = f"seed{a.settings.seed}" if seeds is None else f"seeds{'-'.join(map(str, seeds))}"
    run_dir = a.run_dir or os.path.join("runs", f"{a.env}-{a.agent}-{tag}")
    # before the data is read: a busy or used folder is refused at once (an --overwrite happens in train, once the
    # data has loaded)
    with open_run_folder(run_dir, a.resume, a.overwrite, delete=False):
        dataset, val = load_training_data(a.env, a.dataset, a.download, a.clip_actions)
        print(f"dataset: {dataset.summary()}"
              + (f"; validation split {len(val)} transitions" if val is not None else ""))
        each = "" if seeds is None else f"seeds {seeds} as one population, "
        print(f"run folder: {run_dir}; agent {a.agent}, preset {a.preset}, {each}{a.settings.steps} updates"
              f"{'' if seeds is None else ' each'}, evaluation every {a.settings.eval_every or 'never'} updates and "
              f"at the end ({a.settings.eval_episodes} episodes{'' if seeds is None else ' per member'})")
        trained = train(run_dir, a.env, dataset, a.agent, config, a.settings, resume=a.resume, val_dataset=val,
                        logging=a.logging, overwrite=a.overwrite, seeds=seeds)
        if seeds is None:
            finish_run(run_dir, a.env, trained)
        else:
            finish_population(run_dir, a.env, a.agent, config, trained, dataset, val)
