"""One root key per run, split into named streams, so no two uses of randomness (and no two seeds) share a stream.

`stream_key(seed, "init")` initialises the networks, "data" draws offline batches, "val" validation batches, "act"
the actions taken while collecting online, "eval" the evaluation policy's keys; numpy seeds for environment resets
come from `stream_seed(seed, name, index...)`. Keys are `fold_in(PRNGKey(seed), stream id)`: adding a stream later
changes none of the others.
"""

from __future__ import annotations

import numpy as np

STREAMS = {"init": 1, "data": 2, "val": 3, "act": 4, "eval": 5, "env": 6}


def _stream_id(name: str) -> int:
    if name not in STREAMS:
        raise KeyError(f"unknown random stream {name!r}; streams: {sorted(STREAMS)}")
    return STREAMS[name]


def stream_key(seed: int, name: str):
    """The JAX key of stream `name` of run `seed`."""
    import jax

    root = jax.random.PRNGKey(seed if isinstance(seed, jax.Array) else int(seed))  # an array: inside a compiled create
    return jax.random.fold_in(root, _stream_id(name))


def stream_seed(seed: int, name: str, *index: int) -> int:
    """A 31-bit numpy/gymnasium seed of stream `name` of run `seed`, for item `index` (e.g. an episode number)."""
    return int(np.random.SeedSequence([int(seed), 1_000 + _stream_id(name), *map(int, index)]).generate_state(1)[0]
               & 0x7FFFFFFF)


def stream_rng(seed: int, name: str, *index: int) -> np.random.Generator:
    """A numpy Generator of stream `name` of run `seed` at `index` (e.g. the update step)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), 1_000 + _stream_id(name), *map(int, index)]))
