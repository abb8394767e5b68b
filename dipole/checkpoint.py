"""Checkpoints: one self-describing file per save, written atomically and verified by SHA-256 on load.

File layout: MAGIC | 8-byte header length | JSON header | 8-byte payload length | msgpack payload | sha256(all before).
The header names the agent, its config and the shapes needed to rebuild it, so `load_agent(path)` needs nothing else.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import struct

import flax.serialization
import jax
import numpy as np

from dipole.utils import atomic_write_bytes

MAGIC = b"DIPOLE-CKPT-1\n"
CKPT_GLOB = "ckpt-*.dpl"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read; the message says which file and what to do."""


def _pack(header: dict, payload: bytes) -> bytes:
    h = json.dumps(header, sort_keys=True).encode()
    body = MAGIC + struct.pack("<Q", len(h)) + h + struct.pack("<Q", len(payload)) + payload
    return body + hashlib.sha256(body).digest()


def _unpack(path: str, data: bytes):
    def corrupt(why):
        return CheckpointError(
            f"checkpoint {path} is corrupt or truncated ({why}); it cannot be loaded. "
            "Use an earlier checkpoint in the same folder (or pass the run folder, which picks the newest valid "
            "one), or retrain."
        )

    if not data.startswith(MAGIC):
        raise corrupt("not a dipole checkpoint: bad magic bytes")
    pos = len(MAGIC)
    if len(data) < pos + 8:
        raise corrupt(f"file ends after {len(data)} bytes, inside the header")
    (hlen,) = struct.unpack("<Q", data[pos : pos + 8])
    pos += 8
    if len(data) < pos + hlen + 8:
        raise corrupt(f"file ends after {len(data)} bytes, inside the header")
    header_bytes = data[pos : pos + hlen]
    pos += hlen
    (plen,) = struct.unpack("<Q", data[pos : pos + 8])
    pos += 8
    expected = pos + plen + 32
    if len(data) != expected:
        raise corrupt(f"expected {expected} bytes, found {len(data)}")
    if hashlib.sha256(data[: pos + plen]).digest() != data[pos + plen :]:
        raise corrupt("SHA-256 checksum mismatch")
    return json.loads(header_bytes), data[pos : pos + plen]


def save_checkpoint(path: str, agent, header: dict, extra_arrays: dict | None = None) -> str:
    """Write agent state (+ optional numpy arrays, e.g. a replay buffer) atomically to `path`."""
    state = {
        "agent": jax.device_get(flax.serialization.to_state_dict(agent)),
        "extra": {k: np.asarray(v) for k, v in (extra_arrays or {}).items()},
    }
    payload = flax.serialization.msgpack_serialize(state)
    atomic_write_bytes(path, _pack(header, payload))
    return path


def read_checkpoint(path: str):
    """-> (header, raw state dict with 'agent' and 'extra')."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    header, payload = _unpack(path, data)
    try:
        state = flax.serialization.msgpack_restore(payload)
    except Exception as e:  # msgpack errors vary by version
        raise CheckpointError(f"checkpoint {path} payload cannot be decoded ({e}); use an earlier checkpoint.") from None
    return header, state


def list_checkpoints(run_dir: str) -> list[str]:
    return sorted(glob.glob(os.path.join(run_dir, "checkpoints", CKPT_GLOB)))


def resolve_checkpoint(path: str) -> str:
    """A file is returned as is; for a run folder, the newest checkpoint that verifies."""
    if os.path.isfile(path):
        return path
    if not os.path.isdir(path):
        raise CheckpointError(f"{path} is neither a checkpoint file nor a run folder")
    candidates = list_checkpoints(path)
    if not candidates:
        raise CheckpointError(f"run folder {path} has no checkpoints in {os.path.join(path, 'checkpoints')}")
    errors = []
    for c in reversed(candidates):
        try:
            _unpack(c, open(c, "rb").read())
            return c
        except CheckpointError as e:
            errors.append(str(e))
    raise CheckpointError(f"no valid checkpoint in {path}: " + " | ".join(errors))


def restore_agent(header: dict, state: dict):
    """Rebuild the agent from a checkpoint header and state dict."""
    from dipole.agents import get_agent

    agent_cls, config_cls = get_agent(header["agent"])
    config = config_cls.from_dict(header["config"])
    template = agent_cls.create(
        0, np.zeros((1, header["obs_dim"]), np.float32), np.zeros((1, header["action_dim"]), np.float32), config
    )
    try:
        return flax.serialization.from_state_dict(template, state["agent"])
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"checkpoint does not match agent '{header['agent']}' with its saved config: {e}") from None


def load_agent(path: str):
    """Load an agent from a checkpoint file or a run folder -> (agent, header)."""
    path = resolve_checkpoint(path)
    header, state = read_checkpoint(path)
    return restore_agent(header, state), header
