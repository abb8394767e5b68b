"""Dataset files are validated by dipole before OGBench's loader runs: each bad file is one DatasetError (or
MissingFileError / UsageError) naming the file, the field and the fix, and the NAME.npz / NAME-val.npz pair written
by `dipole data ogbench` is checked against its manifest."""

import json
import os
import re
import shutil

import numpy as np
import pytest
from conftest import random_transitions

from dipole.cli import main
from dipole.data.dataset import Dataset, DatasetError, read_npz
from dipole.data.ogbench import load_ogbench, manifest_path
from dipole.datagen import ogbench as generate
from dipole.datagen.ogbench import generate_ogbench
from dipole.envs.ogbench import make_ogbench_env, parse_singletask_name
from dipole.errors import MissingFileError, UsageError

DATA = "pointmaze-medium-navigate-v0"
TASK = "pointmaze-medium-navigate-singletask-task1-v0"


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """A valid pair (with its manifest) from seed 0, and the val file of the same dataset from seed 1."""
    a = generate_ogbench(DATA, episodes=2, workers=1, seed=0, out_dir=str(tmp_path_factory.mktemp("seed0")),
                         progress=False)
    b = generate_ogbench(DATA, episodes=2, workers=1, seed=1, out_dir=str(tmp_path_factory.mktemp("seed1")),
                         progress=False)
    return {"train": a["train_path"], "val": a["val_path"], "manifest": a["manifest_path"], "other_val": b["val_path"]}


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def read_json(path):
    with open(path) as f:
        return json.load(f)


def raw(path):
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def write_pair(folder, stem, train, val=None):
    """NAME.npz and NAME-val.npz in OGBench's layout, no manifest -> the train path."""
    path = os.path.join(folder, f"{stem}.npz")
    np.savez(path, **train)
    np.savez(os.path.join(folder, f"{stem}-val.npz"), **(train if val is None else val))
    return path


def copy_pair(pair, folder):
    for key in ("train", "val", "manifest"):
        shutil.copy(pair[key], folder)
    return os.path.join(folder, os.path.basename(pair["train"]))


def refused(path, field, match, task=TASK, cls=DatasetError, named=None):
    """load_ogbench refuses with one message that names the file (`named`, default the train file), the field and
    says `match`."""
    with pytest.raises(cls) as info:
        load_ogbench(task, dataset_path=str(path))
    message = str(info.value)
    assert "\n" not in message
    assert str(named or path) in message, message
    if field:
        assert f"'{field}'" in message, message
    assert re.search(match, message), message
    return message


# ------------------------------------------------------------------------------------------ file contents
def _cut_actions(d):
    d["actions"] = d["actions"][:-3]


def _empty(d):
    for k in d:
        d[k] = d[k][:0]


def _terminals_zero(d):
    d["terminals"][:] = 0


def _terminals_open_end(d):
    d["terminals"][-1] = 0


def _terminals_not_binary(d):
    d["terminals"][4] = 0.5


def _nan_qpos(d):
    d["qpos"][5, 1] = np.nan


def _rewards(d):
    d["rewards"] = np.zeros(len(d["observations"]), np.float32)


def _masks(d):
    d["masks"] = np.ones(len(d["observations"]), np.float32)


def _no_qpos(d):
    del d["qpos"]


def _wide_observations(d):
    d["observations"] = np.concatenate([d["observations"], d["observations"][:, :1]], axis=1)


def _wide_qvel(d):
    d["qvel"] = np.concatenate([d["qvel"], d["qvel"][:, :1]], axis=1)


def _string_actions(d):
    d["actions"] = np.array(["x"] * len(d["actions"]))


