"""Where a run's numbers go, for the offline and the online loop alike.

CSV files in the run folder always (`metrics.csv`, `eval.csv`, `episodes.csv`: one per stream); TensorBoard
(`pip install -e '.[tensorboard]'`, logs in RUN/tb) and Weights & Biases (`pip install -e '.[wandb]'`, offline mode
by default: files in RUN/wandb, `wandb sync` uploads them later) when asked.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from typing import Literal

from dipole.errors import MissingDependencyError, NoSpaceError, UsageError
from dipole.storage import is_no_space


class CSVLog:
    """Append-only CSV whose columns are fixed by its first row; on resume rows past `step` are dropped."""

    def __init__(self, path: str, resume_step: int | None = None):
        self.path = path
        self.fields = None
        if resume_step is not None and os.path.exists(path):
            with open(path) as f:
                rows = list(csv.DictReader(f))
            kept = [r for r in rows if int(float(r["step"])) <= resume_step]
            if rows:
                self.fields = list(rows[0].keys())
                with open(path, "w", newline="") as f:
                    w = csv.DictWriter(f, fieldnames=self.fields)
                    w.writeheader()
                    w.writerows(kept)
        elif os.path.exists(path):
            os.unlink(path)

    def write(self, row: dict):
        new = not os.path.exists(self.path)
        if self.fields is None:
            self.fields = list(row.keys())
        try:
            with open(self.path, "a", newline="") as f:
                w = csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore")
                if new:
                    w.writeheader()
                w.writerow(row)
                f.flush()
        except OSError as e:
            if is_no_space(e):
                raise NoSpaceError(e.errno, f"no space left writing {self.path}; the run's checkpoints are intact: "
                                            "free disk space and rerun with --resume") from None
            raise


def read_csv(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [{k: _num(v) for k, v in r.items()} for r in csv.DictReader(f)]


def _num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return v


@dataclass
class LogSettings:
    """Optional logging back-ends beside the CSV files."""

    tensorboard: bool = False
    """Also write TensorBoard event files to RUN/tb (needs tensorboardX)."""
    wandb: bool = False
    """Also log to Weights & Biases (needs wandb)."""
    wandb_project: str = "dipole"
    """W&B project name."""
    wandb_mode: Literal["offline", "online", "disabled"] = "offline"
    """W&B mode: 'offline' (files in RUN/wandb; `wandb sync` uploads them), 'online' (after `wandb login`), 'disabled'."""

    def __post_init__(self):
        if self.wandb_mode not in ("offline", "online", "disabled"):
            raise UsageError(f"wandb_mode must be 'offline', 'online' or 'disabled', got {self.wandb_mode!r}")


class RunLogger:
    """One object per run: `log(stream, row)` writes `row` (with its 'step') to STREAM.csv and the enabled back-ends.

    On resume (`resume_step`), rows past that step are dropped from every CSV so the files continue seamlessly.
    """

    def __init__(self, run_dir: str, streams=("metrics", "eval"), resume_step: int | None = None,
                 settings: LogSettings | None = None, run_name: str | None = None, config: dict | None = None):
        self.settings = settings or LogSettings()
        self.run_dir = run_dir
        self.csv = {s: CSVLog(os.path.join(run_dir, f"{s}.csv"), resume_step) for s in streams}
        self.tb = _tensorboard(run_dir) if self.settings.tensorboard else None
        self.wandb = _wandb(run_dir, self.settings, run_name or os.path.basename(os.path.abspath(run_dir)),
                            config) if self.settings.wandb else None

    def log(self, stream: str, row: dict, tag: str | None = None) -> None:
        """`tag` (e.g. a population member's 'TASK/seedS') goes into the TensorBoard / W&B names, not the CSV."""
        self.csv[stream].write(row)
        step = int(row["step"])
        prefix = f"{stream}/{tag}" if tag else stream
        scalars = {f"{prefix}/{k}": float(v) for k, v in row.items()
                   if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
        if self.tb is not None:
            for k, v in scalars.items():
                self.tb.add_scalar(k, v, step)
        if self.wandb is not None:
            self.wandb.log(scalars, step=step)

    def files(self) -> list[str]:
        """The CSV files that exist (a stream with no row has no file)."""
        return [os.path.basename(c.path) for c in self.csv.values() if os.path.exists(c.path)]

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()


def _tensorboard(run_dir):
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise MissingDependencyError("--tensorboard needs tensorboardX: pip install -e '.[tensorboard]'") from None
    return SummaryWriter(os.path.join(run_dir, "tb"))


def _wandb(run_dir, settings: LogSettings, name: str, config: dict | None):
    try:
        import wandb
    except ImportError:
        raise MissingDependencyError("--wandb needs wandb: pip install -e '.[wandb]'") from None
    # resume="allow" with a fixed id continues the same W&B run when the run folder is resumed
    run_id = "".join(c if c.isalnum() else "-" for c in os.path.abspath(run_dir))[-64:].strip("-")
    return wandb.init(project=settings.wandb_project, name=name, id=run_id, resume="allow", dir=run_dir,
                      mode=settings.wandb_mode, config=config or {})
