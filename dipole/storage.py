"""Files the library writes: atomic writes, and checkpoints (one self-describing, checksummed file per save).

Checkpoint layout: MAGIC | 8-byte header length | JSON header | 8-byte payload length | msgpack payload |
sha256(all before). The header names what is stored (agent, config, shapes), so a reader needs nothing else.
This module knows nothing about agents: `dipole.agents` builds headers and restores agents from what it reads.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import struct
import tempfile

import numpy as np

from dipole.errors import DipoleError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _publish(tmp: str, path: str) -> None:
    """Give the temporary file ordinary permissions (mkstemp makes it 0600), then rename it into place."""
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)


def _atomic_write(path: str, write, suffix: str) -> None:
    """Call write(file) on a temporary file in the same folder, fsync, then rename it to `path`: readers see the old
    file or the new one, never a part; the temporary file is removed if anything fails."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        _publish(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str, data: bytes) -> None:
    _atomic_write(path, lambda f: f.write(data), os.path.basename(path))


def atomic_write_npz(path: str, arrays: dict) -> None:
    _atomic_write(path, lambda f: np.savez(f, **arrays), ".npz")


def atomic_write_json(path: str, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n").encode())


def _jsonable(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, tuple):
        return list(x)
    raise TypeError(f"not JSON serialisable: {type(x)}")


MAGIC = b"DIPOLE-CKPT-1\n"
CKPT_GLOB = "ckpt-*.dpl"


class CheckpointError(DipoleError, RuntimeError):
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


def write_checkpoint(path: str, header: dict, state: dict, extra_arrays: dict | None = None) -> str:
    """Write a state dict (+ optional numpy arrays, e.g. a replay buffer) and its header atomically to `path`."""
    import flax.serialization

    payload = flax.serialization.msgpack_serialize(
        {"agent": state, "extra": {k: np.asarray(v) for k, v in (extra_arrays or {}).items()}})
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
    import flax.serialization

    try:
        state = flax.serialization.msgpack_restore(payload)
    except Exception as e:  # msgpack errors vary by version
        raise CheckpointError(f"checkpoint {path} payload cannot be decoded ({e}); use an earlier checkpoint.") from None
    return header, state


def read_header(path: str) -> dict:
    """Only the JSON header of a checkpoint file (no payload read, no checksum: use read_checkpoint to load)."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(MAGIC) + 8)
            if not head.startswith(MAGIC) or len(head) < len(MAGIC) + 8:
                raise CheckpointError(f"checkpoint {path} is not a dipole checkpoint (bad magic bytes or truncated)")
            (hlen,) = struct.unpack("<Q", head[len(MAGIC):])
            return json.loads(f.read(hlen))
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except (ValueError, UnicodeDecodeError):
        raise CheckpointError(f"checkpoint {path} has an unreadable header") from None


def checkpoint_path(run_dir: str, step: int) -> str:
    return os.path.join(run_dir, "checkpoints", f"ckpt-{step:08d}.dpl")


def prune_checkpoints(run_dir: str, keep: int) -> None:
    """Delete all but the newest `keep` checkpoints of a run folder."""
    for old in list_checkpoints(run_dir)[:-keep]:
        os.unlink(old)


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
