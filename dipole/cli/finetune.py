"""`dipole finetune`: keep training a checkpoint online while acting in its environment."""

import dataclasses
import os
from typing import Annotated, Optional

import tyro

from dipole.agents import get_agent
from dipole.cli.options import (
    Context,
    FinetuneSettingsArgs,
    Flat,
    LogSettingsArgs,
    checked,
    given,
    load_training_data,
)
from dipole.errors import UsageError
from dipole.runners.logging import LogSettings
from dipole.runners.online import FinetuneSettings


def command(ctx: Context) -> dict[str, type]:
    """This subcommand's option dataclass(es), their `--config.FIELD` options taken from `ctx`."""
    FinetuneConfig = ctx.finetune_config

    @dataclasses.dataclass
    class Finetune:
        """Offline-to-online: keep training a checkpoint while acting in its environment."""

        checkpoint: str
        """Offline checkpoint file or run folder."""
        env: Optional[str] = None
        """Environment; default: the checkpoint's."""
        dataset: Optional[str] = None
        """Offline data for the buffer; default: the file the checkpoint was trained on."""
        run_dir: Optional[str] = None
        """Output folder; default runs/ENV-AGENT-finetune-seedSEED."""
        resume: bool = False
        """Continue the fine-tune in --run-dir after a kill (refused if its seed, data or settings differ)."""
        overwrite: bool = False
        """Delete an earlier fine-tune in --run-dir and start again."""
        download: tyro.conf.Suppress[bool] = False
        clip_actions: bool = False
        """Clip out-of-range dataset actions to [-1, 1] (and report how many)."""
        settings: Annotated[FinetuneSettingsArgs, Flat] = dataclasses.field(default_factory=FinetuneSettingsArgs)
        logging: Annotated[LogSettingsArgs, Flat] = dataclasses.field(default_factory=LogSettingsArgs)
        config: FinetuneConfig = dataclasses.field(default_factory=FinetuneConfig)


    return {"finetune": Finetune}


def cmd_finetune(a):
    from dipole.agents import load_checkpoint
    from dipole.runfolder import open_run_folder
    from dipole.runners.logging import read_csv
    from dipole.runners.online import finetune
    from dipole.runners.plots import finetune_curve
    from dipole.runners.summary import finish_run
    from dipole.storage import read_header, resolve_checkpoint

    a.settings, a.logging = checked(FinetuneSettings, a.settings), checked(LogSettings, a.logging)
    path = resolve_checkpoint(a.checkpoint)
    header = read_header(path)
    config_cls = get_agent(header["agent"])[1]
    saved = config_cls.from_dict(header["config"])
    overrides = given(a.config)
    reshaped = sorted(k for k in set(overrides) & set(config_cls.SHAPE_FIELDS) if overrides[k] != getattr(saved, k))
    if reshaped:
        raise UsageError(f"--config.{reshaped[0]} changes the networks' shapes; the checkpoint cannot be fine-tuned "
                         "with it (train a new agent instead)")
    agent, header = load_checkpoint(path, saved.replace(**overrides))
    if "finetune" in header and not a.resume:
        print(f"note: {path} is itself a fine-tuned checkpoint; fine-tuning continues from it with a fresh buffer")
    env = a.env or header["env"]
    dataset_path = a.dataset
    if not dataset_path and header.get("dataset_path") and os.path.exists(header["dataset_path"]):
        dataset_path = header["dataset_path"]
    run_dir = a.run_dir or os.path.join("runs", f"{env}-{header['agent']}-finetune-seed{a.settings.seed}")
    with open_run_folder(run_dir, a.resume, a.overwrite, what="fine-tune", delete=False):
        dataset, _ = load_training_data(env, dataset_path, a.download, a.clip_actions)
        print(f"loaded {path} (agent {header['agent']}, {header['step']} updates); offline data {dataset.name} "
              f"({len(dataset)} transitions); run folder {run_dir}")
        agent, buffer = finetune(run_dir, env, dataset, agent, a.settings, resume=a.resume, source=path,
                                 logging=a.logging, overwrite=a.overwrite)
        finetune_curve(read_csv(os.path.join(run_dir, "eval.csv")), read_csv(os.path.join(run_dir, "episodes.csv")),
                       os.path.join(run_dir, "finetune_curve.png"),
                       title=f"{env}: {header['agent']} offline -> online")
        finish_run(run_dir, env, agent, extra={"mode": "finetune", "source": path, "online_steps": buffer.count,
                                               "buffer_transitions": len(buffer)}, plot=False)


