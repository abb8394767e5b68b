"""Devices and memory of a training program: how members are split over devices, how much memory a run or a
population needs, and the refusal of one that will not fit, before anything is compiled.

Memory: the shared arrays once per device, plus per member its state (parameters, optimiser moments, target
networks) and the working memory of one update (activations of every network for one batch); see
`population_memory`.
"""

from __future__ import annotations

import math
import os

import jax
import jax.numpy as jnp
import numpy as np

from dipole.errors import UsageError

MEMORY_HEADROOM = 0.9  # a population may use at most this share of the device memory that is free


def device_memory_free(device=None) -> int:
    """Bytes free on `device` (default: JAX's first device): the accelerator's limit minus what is in use, or the
    host's available memory for CPU devices."""
    device = device or jax.devices()[0]
    stats = device.memory_stats() if device.platform != "cpu" else None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def _dense_widths(params) -> int:
    """Sum of the output widths of every dense layer in a parameter tree (ensemble copies counted)."""
    total = 0
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        if getattr(path[-1], "key", None) == "kernel" and leaf.ndim >= 2:
            total += int(np.prod(leaf.shape)) // int(leaf.shape[-2])
    return total


def population_memory(agent, members: int, data_bytes: int, batch_size: int, devices: int = 1,
                      val_bytes: int = 0) -> dict:
    """Bytes a population needs: the data once per device, and per member its state plus one update's working
    memory. `agent` is one member (unstacked).

    Working memory is estimated as batch x 4 bytes x the widths of every dense layer x (passes per update) x 4
    (activations kept for the gradient, their gradients, pre-activations, normalisation): the update runs each
    network on the batch and on next observations, and flow agents run their velocity network `flow_steps` times
    when they distil or sample inside the loss.
    """
    state = sum(int(x.nbytes) for x in jax.tree_util.tree_leaves(agent))
    widths = _dense_widths(agent.params)
    passes = 2 + (int(getattr(agent.config, "flow_steps", 1)) if agent.config.agent in ("fql",) else 0)
    work = batch_size * 4 * widths * passes * 4
    per_member = state + work
    total = (data_bytes + val_bytes) * devices + per_member * members
    per_device = data_bytes + val_bytes + per_member * math.ceil(members / devices)
    return {"data_bytes": int(data_bytes + val_bytes), "devices": int(devices), "state_bytes": int(state),
            "work_bytes": int(work), "per_member_bytes": int(per_member), "members": int(members),
            "total_bytes": int(total), "per_device_bytes": int(per_device)}


def format_bytes(b: float) -> str:
    """Bytes as GiB from a quarter GiB up, else MiB."""
    return f"{b / 2**30:.2f} GiB" if b >= 2**28 else f"{b / 2**20:.1f} MiB"


def check_population_fits(memory: dict, free: int | None = None) -> None:
    """Refuse, before compiling, a population whose estimated memory on one device (the data, and that device's
    share of the members) exceeds 90% of what the device has free."""
    free = device_memory_free() if free is None else free
    devices = memory["devices"]
    if memory["per_device_bytes"] > MEMORY_HEADROOM * free:
        fit = int((MEMORY_HEADROOM * free - memory["data_bytes"]) // memory["per_member_bytes"]) * devices
        where = "the device has" if devices == 1 else f"each of the {devices} devices has"
        what = "a run" if memory["members"] == 1 else f"a population of {memory['members']} members"
        raise UsageError(
            f"{what} needs about {format_bytes(memory['per_device_bytes'])} per device "
            f"(data {format_bytes(memory['data_bytes'])} + {math.ceil(memory['members'] / devices)} x "
            f"{format_bytes(memory['per_member_bytes'])} per member) but {where} {format_bytes(free)} free; "
            + (f"train at most {fit} members at a time (fewer seeds or tasks; `dipole bench --max-population "
               f"{fit}`) or smaller networks (--preset small)" if fit >= 1 else
               "not even one member fits beside the data: use smaller networks (--preset small)" if
               memory["data_bytes"] < MEMORY_HEADROOM * free else
               "the data alone does not fit: use a smaller dataset or smaller networks (--preset small)"))


def use_cpu_cores() -> None:
    """Give JAX one CPU device per core (unless the user chose a number), so a population trained on the CPU is
    split over the cores; a single run uses the first device as before. Only possible before JAX starts; the CLI
    calls it first thing. From Python: `jax.config.update("jax_num_cpu_devices", os.cpu_count())` before any JAX
    work, or set JAX_NUM_CPU_DEVICES."""
    if "JAX_NUM_CPU_DEVICES" in os.environ or "host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return
    try:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        jax.config.update("jax_num_cpu_devices", cores or 1)
    except RuntimeError:  # JAX's backends already started (e.g. main() called twice in one process)
        pass


def member_mesh(num_members: int):
    """(mesh or None, padded size): members are split over min(#devices, #members) devices of the default backend,
    padded to a multiple of that number."""
    devices = jax.devices()
    n = min(len(devices), num_members)
    if n <= 1:
        return None, num_members
    return jax.sharding.Mesh(np.array(devices[:n]), ("members",)), math.ceil(num_members / n) * n


def place_members(tree, mesh, split: bool):
    """`tree` on the mesh's devices: split along its leading (member) axis, or replicated; on the default device
    when there is no mesh."""
    if mesh is None:
        return jax.device_put(tree)
    spec = jax.sharding.PartitionSpec("members") if split else jax.sharding.PartitionSpec()
    return jax.device_put(tree, jax.sharding.NamedSharding(mesh, spec))


def pad_members(tree, padded: int):
    """`tree`'s leading (member) axis padded to `padded` with copies of its first member."""
    n = jax.tree_util.tree_leaves(tree)[0].shape[0]
    if padded == n:
        return tree
    return jax.tree_util.tree_map(lambda x: jnp.concatenate([x, jnp.repeat(x[:1], padded - n, axis=0)]), tree)