CASES = [
    (_cut_actions, "actions", r"has 3000 rows but 'observations' has 3003"),
    (_empty, "observations", r"has 0 rows"),
    (_terminals_zero, "terminals", r"is 0 on all 3003 rows, so no episode ends.*last step of each episode"),
    (_terminals_open_end, "terminals", r"is 0 on the final row 3002.*terminals\[-1\] = 1"),
    (_terminals_not_binary, "terminals", r"1 values other than 0 or 1, first at row 4"),
    (_nan_qpos, "qpos", r"1 non-finite values.*first at row 5"),
    (_rewards, "rewards", r"computes rewards and masks from the task success and would ignore it silently; remove"),
    (_masks, "masks", r"ignore it silently.*remove the field"),
    (_no_qpos, None, r"missing field\(s\) \['qpos'\].*dipole data ogbench pointmaze-medium-navigate-v0"),
    (_wide_observations, "observations",
     r"has 3 numbers per row but environment .* observes 2: the environment and the data come from different"),
    (_wide_qvel, "qvel", r"has 3 numbers per row but environment .* has a qvel of 2"),
    (_string_actions, "actions", r"dtype <U1; it must hold numbers"),
]


@pytest.mark.parametrize("edit,field,match", CASES, ids=[c[0].__name__.strip("_") for c in CASES])
@pytest.mark.parametrize("which", ["train", "val"])
def test_bad_contents_refused_naming_file_and_field(tmp_path, pair, edit, field, match, which):
    # the train file holds the seed-0 train and val rows together so row counts are the same in both files
    good = {k: np.concatenate([raw(pair["train"])[k], raw(pair["val"])[k]]) for k in raw(pair["train"])}
    bad = {k: v.copy() for k, v in good.items()}
    edit(bad)
    path = write_pair(tmp_path, "mine", bad if which == "train" else good, bad if which == "val" else good)
    bad_file = path if which == "train" else path.replace(".npz", "-val.npz")
    with pytest.raises(DatasetError) as info:
        load_ogbench(TASK, dataset_path=path)
    message = str(info.value)
    assert message.startswith(bad_file + ":"), message
    assert field is None or f"'{field}'" in message, message
    assert re.search(match, message), message


def test_custom_named_pair_without_manifest_loads(tmp_path, pair):
    path = write_pair(tmp_path, "mine", raw(pair["train"]), raw(pair["val"]))
    env, train, val = load_ogbench(TASK, dataset_path=path)
    env.close()
    assert len(train) == 2 * 1000 and len(val) == 1000


