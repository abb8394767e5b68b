"""Command line: `dipole quickstart | train | eval | data`."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

QUICKSTART_DATASET = "pointmaze-medium-navigate-v0"
QUICKSTART_TASK = "pointmaze-medium-navigate-singletask-task1-v0"


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def split_config_args(argv: list[str]) -> tuple[list[str], dict]:
    """Pull `--config.KEY=VALUE` / `--config.KEY VALUE` out of argv."""
    rest, overrides = [], {}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("--config."):
            body = a[len("--config."):]
            if "=" in body:
                k, v = body.split("=", 1)
            elif i + 1 < len(argv):
                k, v = body, argv[i + 1]
                i += 1
            else:
                raise SystemExit(f"error: {a} needs a value, e.g. {a}=3")
            overrides[k] = v
        else:
            rest.append(a)
        i += 1
    return rest, overrides


# ---------------------------------------------------------------------------------------------- sweeps
# per-episode statistics some environments report (highway driving), shown as extra columns when present
EXTRA_COLUMNS = (("failure", "crash or off-road", 100.0, "{:.1f}%"), ("mean_speed", "mean speed (m/s)", 1.0, "{:.2f}"),
                 ("distance", "distance (m)", 1.0, "{:.0f}"))


def format_sweep_table(rows: list[dict], headline_omega=None, headline_k=None) -> str:
    extra = [c for c in EXTRA_COLUMNS if rows and all(c[0] in r for r in rows)]
    lines = ["| omega | K | success rate | return | episode length |" + "".join(f" {c[1]} |" for c in extra),
             "|---:|---:|---:|---:|---:|" + "---:|" * len(extra)]
    for r in rows:
        mark = " (headline)" if (r["omega"] == headline_omega and r["num_candidates"] == headline_k) else ""
        succ = "-" if r["success"] is None else f"{100 * r['success']:.1f}% ± {100 * r['success_std']:.1f}"
        lines.append(f"| {r['omega']:g}{mark} | {r['num_candidates']} | {succ} | {r['return']:.1f} ± "
                     f"{r['return_std']:.1f} | {r['length']:.0f} |"
                     + "".join(" " + fmt.format(scale * r[key]) + " |" for key, _, scale, fmt in extra))
    return "\n".join(lines)


def run_sweep(agent, env_name, out_dir, omegas, candidates, episodes, seed, title=""):
    from dipole.evaluation import omega_sweep
    from dipole.plots import omega_sweep_plot
    from dipole.utils import atomic_write_json

    start = time.time()
    total = len(omegas) * len(candidates)

    def progress(row):
        done = progress.n = getattr(progress, "n", 0) + 1
        eta = (time.time() - start) / done * (total - done)
        succ = "n/a" if row["success"] is None else f"{row['success']:.3f}"
        print(f"  eval {done}/{total}: omega={row['omega']:g} K={row['num_candidates']} "
              f"success={succ} return={row['return']:.1f}  (ETA {eta:.0f}s)", flush=True)

    rows = omega_sweep(agent, env_name, omegas, candidates, episodes, seed=seed, progress=progress)
    atomic_write_json(os.path.join(out_dir, "omega_sweep.json"), rows)
    omega_sweep_plot(rows, os.path.join(out_dir, "omega_sweep.png"), title=title,
                     headline_omega=getattr(agent.config, "omega", None))
    return rows


# ---------------------------------------------------------------------------------------------- commands
def cmd_data(args):
    if args.source != "highway" and not args.name:
        raise ValueError(f"`dipole data {args.source}` needs a NAME (see `dipole data --help`)")
    if args.source == "highway":
        from dipole.highway import DEFAULT_DATA_EPISODES, generate_highway

        info = generate_highway(args.name or "highway-fast-v0", episodes=args.episodes or DEFAULT_DATA_EPISODES,
                                workers=args.workers,
                                seed=args.seed, out_dir=args.out or "~/.dipole/highway")
    elif args.source == "dmc":
        from dipole.data.dmc import generate_dmc

        info = generate_dmc(args.name, steps=args.steps, explorers=args.explorers, workers=args.workers,
                            seed=args.seed, out_dir=args.out or "~/.dipole/dmc")
    else:
        from dipole.data.generate import generate_ogbench

        info = generate_ogbench(args.name, episodes=args.episodes, workers=args.workers, seed=args.seed,
                                out_dir=args.out or "~/.ogbench/data")
    print(json.dumps(info, indent=2))


def _load_training_data(args):
    if args.env.startswith("highway-"):
        from dipole.highway import load_highway

        train_ds = load_highway(args.env, args.dataset, clip_actions=args.clip_actions)
    elif args.env.startswith("dmc-"):
        from dipole.data.dmc import load_dmc

        if not args.dataset:
            raise ValueError("--env dmc-* needs --dataset DOMAIN-explore.npz (make it with `dipole data dmc DOMAIN`)")
        env, train_ds = load_dmc(args.env, args.dataset, clip_actions=args.clip_actions)
        env.close()
    else:
        from dipole.data.ogbench_data import load_ogbench

        env, train_ds, _ = load_ogbench(args.env, dataset_path=args.dataset, allow_download=args.download,
                                        clip_actions=args.clip_actions)
        env.close()
    if train_ds.num_clipped_actions:
        print(f"note: clipped {train_ds.num_clipped_actions} out-of-range action rows to [-1, 1] (--clip-actions)")
    return train_ds


def cmd_train(args, overrides):
    from dipole.configs import build_config
    from dipole.train import TrainSettings, train

    config = build_config(args.agent, args.env, args.preset, overrides)
    run_dir = args.run_dir or os.path.join("runs", f"{args.env}-{args.agent}-seed{args.seed}")
    dataset = _load_training_data(args)
    print(f"dataset: {dataset.summary()}")
    print(f"run folder: {run_dir}")
    settings = TrainSettings(
        steps=args.steps, seed=args.seed, log_every=args.log_every, eval_every=args.eval_every,
        eval_episodes=args.eval_episodes, save_every=args.save_every, tensorboard=args.tensorboard,
    )
    agent = train(run_dir, args.env, dataset, args.agent, config, settings, resume=args.resume)
    _finish_run(run_dir, args.env, agent)


def _finish_run(run_dir, env_name, agent, sweep_rows=None, extra=None, plot=True):
    from dipole.plots import learning_curve
    from dipole.train import read_csv
    from dipole.utils import atomic_write_json

    metrics = read_csv(os.path.join(run_dir, "metrics.csv"))
    evals = read_csv(os.path.join(run_dir, "eval.csv"))
    if plot:
        learning_curve(metrics, evals, os.path.join(run_dir, "learning_curve.png"), title=f"{env_name}")
    summary = {
        "env": env_name,
        "agent": agent.config.agent,
        "config": agent.config.to_dict(),
        "steps": int(agent.step),
        "final_train_metrics": metrics[-1] if metrics else None,
        "evaluations": evals,
        **(extra or {}),
    }
    if sweep_rows is not None:
        summary["omega_sweep"] = sweep_rows
        head = [r for r in sweep_rows if r["omega"] == agent.config.omega
                and r["num_candidates"] == agent.config.num_candidates]
        summary["headline"] = head[0] if head else None
    atomic_write_json(os.path.join(run_dir, "summary.json"), summary)
    print(f"wrote {run_dir}/summary.json, metrics.csv, eval.csv, checkpoints/" + (", learning_curve.png" if plot else ""))


def cmd_eval(args):
    from dipole.checkpoint import load_agent, resolve_checkpoint

    path = resolve_checkpoint(args.checkpoint)
    agent, header = load_agent(path)
    env_name = args.env or header["env"]
    out_dir = args.out or (args.checkpoint if os.path.isdir(args.checkpoint) else os.path.dirname(path))
    print(f"loaded {path} (agent {header['agent']}, step {header['step']}); evaluating on {env_name}")
    rows = run_sweep(agent, env_name, out_dir, args.omega, args.num_candidates, args.episodes, args.seed,
                     title=f"{env_name} @ step {header['step']}")
    print(format_sweep_table(rows, agent.config.omega, agent.config.num_candidates))
    print(f"wrote {out_dir}/omega_sweep.json and omega_sweep.png")


def cmd_finetune(args):
    from dipole.checkpoint import load_agent, resolve_checkpoint
    from dipole.finetune import FinetuneSettings, finetune, finetune_curve

    path = resolve_checkpoint(args.checkpoint)
    agent, header = load_agent(path)
    if "finetune" in header and not args.resume:
        print(f"note: {path} is itself a fine-tuned checkpoint; fine-tuning continues from it with a fresh buffer")
    args.env = args.env or header["env"]
    if not args.dataset and header.get("dataset_path") and os.path.exists(header["dataset_path"]):
        args.dataset = header["dataset_path"]
    run_dir = args.run_dir or os.path.join("runs", f"{args.env}-{header['agent']}-finetune-seed{args.seed}")
    dataset = _load_training_data(args)
    print(f"loaded {path} (agent {header['agent']}, {header['step']} updates); offline data {dataset.name} "
          f"({len(dataset)} transitions); run folder {run_dir}")
    settings = FinetuneSettings(
        online_steps=args.online_steps, updates_per_step=args.updates_per_step, buffer_capacity=args.buffer_capacity,
        act_omega=args.act_omega, act_candidates=args.act_candidates, eval_omega=args.eval_omega,
        eval_candidates=args.eval_candidates, episode_length=args.episode_length, eval_every=args.eval_every,
        eval_episodes=args.eval_episodes, save_every=args.save_every, log_every=args.log_every, seed=args.seed,
    )
    agent, buffer = finetune(run_dir, args.env, dataset, agent, settings, resume=args.resume, source=path)
    curve = finetune_curve(run_dir, title=f"{args.env}: {header['agent']} offline -> online")
    _finish_run(run_dir, args.env, agent, extra={"mode": "finetune", "source": path, "online_steps": buffer.count,
                                                 "buffer_transitions": len(buffer)}, plot=False)
    print(f"wrote {curve}")


def cmd_bench(args):
    from dipole.bench import markdown_tables, run_bench

    agents = [a.strip() for a in args.agents.split(",") if a.strip()]
    summary = run_bench(args.suite, agents, args.seeds, out_dir=args.out, workers=args.workers,
                        report_only=args.report)
    out = args.out or os.path.join("runs", "bench", args.suite)
    print(markdown_tables(summary))
    print(f"wrote {out}/results.md, results.json, results.png")


def cmd_quickstart(args):
    """Generate a small pointmaze dataset, train DIPOLE (small nets), sweep omega, write plots and a summary."""
    from dipole.configs import build_config
    from dipole.data.generate import generate_ogbench
    from dipole.data.ogbench_data import load_ogbench
    from dipole.train import TrainSettings, train

    t0 = time.time()
    run_dir = args.run_dir
    os.makedirs(run_dir, exist_ok=True)
    print(f"[1/3] generating {args.episodes} episodes of {QUICKSTART_DATASET} (OGBench protocol) ...", flush=True)
    info = generate_ogbench(QUICKSTART_DATASET, episodes=args.episodes, workers=args.workers, seed=args.seed,
                            out_dir=os.path.join(run_dir, "data"))
    env, dataset, _ = load_ogbench(QUICKSTART_TASK, dataset_path=info["train_path"])
    env.close()
    print(f"      {len(dataset)} transitions in {info['seconds']:.0f}s", flush=True)

    # Small networks and a 40k-update CPU budget: Adam at 1e-3 instead of the paper's 3e-4 (which needs far more
    # updates on this task). omega and K stay at the config's defaults, fixed in advance.
    config = build_config("dipole", QUICKSTART_TASK, "small", {"lr": args.lr})
    print(f"[2/3] training DIPOLE for {args.steps} updates (nets {config.actor_hidden_dims}) ...", flush=True)
    settings = TrainSettings(steps=args.steps, seed=args.seed, log_every=1000, eval_every=args.steps // 4,
                             eval_episodes=args.eval_episodes, save_every=args.steps // 4)
    t1 = time.time()
    agent = train(run_dir, QUICKSTART_TASK, dataset, "dipole", config, settings, resume=args.resume)
    train_s = time.time() - t1
    print(f"[3/3] omega sweep {args.omega} x K {args.num_candidates}, {args.eval_episodes} episodes each ...",
          flush=True)
    rows = run_sweep(agent, QUICKSTART_TASK, run_dir, args.omega, args.num_candidates, args.eval_episodes, args.seed,
                     title=f"{QUICKSTART_TASK}, {args.steps} updates")
    _finish_run(run_dir, QUICKSTART_TASK, agent, rows,
                extra={"dataset": info, "train_seconds": train_s, "total_seconds": time.time() - t0})
    print()
    print(f"DIPOLE on {QUICKSTART_TASK} ({len(dataset)} transitions, {args.steps} updates, seed {args.seed})")
    print(format_sweep_table(rows, config.omega, config.num_candidates))
    print(f"headline: omega={config.omega:g} (fixed in advance), K={config.num_candidates}; "
          f"total {time.time() - t0:.0f}s")


# ---------------------------------------------------------------------------------------------- parser
def build_parser():
    p = argparse.ArgumentParser(prog="dipole", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    q = sub.add_parser("quickstart", help="small end-to-end run on pointmaze: data, training, omega sweep, plots")
    q.add_argument("--run-dir", default="runs/quickstart")
    q.add_argument("--episodes", type=int, default=200, help="training episodes of 1001 steps to generate")
    q.add_argument("--steps", type=int, default=40_000)
    q.add_argument("--lr", type=float, default=1e-3)
    q.add_argument("--eval-episodes", type=int, default=10)
    q.add_argument("--omega", type=_floats, default=[0.0, 0.5, 1.0, 2.0, 4.0])
    q.add_argument("--num-candidates", type=_ints, default=[1, 32])
    q.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--resume", action="store_true")

    t = sub.add_parser("train", help="train offline on an OGBench-format dataset (add --config.KEY=VALUE overrides)")
    t.add_argument("--env", required=True, help="OGBench single-task name, e.g. cube-single-play-singletask-task2-v0")
    t.add_argument("--dataset", help="path to NAME.npz (NAME-val.npz beside it); default: ~/.ogbench/data")
    t.add_argument("--agent", default="dipole")
    t.add_argument("--preset", default="paper", help="network sizes: paper (4x512), small, tiny")
    t.add_argument("--steps", type=int, default=1_000_000)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--run-dir")
    t.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --run-dir")
    t.add_argument("--log-every", type=int, default=1000)
    t.add_argument("--eval-every", type=int, default=100_000)
    t.add_argument("--eval-episodes", type=int, default=50)
    t.add_argument("--save-every", type=int, default=100_000)
    t.add_argument("--tensorboard", action="store_true")
    t.add_argument("--download", action="store_true", help="let OGBench download missing dataset files")
    t.add_argument("--clip-actions", action="store_true", help="clip out-of-range dataset actions (reported)")

    e = sub.add_parser("eval", help="evaluate a checkpoint at several omegas and K without retraining")
    e.add_argument("--checkpoint", required=True, help="checkpoint file or run folder (newest valid checkpoint)")
    e.add_argument("--omega", type=_floats, default=[0.0, 0.5, 1.0, 2.0, 4.0])
    e.add_argument("--num-candidates", type=_ints, default=[1, 32])
    e.add_argument("--episodes", type=int, default=50)
    e.add_argument("--env", help="override the environment stored in the checkpoint")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--out", help="folder for omega_sweep.json/png (default: the run folder)")

    f = sub.add_parser("finetune", help="offline-to-online: keep training a checkpoint while acting in its env")
    f.add_argument("--checkpoint", required=True, help="offline checkpoint file or run folder")
    f.add_argument("--online-steps", type=int, default=1_000_000, help="environment steps to collect")
    f.add_argument("--updates-per-step", type=int, default=1, help="gradient steps per environment step")
    f.add_argument("--buffer-capacity", type=int, help="online transitions kept (ring; default: all); the offline "
                   "dataset always stays in the buffer")
    f.add_argument("--act-omega", type=float, help="greediness while collecting (default: the agent's omega)")
    f.add_argument("--act-candidates", type=int, help="rejection-sampling K while collecting (default: config)")
    f.add_argument("--eval-omega", type=float, help="greediness for evaluation (default: the agent's omega)")
    f.add_argument("--eval-candidates", type=int, help="K for evaluation (default: config)")
    f.add_argument("--episode-length", type=int, help="truncate training episodes (default: the env's limit)")
    f.add_argument("--env", help="default: the checkpoint's environment")
    f.add_argument("--dataset", help="offline data for the buffer (default: the file the checkpoint was trained on)")
    f.add_argument("--run-dir")
    f.add_argument("--resume", action="store_true", help="continue the fine-tune in --run-dir after a kill")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--log-every", type=int, default=1000)
    f.add_argument("--eval-every", type=int, default=100_000)
    f.add_argument("--eval-episodes", type=int, default=50)
    f.add_argument("--save-every", type=int, default=100_000)
    f.add_argument("--download", action="store_true", help=argparse.SUPPRESS)
    f.add_argument("--clip-actions", action="store_true", help="clip out-of-range dataset actions (reported)")

    b = sub.add_parser("bench", help="run every (task, agent, seed) of a suite; resumable; writes tables and plots")
    b.add_argument("--suite", required=True, help="ogbench-mini, ogbench-cube-single-play, ..., smoke")
    b.add_argument("--agents", default="dipole", help="comma-separated agent names")
    b.add_argument("--seeds", type=int, default=2)
    b.add_argument("--out", help="output folder (default runs/bench/SUITE)")
    b.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes for data generation")
    b.add_argument("--report", action="store_true", help="only write the tables from the runs finished so far")

    d = sub.add_parser("data", help="make benchmark datasets locally")
    d.add_argument("source", choices=["ogbench", "dmc", "highway"])
    d.add_argument("name", nargs="?", help="ogbench: a dataset such as cube-double-play-v0; dmc: walker, cheetah or "
                   "quadruped; highway: highway-fast-v0 (default) or highway-v0")
    d.add_argument("--episodes", type=int, help="ogbench: training episodes (default: the published count); "
                   "highway: scripted-driver episodes (default 500, 100 per driver)")
    d.add_argument("--steps", type=int, default=1_000_000, help="dmc: transitions to collect")
    d.add_argument("--explorers", type=int, default=8, help="dmc: independent explorers (fixes the output)")
    d.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--out", help="default ~/.ogbench/data (ogbench), ~/.dipole/dmc (dmc), ~/.dipole/highway")
    return p


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    argv, overrides = split_config_args(argv)
    args = build_parser().parse_args(argv)
    if overrides and args.command != "train":
        raise SystemExit("error: --config.* overrides apply to `dipole train` only")
    try:
        if args.command == "train":
            cmd_train(args, overrides)
        elif args.command == "eval":
            cmd_eval(args)
        elif args.command == "data":
            cmd_data(args)
        elif args.command == "finetune":
            cmd_finetune(args)
        elif args.command == "bench":
            cmd_bench(args)
        elif args.command == "quickstart":
            cmd_quickstart(args)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    main()
