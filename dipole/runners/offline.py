"""Offline training settings (`TrainSettings`) and the helpers the loop (`dipole.runners.loop`) prints with; and
`train_chunk`, one agent's compiled chunk of updates, which benchmarks time against a population's.

Batches are drawn inside a compiled chunk from a key derived from (seed, agent step), so a run resumed from a
checkpoint at step k continues exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp

from dipole.agents.presets import SIZE_PRESETS
from dipole.runners.intervals import check_intervals

CPU_PAPER_WARN_STEPS = 100_000


@dataclasses.dataclass
class TrainSettings:
    """How long to train and how often to log, evaluate and save (everything that is not the agent's config)."""

    steps: int = 1_000_000
    """Gradient updates in all."""
    seed: int = 0
    """Seed of the agent's initialisation, its batches and the evaluation episodes."""
    log_every: int = 1000
    """Updates between rows of metrics.csv; also the number of updates compiled into one call."""
    eval_every: int = 100_000
    """Updates between evaluations (0: none before the end); the final step is always evaluated."""
    eval_episodes: int = 50
    """Episodes per evaluation (0: no evaluation at all)."""
    save_every: int = 100_000
    """Updates between checkpoints; the final step is always saved."""
    keep_checkpoints: int = 2
    """Checkpoints kept in RUN/checkpoints (older ones are deleted)."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self):
        check_intervals(self, "steps", {"steps": 1, "log_every": 1, "eval_every": 0, "save_every": 1,
                                        "eval_episodes": 0, "keep_checkpoints": 1}, ("eval_every", "save_every"))


@partial(jax.jit, static_argnames=("num_updates", "batch_size"))
def train_chunk(agent, data: dict, data_key, num_updates: int, batch_size: int):
    """`num_updates` updates in one compiled call; returns (agent, metrics averaged over the chunk)."""
    size = data["observations"].shape[0]

    def one(agent, _):
        key = jax.random.fold_in(data_key, agent.step)
        idx = jax.random.randint(key, (batch_size,), 0, size)
        batch = jax.tree_util.tree_map(lambda x: x[idx], data)
        return agent.update(batch)

    agent, infos = jax.lax.scan(one, agent, None, length=num_updates)
    return agent, jax.tree_util.tree_map(jnp.mean, infos)


def network_label(config) -> str:
    """'4x512' for (512, 512, 512, 512); the preset's name when the sizes are a preset's."""
    dims = config.actor_hidden_dims
    shape = f"{len(dims)}x{dims[0]}" if dims and len(set(dims)) == 1 else "x".join(map(str, dims))
    preset = next((name for name, o in SIZE_PRESETS.items()
                   if tuple(o.get("actor_hidden_dims", (512,) * 4)) == tuple(dims)
                   and tuple(o.get("value_hidden_dims", (512,) * 4)) == tuple(config.value_hidden_dims)), None)
    return f"{shape} (preset {preset})" if preset else shape


def cpu_warning(config, steps: int) -> str | None:
    """A warning for paper-size networks trained for long on a CPU (hours to days), naming the small preset."""
    paper = max(config.actor_hidden_dims, default=0) >= 512  # the papers' 512-wide MLPs (3 or 4 layers)
    if jax.default_backend() == "cpu" and paper and steps > CPU_PAPER_WARN_STEPS:
        depth = len(config.actor_hidden_dims)
        return (f"warning: {steps} updates with the paper's {depth}x512 networks on a CPU take many hours; "
                "use --preset small (3x128) for CPU runs, or a GPU")
    return None


def fmt_seconds(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h"


def selection_note(row: dict) -> str:
    """', tilt' / ', argmax' after the K of an evaluation line (nothing at K = 1)."""
    return f", {row['selection']}" if row.get("selection") else ""