# ------------------------------------------------------------------------------------------ unreadable files
def _bad_files(folder, good):
    data = read_bytes(good)
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    files = {
        "truncated": (data[: len(data) // 2], r"truncated or corrupt \(BadZipFile"),
        "corrupt": (bytes(flipped), r"truncated or corrupt \(BadZipFile: Bad CRC-32"),
        "text": (b"observations,actions\n1,2\n", r"cannot be read as the dataset file: it is a text file"),
        "empty": (b"", r"it is empty \(0 bytes\)"),
    }
    out = {}
    for kind, (content, match) in files.items():
        path = os.path.join(folder, f"{kind}.npz")
        with open(path, "wb") as f:
            f.write(content)
        out[kind] = (path, match)
    import pickle

    path = os.path.join(folder, "pickle.npz")
    with open(path, "wb") as f:
        pickle.dump({"observations": [1, 2]}, f)
    out["pickle"] = (path, r"holds pickled Python data")
    path = os.path.join(folder, "npy.npz")
    with open(path, "wb") as f:
        np.save(f, np.zeros(3))
    out["npy"] = (path, r"single \.npy array, not an \.npz archive")
    path = os.path.join(folder, "objects.npz")
    np.savez(path, observations=np.array([{"a": 1}], dtype=object))
    out["objects"] = (path, r"field 'observations' holds Python objects")
    return out


def test_read_npz_refuses_unreadable_files_in_one_line(tmp_path, pair):
    for kind, (path, match) in _bad_files(str(tmp_path), pair["train"]).items():
        with pytest.raises(DatasetError, match=match) as info:
            read_npz(path)
        assert str(info.value).startswith(path) and "\n" not in str(info.value), kind
    os.mkdir(tmp_path / "folder.npz")
    with pytest.raises(DatasetError, match="is a directory, not the dataset file"):
        read_npz(str(tmp_path / "folder.npz"))
    with pytest.raises(MissingFileError, match="not found; make it with `dipole data dmc walker`"):
        read_npz(str(tmp_path / "nope.npz"), "DMC dataset", "dipole data dmc walker")


@pytest.mark.parametrize("which", ["train", "val"])
def test_unreadable_ogbench_file_refused_before_ogbench_loader(tmp_path, pair, which):
    shutil.copy(pair["train"], tmp_path / "mine.npz")
    shutil.copy(pair["val"], tmp_path / "mine-val.npz")
    target = tmp_path / ("mine.npz" if which == "train" else "mine-val.npz")
    target.write_bytes(read_bytes(pair["train"])[:5000])
    refused(tmp_path / "mine.npz", None, named=target, match=
            r"truncated or corrupt.*dipole data ogbench pointmaze-medium-navigate-v0")
    target.write_text("not numbers\n")
    with pytest.raises(DatasetError, match=re.escape(str(target)) + ": cannot be read as the OGBench dataset file: it is a text"):
        load_ogbench(TASK, dataset_path=str(tmp_path / "mine.npz"))


def test_directory_refused(tmp_path):
    with pytest.raises(DatasetError, match=re.escape(str(tmp_path)) + r" is a directory.*pass the NAME\.npz file"):
        load_ogbench(TASK, dataset_path=str(tmp_path))
    os.mkdir(tmp_path / "mine.npz")
    with pytest.raises(DatasetError, match="mine.npz is a directory"):
        load_ogbench(TASK, dataset_path=str(tmp_path / "mine.npz"))


# ------------------------------------------------------------------------------------------ names
def test_unknown_task_number_and_family_refused_before_gymnasium():
    bad = "pointmaze-medium-navigate-singletask-task9-v0"
    for call in (parse_singletask_name, make_ogbench_env, load_ogbench):
        with pytest.raises(UsageError, match=r"pointmaze-medium has no task 9; .*have tasks 1\.\.5"):
            call(bad)
    with pytest.raises(UsageError, match=r"no single-task environment 'pointmaze-huge'.*pointmaze-medium"):
        make_ogbench_env("pointmaze-huge-navigate-singletask-task1-v0")
    assert parse_singletask_name("cube-single-play-singletask-v0")["task"] is None  # the default task


def test_env_and_data_from_different_datasets_refused_by_name(tmp_path, pair):
    large = "pointmaze-large-navigate-singletask-task1-v0"
    # shapes match (both 2-D points), so only the name tells them apart: from the manifest ...
    path = copy_pair(pair, tmp_path)
    refused(path, None, r"its manifest .* says it holds pointmaze-medium-navigate-v0 data, but the environment needs "
                        r"pointmaze-large-navigate-v0", task=large)
    # ... or, with no manifest (OGBench's downloaded files), from the OGBench file name
    os.unlink(manifest_path(path))
    refused(path, None, r"its file name says it holds pointmaze-medium-navigate-v0 data.*"
                        r"'pointmaze-medium-navigate-singletask-task1-v0'", task=large)
    # a custom name says nothing: accepted
    custom = write_pair(tmp_path, "my-maze-data", raw(pair["train"]), raw(pair["val"]))
    load_ogbench(large, dataset_path=custom)[0].close()


# ------------------------------------------------------------------------------------------ the pair
def test_valid_pair_loads_and_fingerprint_is_stable(tmp_path, pair):
    manifest = read_json(pair["manifest"])
    assert manifest["complete"] and manifest["dataset"] == DATA and manifest["generator"] == "dipole data ogbench"
    assert manifest["seed"] == 0 and manifest["episodes"] == {"train": 2, "val": 1}
    assert manifest["files"]["train"]["rows"] == 2002 and manifest["files"]["train"]["transitions"] == 2000
    assert manifest["files"]["val"]["bytes"] == os.path.getsize(pair["val"])
    env, train, val = load_ogbench(TASK, dataset_path=pair["train"])
    env.close()
    path = copy_pair(pair, tmp_path)
    env, train2, _ = load_ogbench(TASK, dataset_path=path)
    env.close()
    assert train.fingerprint() == train2.fingerprint() != val.fingerprint()


def test_incomplete_manifest_refused(tmp_path, pair):
    path = copy_pair(pair, tmp_path)
    manifest = read_json(manifest_path(path))
    with open(manifest_path(path), "w") as f:
        json.dump({**manifest, "complete": False}, f)
    refused(path, None, r"the generation of pointmaze-medium-navigate-v0 did not finish.*rerun "
                        r"`dipole data ogbench pointmaze-medium-navigate-v0 --episodes 2 --out " + re.escape(str(tmp_path)))


def test_val_file_from_another_run_refused(tmp_path, pair):
    path = copy_pair(pair, tmp_path)
    val = path.replace(".npz", "-val.npz")
    shutil.copy(pair["other_val"], val)
    assert os.path.getsize(val) == os.path.getsize(pair["val"])  # same size: only the hash tells them apart
    with pytest.raises(DatasetError, match=re.escape(val) + r": its SHA-256 differs .* does not belong with its pair"):
        load_ogbench(TASK, dataset_path=path)
    with open(val, "ab") as f:
        f.write(b"\0")
    with pytest.raises(DatasetError, match=re.escape(val) + r": \d+ bytes, but the manifest .* records \d+"):
        load_ogbench(TASK, dataset_path=path)


def test_generation_killed_between_the_two_files_is_refused(tmp_path, pair, monkeypatch):
    """An old pair is being regenerated; the run dies after writing the new val file: the new val file now lies
    beside the old train file, and the manifest (marked incomplete first) says so."""
    path = copy_pair(pair, tmp_path)
    specs = {k: generate.GenSpec(**{**v.__dict__, "episode_length": 31}) for k, v in generate.SPECS.items()}
    monkeypatch.setattr(generate, "SPECS", specs)
    real, calls = generate.atomic_write_npz, []

    def dies_after_val(p, arrays):
        calls.append(p)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(p, arrays)

    monkeypatch.setattr(generate, "atomic_write_npz", dies_after_val)
    with pytest.raises(KeyboardInterrupt):
        generate_ogbench(DATA, episodes=2, workers=1, seed=5, out_dir=str(tmp_path), progress=False)
    assert calls[0].endswith("-val.npz") and read_bytes(path) == read_bytes(pair["train"])
    refused(path, None, r"did not finish.*rerun `dipole data ogbench pointmaze-medium-navigate-v0 --episodes 2 --seed 5")
    monkeypatch.setattr(generate, "atomic_write_npz", real)
    generate_ogbench(DATA, episodes=2, workers=1, seed=5, out_dir=str(tmp_path), progress=False)
    load_ogbench(TASK, dataset_path=path)[0].close()


# ------------------------------------------------------------------------------------------ CLI and fingerprint
def test_cli_prints_one_error_line_naming_the_file(tmp_path, pair):
    bad = raw(pair["train"])
    bad["qpos"][7, 0] = np.inf
    path = write_pair(tmp_path, "mine", bad, raw(pair["val"]))
    with pytest.raises(SystemExit) as info:
        main(["train", "--env", TASK, "--dataset", path, "--steps", "10", "--preset", "tiny",
              "--run-dir", str(tmp_path / "run")])
    message = str(info.value.code)
    assert message.startswith("error: ") and path in message and "'qpos'" in message and "row 7" in message
    assert not os.path.exists(tmp_path / "run" / "checkpoints")


def test_fingerprint_is_a_content_hash():
    a, b = Dataset(random_transitions()), Dataset(random_transitions())
    assert a.fingerprint() == b.fingerprint() and len(a.fingerprint()) == 32
    changed = random_transitions()
    changed["rewards"][100] += 1.0
    assert Dataset(changed).fingerprint() != a.fingerprint()
    swapped = random_transitions()
    swapped["masks"], swapped["rewards"] = swapped["rewards"] * 0 + 1, swapped["masks"]
    assert Dataset(swapped).fingerprint() != a.fingerprint()
    assert a.fingerprint() is a.fingerprint()  # cached
