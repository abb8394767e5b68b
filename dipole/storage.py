"""Files the library writes: atomic writes, and checkpoints (one self-describing, checksummed file per save).

Checkpoint layout: MAGIC | 8-byte header length | JSON header | 8-byte payload length | msgpack payload |
sha256(all before). The header names what is stored (agent, config, shapes), so a reader needs nothing else.
This module knows nothing about agents: `dipole.agents` builds headers and restores agents from what it reads.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import json
import os
import struct
import sys
import tempfile

import numpy as np

from dipole.errors import DipoleError, NoSpaceError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _publish(tmp: str, path: str) -> None:
    """Give the temporary file ordinary permissions (mkstemp makes it 0600), then rename it into place."""
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)


TMP_PREFIX = ".tmp-"


def _tmp_prefix() -> str:
    """Temporary files carry their writer's pid, so a later process can tell a dead writer's leftovers."""
    return f"{TMP_PREFIX}{os.getpid()}-"


def is_no_space(e: BaseException) -> bool:
    """Whether `e` is a full disk (or a full quota)."""
    return isinstance(e, OSError) and _no_space(e)


def _no_space(e: OSError) -> bool:
    return e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


def _atomic_write(path: str, write, suffix: str) -> None:
    """Call write(file) on a temporary file in the same folder, fsync, then rename it to `path`: readers see the old
    file or the new one, never a part; the temporary file is removed if anything fails. A full disk raises
    NoSpaceError naming `path` (the old file at `path`, if any, is untouched)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=_tmp_prefix(), suffix=suffix)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        _publish(tmp, path)
    except BaseException as e:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and _no_space(e):
            raise NoSpaceError(errno.ENOSPC, f"no space left writing {path}") from None
        raise


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    try:  # a killed process not yet reaped by its parent (a zombie) writes nothing more
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def remove_stale_temp_files(folder: str, log=None) -> list[str]:
    """Delete the temporary files (`.tmp-PID-*`) in `folder` whose writer process no longer runs (a killed write),
    and say so through `log`. Files of live writers, and names without a pid, are left alone. -> removed paths."""
    removed = []
    if not os.path.isdir(folder):
        return removed
    for name in sorted(os.listdir(folder)):
        if not name.startswith(TMP_PREFIX):
            continue
        pid = name[len(TMP_PREFIX):].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid() or _pid_alive(int(pid)):
            continue
        path = os.path.join(folder, name)
        try:
            os.unlink(path)
            removed.append(path)
        except FileNotFoundError:
            pass
    if removed and log is not None:
        log(f"removed {len(removed)} temporary file(s) left by a killed process: "
            + ", ".join(os.path.basename(p) for p in removed) + f" (in {folder})")
    return removed


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
        err = CheckpointError(
            f"checkpoint {path} is corrupt or truncated ({why}); it cannot be loaded. "
            "Use an earlier checkpoint in the same folder (or pass the run folder, which picks the newest valid "
            "one), or retrain."
        )
        err.reason = why
        return err

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
            if hlen > os.fstat(f.fileno()).st_size:
                raise CheckpointError(f"checkpoint {path} is corrupt or truncated (its header length {hlen} exceeds "
                                      "the file)")
            return json.loads(f.read(hlen))
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except (ValueError, UnicodeDecodeError):
        raise CheckpointError(f"checkpoint {path} has an unreadable header") from None


def checkpoint_path(run_dir: str, step: int) -> str:
    return os.path.join(run_dir, "checkpoints", f"ckpt-{step:08d}.dpl")


def prune_checkpoints(run_dir: str, keep: int, run_id: str | None = None) -> None:
    """Delete all but the newest `keep` checkpoints of a run folder; with `run_id`, only among the checkpoints whose
    header carries that id (another run's files, and files whose header cannot be read, are left alone)."""
    files = list_checkpoints(run_dir)
    if run_id is not None:
        mine = []
        for f in files:
            try:
                if read_header(f).get("run_id") == run_id:
                    mine.append(f)
            except CheckpointError:
                pass
        files = mine
    for old in files[:-keep]:
        os.unlink(old)


def list_checkpoints(run_dir: str) -> list[str]:
    return sorted(glob.glob(os.path.join(run_dir, "checkpoints", CKPT_GLOB)))


def _warn(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def resolve_checkpoint(path: str, log=_warn) -> str:
    """A file is returned as is; for a run folder, the newest checkpoint that verifies. Newer files that do not
    verify are skipped, and each is named with the reason through `log`."""
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
            with open(c, "rb") as f:
                _unpack(c, f.read())
        except CheckpointError as e:
            errors.append((c, getattr(e, "reason", str(e))))
            continue
        for skipped, why in errors:
            log(f"warning: skipped {skipped}: corrupt or truncated ({why})")
        if errors:
            log(f"warning: using {c}, the newest checkpoint that verifies")
        return c
    raise CheckpointError(f"no valid checkpoint in {path}: " + "; ".join(f"{c} ({why})" for c, why in errors))
