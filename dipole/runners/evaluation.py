"""Evaluation: run episodes in a batch of environments with one policy call per step for all of them."""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np

from dipole.envs import make_env
from dipole.seeding import stream_key, stream_seed

MAX_EVAL_ENVS = 16  # environments stepped together in one batch of evaluation episodes


def make_eval_envs(env_name: str, episodes: int, limit: int | None = None) -> list:
    """The environments an evaluation of `episodes` episodes steps together (at most `limit`, default 16)."""
    return [make_env(env_name) for _ in range(min(episodes, limit or MAX_EVAL_ENVS))]


def run_episodes(
    act_fn,
    env_name: str,
    episodes: int,
    seed: int = 0,
    num_envs: int | None = None,
    envs: list | None = None,
) -> dict:
    """Run `episodes` episodes; act_fn(obs (E, D), step_key) -> actions (E, A) in [-1, 1].

    Environments step in lockstep; finished ones are fed their last observation (ignored) so the policy
    always sees the same batch shape and compiles once. Returns per-episode arrays and their means/stds.
    """
    envs = envs or make_eval_envs(env_name, episodes, num_envs)
    group_act = lambda obs, keys: np.asarray(act_fn(obs[0], keys[0]))[None]  # noqa: E731
    return run_group_episodes(group_act, [envs], episodes, [seed])[0]


@functools.cache
def _split_keys():
    """One compiled split of every member's key (made once per process, not per evaluation)."""
    import jax

    return jax.jit(jax.vmap(jax.random.split))


class _MemberEnvs:
    """One member's evaluation environments and the state of numpy's global RNG as this member left it (OGBench's
    mazes draw reset noise from it): each member draws from it in the order it would evaluated alone."""

    def __init__(self, envs: list, seed: int):
        self.envs, self.seed = envs, seed
        np.random.seed(stream_seed(seed, "eval"))
        self.rng = np.random.get_state()

    def reset(self, first_episode: int) -> np.ndarray:
        np.random.set_state(self.rng)
        obs = np.stack([e.reset(seed=stream_seed(self.seed, "eval", first_episode + i))[0]
                        for i, e in enumerate(self.envs)])
        self.rng = np.random.get_state()
        return obs

    def step(self, actions, active):
        """Step the active environments -> (observations (None where inactive), rewards, ended, success (nan where
        the env reports none), the `episode_stats` of the episodes that ended, in order)."""
        np.random.set_state(self.rng)
        n = len(self.envs)
        obs, rew, ended, succ, stats = [None] * n, np.zeros(n), np.zeros(n, bool), np.full(n, np.nan), []
        for i in np.nonzero(active)[0]:
            o, r, term, trunc, info = self.envs[i].step(actions[i])
            obs[i], rew[i] = o, r
            if "success" in info:
                succ[i] = float(info["success"])
            if term or trunc:
                ended[i] = True
                stats.append(dict(info.get("episode_stats", {})))
        self.rng = np.random.get_state()
        return obs, rew, ended, succ, stats


class _LocalGroup:
    """Members whose environments live in this process, stepped one after another."""

    def __init__(self, envs: list[list], seeds: list[int]):
        if any(len(e) != len(envs[0]) for e in envs):
            raise ValueError("every member needs the same number of evaluation environments")
        self.members = [_MemberEnvs(e, s) for e, s in zip(envs, seeds)]
        self.num_members, self.per_member = len(envs), len(envs[0])

    def reset(self, first_episode: int) -> list:
        return [m.reset(first_episode) for m in self.members]

    def step(self, actions, active) -> list:
        return [m.step(a, on) if on.any() else None for m, a, on in zip(self.members, actions, active)]


class _WorkerTraceback(Exception):
    """The traceback of an exception raised in an evaluation worker (the cause of the one raised here)."""

    def __str__(self):
        return "in an evaluation worker process:\n" + self.args[0]


def _worker_error(exc: BaseException):
    """An exception as a worker sends it: itself when it pickles (a UsageError stays one), with its traceback."""
    import pickle
    import traceback

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # noqa: BLE001 - an exception that does not pickle is sent as its text
        exc = RuntimeError(str(exc))
    return exc, text


