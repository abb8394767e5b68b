"""A run folder belongs to one run and one process.

- `claim(folder)`: an OS lock (flock on FOLDER/.lock) held until the process exits or `release`; the kernel drops
  it on any exit, kill -9 included. A second process is refused at once with `FOLDER is in use by pid N`.
  Re-entrant within a process (the quickstart holds its folder while `train` claims it again).
- `open_run_folder(folder, resume, overwrite)`: claims the folder, removes temporary files of killed writers, and
  refuses a folder that already holds a run's files unless the caller resumes it or overwrites it (overwriting
  deletes only the files a run writes, never anything else in the folder).
- `check_resume(what, saved, wanted)`: a resumed run must have been made with the same seed, data and every setting
  that changes results; the first difference is named with both values.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import shutil

from dipole.errors import RunFolderError
from dipole.storage import TMP_PREFIX, remove_stale_temp_files

LOCK_NAME = ".lock"
# What runs write into their folder (files, folders, globs); `--overwrite` removes exactly these.
RUN_FILES = ("config.json", "metrics.csv", "eval.csv", "episodes.csv", "summary.json", "result.json",
             "learning_curve.png", "finetune_curve.png", "omega_sweep.json", "omega_sweep.png", "eval-step[0-9]*-[0-9]*.*",
             "checkpoints", "members", "tb", "wandb")

_held: dict[str, list] = {}  # lock path -> [fd, depth]


def _lock_path(folder: str, name: str) -> str:
    return os.path.join(os.path.realpath(folder), name)


def claim(folder: str, name: str = LOCK_NAME) -> str:
    """Lock `folder` for this process (creating it); raise RunFolderError if another process holds it."""
    os.makedirs(folder, exist_ok=True)
    path = _lock_path(folder, name)
    if path in _held:
        _held[path][1] += 1
        return path
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            pid = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
        finally:
            os.close(fd)
        what = "" if name == LOCK_NAME else f" (writing {name.strip('.').removesuffix('.lock')})"
        raise RunFolderError(f"{folder} is in use by pid {pid}{what}; wait for that process to finish or stop it, or "
                             "use another folder") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _held[path] = [fd, 1]
    return path


def release(folder: str, name: str = LOCK_NAME) -> None:
    path = _lock_path(folder, name)
    entry = _held.get(path)
    if entry is None:
        return
    entry[1] -= 1
    if entry[1] == 0:
        del _held[path]
        os.ftruncate(entry[0], 0)
        os.close(entry[0])  # closing the descriptor releases the flock


@contextlib.contextmanager
def claimed(folder: str, name: str = LOCK_NAME):
    claim(folder, name)
    try:
        yield
    finally:
        release(folder, name)


@contextlib.contextmanager
def writing_data(folder: str, name: str, log=print):
    """Hold the dataset `name` in `folder` while it is generated (another process writing the same name is refused)
    and remove temporary files that killed writers left in `folder`."""
    with claimed(folder, f".{name}.lock"):
        remove_stale_temp_files(folder, log)
        yield


def run_files(folder: str) -> list[str]:
    """The run files present in `folder` (a folder holding nothing but temporary files does not count)."""
    found = []
    for pattern in RUN_FILES:
        for path in sorted(glob.glob(os.path.join(glob.escape(folder), pattern))):
            if os.path.isdir(path) and not [n for n in os.listdir(path) if not n.startswith(TMP_PREFIX)]:
                continue
            found.append(os.path.basename(path) + ("/" if os.path.isdir(path) else ""))
    return found


def remove_entries(folder: str, names: list[str]) -> None:
    """Delete these files and folders (names relative to `folder`; a trailing '/' is allowed)."""
    for name in names:
        path = os.path.join(folder, name.rstrip("/"))
        shutil.rmtree(path) if os.path.isdir(path) else os.unlink(path)


@contextlib.contextmanager
def open_run_folder(folder: str, resume: bool = False, overwrite: bool = False, log=print, what: str = "run",
                    delete: bool = True):
    """Hold `folder` for one run (see the module doc); yields while the lock is held. With delete=False an
    `overwrite` is only allowed here, not carried out: the command deletes the earlier run once its own inputs
    have been checked (a typo in --dataset must not cost the earlier run)."""
    if resume and overwrite:
        raise RunFolderError("--resume and --overwrite contradict each other: pass one of them")
    with claimed(folder):
        for sub in (folder, os.path.join(folder, "checkpoints")):
            remove_stale_temp_files(sub, log)
        present = run_files(folder)
        if present and overwrite and delete:
            remove_entries(folder, present)
            log(f"--overwrite: removed the earlier {what} in {folder} ({', '.join(present)})")
        elif present and not resume and not overwrite:
            shown = ", ".join(present[:5]) + (", ..." if len(present) > 5 else "")
            raise RunFolderError(f"{folder} already holds a {what} ({shown}); pass --resume to continue it, "
                                 "--overwrite to delete it and start again, or choose another folder")
        yield


def _show(v) -> str:
    return repr(v) if isinstance(v, str) else str(v)


def check_resume(path: str, saved: dict, wanted: dict, prefix: str = "--resume: ") -> None:
    """Refuse to resume the run saved at `path` if any field of `wanted` differs from `saved` (both dicts of
    field -> value; a field missing from `saved` was not recorded and is not checked)."""
    for field, value in wanted.items():
        if field not in saved:
            continue
        old = saved[field]
        same = (list(old) == list(value)) if isinstance(old, (list, tuple)) and isinstance(value, (list, tuple)) \
            else old == value
        if not same:
            raise RunFolderError(
                f"{prefix}{path} was made with {field} = {_show(old)}, but this command asks for {_show(value)}; "
                "resume with the same value, or start a new run (--overwrite, or another folder)")


def save_checkpoint(run_dir: str, step: int, keep: int, run_id: str, write) -> str:
    """`write(path)` the checkpoint of `step` (atomically), then delete this run's older ones beyond `keep`.

    A full disk raises NoSpaceError naming the file and the last good checkpoint, which is left intact."""
    from dipole.errors import NoSpaceError
    from dipole.storage import checkpoint_path, list_checkpoints, prune_checkpoints

    path = checkpoint_path(run_dir, step)
    before = [p for p in list_checkpoints(run_dir) if p != path]
    try:
        write(path)
    except NoSpaceError:
        last = f"last good checkpoint {before[-1]} is intact" if before else "no earlier checkpoint was written"
        raise NoSpaceError(28, f"no space left writing {path}; {last}; free disk space and rerun with --resume") \
            from None
    prune_checkpoints(run_dir, keep, run_id)
    return path


def new_run_id() -> str:
    import uuid

    return uuid.uuid4().hex[:16]


def check_run_id(run_dir: str, path: str, header: dict) -> None:
    """The checkpoint a resume continues must belong to the run this folder's config.json records."""
    import json

    try:
        with open(os.path.join(run_dir, "config.json")) as f:
            mine = json.load(f).get("run_id")
    except (OSError, ValueError):
        return
    theirs = header.get("run_id")
    if mine and theirs and mine != theirs:
        raise RunFolderError(f"--resume: {path} belongs to another run (run id {theirs}; {run_dir}/config.json "
                             f"records {mine}); remove it, or start a new run (--overwrite, or another folder)")
