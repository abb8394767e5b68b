"""Small shared helpers: atomic file writes, a process pool with a progress bar."""

from __future__ import annotations

import json
import os
import tempfile

import numpy as np


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _publish(tmp: str, path: str) -> None:
    """Give the temporary file ordinary permissions (mkstemp makes it 0600), then rename it into place."""
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename: readers see the old file or the new one."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        _publish(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_npz(path: str, arrays: dict) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        _publish(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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


def parallel_map(fn, jobs: list, workers: int = 1, desc: str = "", unit: str = "it", progress: bool = True,
                 total: int | None = None, weight=None):
    """`[fn(job) for job in jobs]` in `workers` spawned processes (in order), with a progress bar.

    `total` and `weight(result)` let the bar count something finer than jobs (e.g. episodes in a batch).
    """
    import multiprocessing as mp

    from tqdm import tqdm

    workers = max(1, min(int(workers), len(jobs)))
    pool = mp.get_context("spawn").Pool(workers) if workers > 1 else None
    out = []
    bar = tqdm(total=len(jobs) if total is None else total, desc=desc, unit=unit, disable=not progress)
    try:
        for result in (pool.imap(fn, jobs) if pool else map(fn, jobs)):
            out.append(result)
            bar.update(weight(result) if weight else 1)
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
    return out
