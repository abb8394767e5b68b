"""OGBench datasets through OGBench's own loader (`ogbench.make_env_and_datasets`), which relabels rewards
(success - 1) and masks for single-task names. Local generation in OGBench's format: `dipole.datagen.ogbench`.

Before OGBench's loader runs, both files (NAME.npz and NAME-val.npz) are checked here, so a bad file is refused
in one line naming the file, the field and the fix rather than by an IndexError deep inside OGBench:

* the pair: when `NAME.manifest.json` lies beside the files (written last by `dipole data ogbench`), generation must
  have finished and both files must have the size and SHA-256 it records (a file from another run is refused);
* the name: the dataset the files hold (from the manifest, else from an OGBench-style file name) must be the one
  the environment name implies (pointmaze-large data for a pointmaze-large task), even when shapes happen to match;
* the contents: required fields, one row per step in every field, at least one row, terminals 0/1 ending in 1,
  finite values, and per-row sizes matching the environment (observations, actions, qpos, qvel, button_states);
  `rewards`, `masks` or `next_observations` in the file are refused, since OGBench recomputes them and would ignore
  them silently.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np

from dipole.data.dataset import (
    Dataset,
    DatasetError,
    check_finite,
    check_same_rows,
    read_npz,
)
from dipole.envs.ogbench import (
    dataset_name_of_file,
    make_ogbench_env,
    parse_singletask_name,
)
from dipole.errors import MissingFileError

DEFAULT_DATASET_DIR = "~/.ogbench/data"
MANIFEST_FORMAT = 1
MANIFEST_SUFFIX = ".manifest.json"
GENERATOR = "dipole data ogbench"

OGBENCH_FIELDS = ("observations", "actions", "terminals", "qpos", "qvel")
DERIVED_FIELDS = ("rewards", "masks", "next_observations")  # OGBench computes these itself from the fields above


def dataset_files(name: str, dataset_path: str | None = None, dataset_dir: str = DEFAULT_DATASET_DIR):
    """(train file, val file) that OGBench will read for this single-task name."""
    if dataset_path is not None:
        return dataset_path, dataset_path.replace(".npz", "-val.npz")  # OGBench's own rule
    base = parse_singletask_name(name, check=False)["dataset"]
    d = os.path.expanduser(dataset_dir)
    return os.path.join(d, f"{base}.npz"), os.path.join(d, f"{base}-val.npz")


def manifest_path(train_file: str) -> str:
    """NAME.manifest.json beside NAME.npz."""
    return train_file.removesuffix(".npz") + MANIFEST_SUFFIX


def file_digest(path: str) -> dict:
    """{'bytes': size, 'sha256': hex digest of the file's bytes}."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):  # hashlib.file_digest needs Python 3.11
            digest.update(block)
        size = os.fstat(f.fileno()).st_size
    digest = digest.hexdigest()
    return {"bytes": size, "sha256": digest}


def _remake(dataset: str, folder: str | None = None, manifest: dict | None = None) -> str:
    """The `dipole data ogbench` command that writes `dataset` into `folder` (with the manifest's episodes and seed)."""
    cmd = f"dipole data ogbench {dataset}"
    episodes = (manifest or {}).get("episodes")
    if isinstance(episodes, dict) and isinstance(episodes.get("train"), int):
        cmd += f" --episodes {episodes['train']}"
    if isinstance((manifest or {}).get("seed"), int) and manifest["seed"] != 0:
        cmd += f" --seed {manifest['seed']}"
    if folder is not None and os.path.abspath(folder) != os.path.abspath(os.path.expanduser(DEFAULT_DATASET_DIR)):
        cmd += f" --out {folder}"
    return cmd


def generated_pair_complete(train_file: str) -> bool:
    """True when `dipole data ogbench` finished writing this pair (its manifest beside it is marked complete); a
    caller that generates data on demand should regenerate when this is False, not only when the file is missing."""
    try:
        with open(manifest_path(train_file)) as f:
            return json.load(f).get("complete") is True
    except (OSError, ValueError, AttributeError):
        return False


def check_manifest(train_file: str, val_file: str, expected_dataset: str) -> dict | None:
    """Verify the pair against NAME.manifest.json when there is one -> the manifest (None when there is none)."""
    path = manifest_path(train_file)
    if not os.path.exists(path):
        return None
    folder = os.path.dirname(train_file) or "."
    try:
        with open(path) as f:
            manifest = json.load(f)
        if not isinstance(manifest, dict):
            raise TypeError("not a JSON object")
    except (OSError, ValueError, TypeError) as e:
        raise DatasetError(f"{path}: the dataset manifest cannot be read ({e}); the files beside it cannot be "
                           f"trusted as a pair; rerun `{_remake(expected_dataset, folder)}`.") from None
    name = manifest.get("dataset") if isinstance(manifest.get("dataset"), str) else expected_dataset
    remake = _remake(name, folder, manifest)
    fmt = manifest.get("format")
    if not isinstance(fmt, int) or fmt > MANIFEST_FORMAT:
        raise DatasetError(f"{path}: manifest format {fmt!r} is not one this dipole reads (up to {MANIFEST_FORMAT}); "
                           f"upgrade dipole or rerun `{remake}`.")
    if manifest.get("complete") is not True:
        raise DatasetError(f"{path}: the generation of {name} did not finish (the manifest is marked incomplete), so "
                           f"{train_file} and {val_file} may not belong together; rerun `{remake}`.")
    if name != expected_dataset:
        raise DatasetError(_name_mismatch(train_file, name, expected_dataset, f"its manifest {path} says"))
    files = manifest.get("files") or {}
    for split, file in (("train", train_file), ("val", val_file)):
        want = files.get(split)
        if not isinstance(want, dict) or "bytes" not in want or "sha256" not in want:
            raise DatasetError(f"{path}: the manifest has no size and hash for the {split} file; rerun `{remake}`.")
        size = os.path.getsize(file)
        if size != want["bytes"]:
            raise DatasetError(f"{file}: {size} bytes, but the manifest {path} records {want['bytes']} for the {split} "
                               f"file: it does not belong with its pair (replaced or cut after generation); rerun "
                               f"`{remake}` to write the pair again.")
        got = file_digest(file)["sha256"]
        if got != want["sha256"]:
            raise DatasetError(f"{file}: its SHA-256 differs from the one the manifest {path} records for the {split} "
                               f"file: it does not belong with its pair (from another run or edited after "
                               f"generation); rerun `{remake}` to write the pair again.")
    return manifest


def _name_mismatch(file: str, data_name: str, expected: str, source: str) -> str:
    return (f"{file}: {source} it holds {data_name} data, but the environment needs {expected}: the environment "
            f"and the dataset come from different OGBench datasets. Use a single-task name of {data_name} (e.g. "
            f"'{data_name[: data_name.rfind('-')]}-singletask-task1{data_name[data_name.rfind('-'):]}') or a "
            f"{expected} file (`{_remake(expected)}`).")


def check_ogbench_arrays(arrays: dict, path: str, env_name: str, env, dataset: str) -> None:
    """The checks OGBench's single-task loader assumes, on one file's raw arrays (see the module docstring)."""
    remake = _remake(dataset, os.path.dirname(path) or ".")
    u = env.unwrapped
    family = parse_singletask_name(env_name, check=False)["env"]
    needs_buttons = family.startswith(("scene", "puzzle", "visual-scene", "visual-puzzle"))
    required = OGBENCH_FIELDS + (("button_states",) if needs_buttons else ())
    missing = [k for k in required if k not in arrays]
    if missing:
        raise DatasetError(f"{path}: missing field(s) {missing}; an OGBench file for {env_name} holds "
                           f"{list(required)} (one row per step); make one with `{remake}`.")
    derived = [k for k in DERIVED_FIELDS if k in arrays]
    if derived:
        how = ("next_observations by shifting observations" if derived[0] == "next_observations"
               else "rewards and masks from the task success")
        raise DatasetError(
            f"{path}: field '{derived[0]}' is in the file, but OGBench's single-task loader computes {how} and would "
            f"ignore it silently; remove the field(s) {derived} from the file (np.savez without them). To train on "
            "rewards of your own, build a dipole.data.dataset.Dataset from your arrays instead."
        )
    for key, value in arrays.items():
        if key in required and value.dtype.kind not in "biuf":
            raise DatasetError(f"{path}: field '{key}' has dtype {value.dtype}; it must hold numbers (save it as a float "
                               "array).")
    n = check_same_rows(arrays, required, path)
    check_finite(arrays, required, path)

    terminals = arrays["terminals"]
    if terminals.ndim != 1:
        raise DatasetError(f"{path}: field 'terminals' must have shape (N,), got {terminals.shape}.")
    meaning = ("'terminals' is 1 on the last step of each episode and 0 elsewhere (OGBench pairs each step with the "
               "next one and drops each episode's last step)")
    not_binary = (terminals != 0) & (terminals != 1)
    if not_binary.any():
        raise DatasetError(f"{path}: field 'terminals' has {int(not_binary.sum())} values other than 0 or 1, first at "
                           f"row {int(np.argmax(not_binary))} ({float(terminals[np.argmax(not_binary)]):g}); {meaning}. "
                           "Set it to 1 at each episode's last step and 0 elsewhere.")
    ends = int(terminals.sum())
    if ends == 0:
        raise DatasetError(f"{path}: field 'terminals' is 0 on all {n} rows, so no episode ends; {meaning}. Set it to 1 "
                           "at each episode's last step, including the final row.")
    if terminals[-1] != 1:
        raise DatasetError(f"{path}: field 'terminals' is 0 on the final row {n - 1}, so the last episode never ends; "
                           f"{meaning}. Set terminals[-1] = 1 (or drop the unfinished episode's rows).")
    if ends == n:
        raise DatasetError(f"{path}: field 'terminals' is 1 on every row, so every episode is one step long and "
                           f"there are no transitions; {meaning}.")

    model = getattr(u, "model", None)
    sizes = [("observations", tuple(env.observation_space.shape), "observes"),
             ("actions", tuple(env.action_space.shape), "takes actions of")]
    if model is not None:
        sizes += [("qpos", (int(model.nq),), "has a qpos of"), ("qvel", (int(model.nv),), "has a qvel of")]
    if needs_buttons and hasattr(u, "_num_buttons"):
        sizes.append(("button_states", (int(u._num_buttons),), "has button_states of"))

    def numbers(shape):
        return " x ".join(map(str, shape)) if shape else "no"

    for key, want, verb in sizes:
        got = tuple(arrays[key].shape[1:])
        if got != want:
            raise DatasetError(
                f"{path}: field '{key}' has {numbers(got)} numbers per row but environment {env_name} {verb} "
                f"{numbers(want)}: the environment and the data come from different environments. Use the "
                f"environment the data was made for, or a {dataset} file (`{remake}`)."
            )


def _stat(path: str) -> tuple:
    st = os.stat(path)
    return st.st_ino, st.st_size, st.st_mtime_ns


def load_ogbench(
    name: str,
    dataset_path: str | None = None,
    dataset_dir: str = DEFAULT_DATASET_DIR,
    allow_download: bool = False,
    clip_actions: bool = False,
):
    """Load an OGBench single-task dataset -> (env, train Dataset, val Dataset).

    Both files are validated first (see the module docstring); then `ogbench.make_env_and_datasets` itself loads
    them, so rewards and masks are OGBench's own relabelling. Missing files are downloaded by OGBench only with
    allow_download=True; otherwise the error says how to make them.
    """
    import ogbench

    info = parse_singletask_name(name)
    dataset = info["dataset"]
    train_file, val_file = dataset_files(name, dataset_path, dataset_dir)
    if dataset_path is not None and os.path.isdir(dataset_path):
        raise DatasetError(f"{dataset_path} is a directory, not an OGBench dataset file; pass the NAME.npz file inside "
                           f"it (e.g. {os.path.join(dataset_path, dataset + '.npz')}, with NAME-val.npz beside it).")
    if dataset_path is not None and not dataset_path.endswith(".npz"):
        raise DatasetError(f"{dataset_path}: an OGBench dataset file must be named NAME.npz (OGBench reads "
                           "NAME-val.npz beside it); rename it, or pass the NAME.npz file.")
    missing = [f for f in (train_file, val_file) if not os.path.exists(f)]
    if missing and allow_download and dataset_path is None:
        ogbench.download_datasets([dataset], os.path.expanduser(dataset_dir))
        missing = [f for f in (train_file, val_file) if not os.path.exists(f)]
    if missing:
        raise MissingFileError(
            f"OGBench dataset files not found: {missing}. Make them locally with "
            f"`{_remake(dataset, os.path.dirname(train_file))}`, pass --dataset PATH to an existing NAME.npz (with "
            "NAME-val.npz beside it), or, where the internet is reachable, let OGBench download them "
            "(`dipole train --download`)."
        )
    for f in (train_file, val_file):
        if os.path.isdir(f):
            raise DatasetError(f"{f} is a directory, not an OGBench dataset file; OGBench reads NAME.npz and "
                               "NAME-val.npz, which must be files.")

    before = {f: _stat(f) for f in (train_file, val_file)}
    if check_manifest(train_file, val_file, dataset) is None:
        for f in (train_file, val_file):
            named = dataset_name_of_file(os.path.basename(f))
            if named is not None and named != dataset:
                raise DatasetError(_name_mismatch(f, named, dataset, "its file name says"))

    env = make_ogbench_env(name)
    try:
        for f in (train_file, val_file):
            arrays = read_npz(f, "OGBench dataset", _remake(dataset, os.path.dirname(f) or "."))
            check_ogbench_arrays(arrays, f, name, env, dataset)
            del arrays
        train, val = ogbench.make_env_and_datasets(name, dataset_path=train_file, dataset_only=True, cur_env=env)
        changed = [f for f in (train_file, val_file) if _stat(f) != before[f]]
        if changed:
            raise DatasetError(f"{changed[0]} changed while it was being loaded (is `dipole data ogbench` writing it?); "
                               "load it again once nothing writes to it.")
        obs_shape = env.observation_space.shape
        action_dim = env.action_space.shape[0]
        train_ds = Dataset(train, name=train_file, clip_actions=clip_actions, obs_shape=obs_shape,
                           action_dim=action_dim)
        val_ds = Dataset(val, name=val_file, clip_actions=clip_actions, obs_shape=obs_shape, action_dim=action_dim)
    except BaseException:
        env.close()
        raise
    return env, train_ds, val_ds
