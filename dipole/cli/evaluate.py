"""`dipole eval`: a checkpoint at several omegas, K and selection rules (or term weights) without retraining."""

import dataclasses
import os
from typing import Optional

from dipole.agents import get_agent
from dipole.cli.options import DEFAULT_OMEGAS, Context, given
from dipole.errors import UsageError


def command(ctx: Context) -> dict[str, type]:
    """This subcommand's option dataclass(es), their `--config.FIELD` options taken from `ctx`."""
    EvalConfig = ctx.eval_config

    @dataclasses.dataclass
    class Eval:
        """Evaluate a checkpoint at several omegas and K without retraining; each call writes new files."""

        checkpoint: str
        """Checkpoint file, or a run folder (its newest valid checkpoint)."""
        omega: Optional[tuple[float, ...]] = None
        """Greediness values to evaluate (default: 0 0.5 1 2 4, for agents with a greediness knob)."""
        num_candidates: tuple[int, ...] = (1, 32)
        """Candidate counts K to evaluate (1: no selection)."""
        selection: Optional[tuple[str, ...]] = None
        """Selection rules evaluated at each K > 1: argmax (rejection sampling by min Q) and, for dipole, tilt
        (K candidates from pi+, one resampled with probability ∝ exp(omega·beta·G)); default: argmax and the
        checkpoint's own rule."""
        term_weights: tuple[str, ...] = ()
        """dipole-terms: weight settings to evaluate, one per value, each TERM=WEIGHT[,TERM=WEIGHT...] (e.g.
        speed=1,safety=4,lane=0.5); terms not named keep the checkpoint's config.term_weights. Replaces --omega."""
        episodes: int = 50
        """Episodes per (omega, K, selection)."""
        env: Optional[str] = None
        """Environment; default: the one stored in the checkpoint."""
        seed: int = 0
        """Seed of the evaluation episodes."""
        out: Optional[str] = None
        """Folder for eval-stepSTEP-N.json/png (N is new on every call); default: the run folder."""
        config: EvalConfig = dataclasses.field(default_factory=EvalConfig)


    return {"eval": Eval}


def cmd_eval(a):
    from dipole.agents import load_checkpoint
    from dipole.runners.sweep import format_sweep_table, new_output_stem, run_sweep
    from dipole.storage import read_header, resolve_checkpoint

    path = resolve_checkpoint(a.checkpoint)
    header = read_header(path)
    overrides = given(a.config)
    config_cls = get_agent(header["agent"])[1]
    not_sampling = sorted(set(overrides) - set(config_cls.INFERENCE_FIELDS))
    if not_sampling:
        allowed = [f for f in config_cls.INFERENCE_FIELDS if f in config_cls.field_names()]
        raise UsageError(f"--config.{not_sampling[0]} changes training, not sampling; `dipole eval` can change "
                         f"{allowed} (use `dipole train` or `dipole finetune` for the rest)")
    if a.episodes < 1:
        raise UsageError(f"--episodes must be >= 1, got {a.episodes}")
    config = config_cls.from_dict(header["config"]).replace(**overrides)
    agent, header = load_checkpoint(path, config)
    has_omega = agent.samples_with("omega")
    omegas = list(DEFAULT_OMEGAS if a.omega is None else a.omega) if has_omega else [None]
    candidates = list(a.num_candidates)
    if not agent.samples_with("num_candidates") and any(k > 1 for k in candidates):
        candidates = [1]
        print(f"note: agent '{header['agent']}' cannot rank candidate actions; evaluating with --num-candidates 1")
    if not has_omega and a.omega is not None and any(w != 0.0 for w in a.omega):
        terms = " (it weights reward terms: use --term-weights)" if agent.samples_with("term_weights") else ""
        raise UsageError(f"agent '{header['agent']}' has no greediness knob; --omega applies to dipole and cfgrl"
                         + terms)
    env_name = a.env or header["env"]
    out_dir = a.out or (a.checkpoint if os.path.isdir(a.checkpoint) else os.path.dirname(path))
    if not omegas or not candidates:
        raise UsageError("--omega and --num-candidates need at least one value each")
    selections = list(dict.fromkeys(("argmax", agent.selection_of()))) if a.selection is None else list(a.selection)
    if not selections:
        raise UsageError("--selection needs at least one value (argmax, tilt)")
    if all(k == 1 for k in candidates):
        selections = ["argmax"]  # no selection happens at K = 1
    if a.term_weights or agent.samples_with("term_weights"):
        return _eval_term_weights(a, agent, header, path, env_name, out_dir, candidates, selections)
    for w in omegas:  # every value is checked before the first evaluation
        for k in candidates:
            for sel in selections:
                agent.sampling(omega=w, num_candidates=k, selection=sel)
    stem = new_output_stem(out_dir, f"eval-step{header['step']:08d}")
    print(f"loaded {path} (agent {header['agent']}, step {header['step']}); evaluating on {env_name}")
    rows = run_sweep(agent, env_name, stem, omegas, candidates, a.episodes, a.seed,
                     title=f"{env_name} @ step {header['step']}", selections=selections)
    head = agent.sampling().fields()
    print(format_sweep_table(rows, head["omega"], head["num_candidates"], agent.selection_of()))
    print(f"wrote {stem}.json and {stem}.png")


def _eval_term_weights(a, agent, header, path, env_name, out_dir, candidates, selections):
    """`dipole eval` of an agent that weights reward terms: one sweep over K and selection per weight setting."""
    from dipole.runners.sweep import format_sweep_table, new_output_stem, run_sweep

    if not agent.samples_with("term_weights"):
        raise UsageError(f"agent '{header['agent']}' has no reward terms; --term-weights applies to dipole-terms "
                         "(use --omega)")
    if a.omega is not None:
        raise UsageError(f"agent '{header['agent']}' weights reward terms instead of one omega; use --term-weights "
                         f"(terms: {', '.join(agent.config.terms)})")
    for w in a.term_weights or [None]:  # every setting is checked before the first evaluation
        for k in candidates:
            for sel in selections:
                agent.sampling(num_candidates=k, selection=sel, term_weights=w)
    settings = [agent.weight_vector(w) for w in a.term_weights] or [agent.weight_vector()]
    print(f"loaded {path} (agent {header['agent']}, step {header['step']}); evaluating on {env_name}")
    for vec in settings:
        named = ", ".join(f"{t}={w:g}" for t, w in zip(agent.config.terms, vec))
        weighted = agent.replace(config=agent.config.replace(term_weights=tuple(float(w) for w in vec)))
        stem = new_output_stem(out_dir, f"eval-step{header['step']:08d}")
        rows = run_sweep(weighted, env_name, stem, [None], candidates, a.episodes, a.seed,
                         title=f"{env_name} @ step {header['step']}, {named}", selections=selections)
        print(f"term weights {named}:")
        print(format_sweep_table(rows, None, agent.config.num_candidates, agent.selection_of()))
        print(f"wrote {stem}.json and {stem}.png")