def _env_worker(conn, specs) -> None:
    """A process holding some members' environments (`specs`: (task, number of envs) each), serving start / reset /
    step / close requests until closed or its parent goes away. Ctrl-C is the parent's to handle."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        envs = [make_eval_envs(task, n, n) for task, n in specs]
    except Exception as exc:  # noqa: BLE001 - the parent raises it
        conn.send(("error", _worker_error(exc)))
        return
    conn.send(("ok", None))
    group = None
    while True:
        try:
            cmd, arg = conn.recv()
        except (EOFError, OSError):  # the parent went away
            break
        if cmd == "close":
            break
        try:
            if cmd == "start":
                group, out = _LocalGroup(envs, arg), None
            elif cmd == "reset":
                out = group.reset(arg)
            else:  # step
                out = group.step(*arg)
            conn.send(("ok", out))
        except Exception as exc:  # noqa: BLE001 - the parent raises it
            conn.send(("error", _worker_error(exc)))
    close_eval_envs(envs)
    try:
        conn.send(("ok", None))
    except (EOFError, OSError):
        pass


class EvalWorkers:
    """Members' evaluation environments held by `workers` spawned processes (contiguous blocks of members), stepped
    in parallel: every step sends each process its members' actions and waits for all. Episodes, keys and numpy
    RNG draws are those of environments held in this process, so the results are the same for any number of
    workers. `specs`: (task, environments) per member. Pass it as `envs` to `run_group_episodes` (or
    `evaluate_population`) as often as needed; `close()` stops the processes. An error in a worker is raised here
    (its own exception, caused by the worker's traceback), after which the workers are closed.

    Worker processes are spawned: a script that makes them at import time needs `if __name__ == "__main__":`."""

    def __init__(self, specs: list[tuple[str, int]], workers: int):
        import multiprocessing as mp

        if not specs or any(n != specs[0][1] for _, n in specs):
            raise ValueError("every member needs the same number of evaluation environments")
        self.num_members, self.per_member = len(specs), specs[0][1]
        n = max(1, min(int(workers), len(specs)))
        cuts = [round(i * len(specs) / n) for i in range(n + 1)]
        self.blocks = list(zip(cuts[:-1], cuts[1:]))
        ctx = mp.get_context("spawn")  # not fork: the parent runs JAX's threads
        self.conns, self.procs = [], []
        try:
            for a, b in self.blocks:
                parent, child = ctx.Pipe()
                proc = ctx.Process(target=_env_worker, args=(child, list(specs[a:b])), daemon=True)
                proc.start()
                child.close()
                self.conns.append(parent)
                self.procs.append(proc)
            self._gather()  # every worker made its environments (or the first error is raised here)
        except BaseException:
            self.close()
            raise

    def _gather(self) -> list:
        """Every worker's reply, in order; the first error (or a dead worker) is raised after all were read, and
        then the workers are closed."""
        if not self.conns:
            raise RuntimeError("these evaluation workers are closed")
        out, error = [], None
        for conn, proc in zip(self.conns, self.procs):
            try:
                status, value = conn.recv()
            except (EOFError, OSError):
                proc.join(1)
                status, value = "error", (RuntimeError(
                    f"an evaluation worker (pid {proc.pid}) died (exit code {proc.exitcode}); run with --workers 1 "
                    "to step the environments in this process"), None)
            if status == "error" and error is None:
                error = value
            out.append(value if status == "ok" else None)
        if error is not None:
            self.close()
            exc, text = error
            raise exc from (_WorkerTraceback(text) if text else None)
        return out

    def _call(self, cmd: str, args: list) -> list:
        if not self.conns:
            raise RuntimeError("these evaluation workers are closed")
        for conn, arg in zip(self.conns, args):
            conn.send((cmd, arg))
        return self._gather()

    def start(self, seeds: list[int]) -> "EvalWorkers":
        if len(seeds) != self.num_members:
            raise ValueError(f"{len(seeds)} seeds for {self.num_members} members")
        self._call("start", [list(seeds[a:b]) for a, b in self.blocks])
        return self

    def reset(self, first_episode: int) -> list:
        return [x for part in self._call("reset", [first_episode] * len(self.blocks)) for x in part]

    def step(self, actions, active) -> list:
        args = [(np.asarray(actions[a:b]), np.asarray(active[a:b])) for a, b in self.blocks]
        return [x for part in self._call("step", args) for x in part]

    def close(self) -> None:
        """Stop the workers (each closes its environments); one that does not answer within 10 s is terminated."""
        conns, procs, self.conns, self.procs = self.conns, self.procs, [], []
        for conn in conns:
            try:
                conn.send(("close", None))
            except (EOFError, OSError):
                pass
        for conn, proc in zip(conns, procs):
            try:
                if conn.poll(10):
                    conn.recv()
            except (EOFError, OSError):
                pass
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
            conn.close()


def envs_per_member(envs) -> int:
    """How many environments each member steps at once: `EvalWorkers` or lists of environments."""
    return envs.per_member if isinstance(envs, EvalWorkers) else len(envs[0])


def close_eval_envs(envs) -> None:
    if isinstance(envs, EvalWorkers):
        envs.close()
    else:
        for e in (e for per in envs for e in per):
            e.close()


def run_group_episodes(act_fn, envs, episodes: int, seeds: list[int]) -> list[dict]:
    """Episodes of several policies at once (a population's members): member m runs `episodes` episodes in its
    own environments `envs[m]` (all members the same number E of them; or an `EvalWorkers` holding them in other
    processes) with seed `seeds[m]`, and every step's actions come from one call
    act_fn(obs (M, E, D), keys (M, 2)) -> (M, E, A).

    Member m sees exactly the resets, evaluation keys and episode order it would see evaluated alone
    (`run_episodes` is this function with one member). Returns one result dict per member.
    """
    import jax

    group = envs.start(seeds) if isinstance(envs, EvalWorkers) else _LocalGroup(envs, seeds)
    members, num_envs = group.num_members, group.per_member
    returns = [[] for _ in range(members)]
    successes = [[] for _ in range(members)]
    lengths = [[] for _ in range(members)]
    stats = [{} for _ in range(members)]  # statistics an env reports in info['episode_stats'] at the end
    has_success = [False] * members
    keys = jax.numpy.stack([stream_key(s, "eval") for s in seeds])
    next_episode = 0
    while next_episode < episodes:
        batch = min(num_envs, episodes - next_episode)
        obs = np.stack(group.reset(next_episode)).astype(np.float32)
        active = np.zeros((members, num_envs), bool)
        active[:, :batch] = True
        ep_ret = np.zeros((members, num_envs))
        ep_len = np.zeros((members, num_envs), int)
        ep_succ = np.zeros((members, num_envs))
        while active.any():
            live = active.any(axis=1)
            both = _split_keys()(keys)
            # a member's key advances only while it has an episode running, as it would alone
            keys = jax.numpy.where(live[:, None], both[:, 0], keys)
            actions = np.asarray(act_fn(obs, both[:, 1]))
            for m, stepped in enumerate(group.step(actions, active)):
                if stepped is None:
                    continue
                new_obs, rew, ended, succ, ended_stats = stepped
                on = active[m]
                for i in np.nonzero(on)[0]:
                    obs[m, i] = new_obs[i]
                ep_ret[m] += np.where(on, rew, 0.0)
                ep_len[m] += on
                reported = on & ~np.isnan(succ)
                has_success[m] = has_success[m] or bool(reported.any())
                ep_succ[m] = np.where(reported, succ, ep_succ[m])
                for st in ended_stats:
                    for k, v in st.items():
                        stats[m].setdefault(k, []).append(float(v))
                active[m] &= ~ended
        for m in range(members):
            returns[m] += list(ep_ret[m, :batch])
            successes[m] += list(ep_succ[m, :batch])
            lengths[m] += list(ep_len[m, :batch])
        next_episode += batch
    out = []
    for m in range(members):
        ret, succ, length = map(np.asarray, (returns[m], successes[m], lengths[m]))
        out.append({
            "episodes": episodes,
            # tasks without a success signal (DMC) report None rather than a 0% that means nothing
            "success": float(succ.mean()) if has_success[m] else None,
            "success_std": float(succ.std()) if has_success[m] else None,
            "return": float(ret.mean()),
            "return_std": float(ret.std()),
            "length": float(length.mean()),
            **{k: float(np.mean(v)) for k, v in stats[m].items()},
        })
    return out


def evaluate_agent(agent, env_name, episodes, omega=None, num_candidates=None, seed=0, envs=None, num_envs=None,
                   selection=None, term_weights=None):
    """Evaluate a flow agent at a given greediness, number of candidates and candidate selection rule; agents that
    weight reward terms at inference (dipole-terms) take `term_weights` ({'safety': 4.0} or 'safety=4') instead of
    omega."""
    sampling = agent.sampling(omega, num_candidates, selection, term_weights=term_weights)  # before any episode

    def act(obs, key):
        return agent.act(jnp.atleast_2d(jnp.asarray(obs, jnp.float32)), key, sampling)

    out = run_episodes(act, env_name, episodes, seed=seed, envs=envs, num_envs=num_envs)
    out.update(sampling.fields())
    return out


def row_selection(row: dict) -> str | None:
    """The selection rule of an evaluation row: None at K = 1; rows written before 'tilt' existed were 'argmax'."""
    if int(row.get("num_candidates", 1)) <= 1:
        return None
    return row.get("selection") or "argmax"


def setting_label(k: int, selection: str | None, omega: float | None = None) -> str:
    """How a (K, selection) curve is named in tables and plots; with omega, how one setting is named in logs."""
    prefix = "" if omega is None else f"omega {omega:g}, "
    if k <= 1:
        return prefix + "K=1 (no selection)"
    return prefix + f"K={k}, {selection}" + (" (rejection sampling)" if selection == "argmax" else " (tilt resampling)")


def sweep_settings(omegas, candidates, selections=("argmax",)) -> list[tuple]:
    """The (omega, K, selection) rows of a sweep: every omega at K = 1 (no selection), and every omega with every
    selection rule at each K > 1."""
    rows = []
    for k in candidates:
        for sel in (selections if k > 1 else (None,)):
            rows += [(w, k, sel) for w in omegas]
    return rows


def omega_sweep(agent, env_name, omegas, candidates, episodes, seed=0, progress=None,
                selections=("argmax",)) -> list[dict]:
    """One evaluation per (omega, num_candidates, selection); each row is reported separately, never maximised
    over."""
    envs = make_eval_envs(env_name, episodes)
    rows = []
    for w, k, sel in sweep_settings(omegas, candidates, selections):
        rows.append(evaluate_agent(agent, env_name, episodes, omega=w, num_candidates=k, seed=seed, envs=envs,
                                   selection=sel))
        if progress:
            progress(rows[-1])
    return rows
