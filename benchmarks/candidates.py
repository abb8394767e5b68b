"""What candidate selection picks on a trained DIPOLE agent, next to the dataset's own actions; prints JSON.

For N dataset states of an OGBench single task: per sampler (data actions; guided K 1; argmax over K guided
candidates by the heads' min Q, or their lower bound with q_agg='lcb'; tilt over K candidates from pi+), the mean of
G (normalised as in training), of the disagreement |Q1 - Q2| of the first and last Q heads and the std over all heads
(a sign of extrapolation away from the data), mean |a|, the share of action components at the box's edge
(|a| > 0.99); and, for the critic on the data, the spread of G, the policy weights w = sigmoid(beta G + k) (mean,
std, share above 1/2) and the share of rows with G >= 0 (those CFGRL labels optimal); for tilt, the effective sample size of its weights.

    python benchmarks/candidates.py RUN/agent.dpl --task pointmaze-medium-navigate-singletask-task1-v0 \
        --dataset runs/bench/ogbench-mini-pop/data/pointmaze-medium-navigate-v0.npz [--omega 1] [--k 32]
"""

import argparse
import json

import jax
import jax.numpy as jnp
import numpy as np

from dipole.agents import load_checkpoint
from dipole.data.ogbench import load_ogbench


def stats(agent, obs, actions):
    qs = agent.q_values(agent.params["q"], obs, actions)
    g = agent.sampling_advantage(obs, actions)
    a = np.asarray(actions)
    return {"G": float(g.mean()), "q_head_gap": float(jnp.abs(qs[0] - qs[-1]).mean()),
            "q_head_std": float(jnp.std(qs, axis=0).mean()),
            "mean_abs_action": float(np.abs(a).mean()), "share_at_edge": float((np.abs(a) > 0.99).mean())}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("--task", required=True)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--states", type=int, default=2000)
    ap.add_argument("--omega", type=float, default=1.0)
    ap.add_argument("--k", type=int, default=32)
    args = ap.parse_args()
    agent, header = load_checkpoint(args.checkpoint)
    env, data, _ = load_ogbench(args.task, dataset_path=args.dataset)
    env.close()
    idx = np.random.default_rng(0).choice(len(data), args.states, replace=False)
    obs = jnp.asarray(data["observations"][idx])
    acts = jnp.asarray(data["actions"][idx])
    key = jax.random.PRNGKey(0)
    g = np.asarray(agent.sampling_advantage(obs, acts))
    w = np.asarray(agent.positive_weight(jnp.asarray(g)))  # sigmoid(beta G + k)
    out = {"checkpoint": args.checkpoint, "task": args.task, "omega": args.omega, "k": args.k,
           "beta": agent.config.beta, "adv_norm": agent.config.adv_norm, "num_qs": agent.config.num_qs,
           "q_agg": agent.config.q_agg, "q_pessimism": agent.config.q_pessimism,
           "data_G": {"std": float(g.std()), "p10": float(np.percentile(g, 10)), "p90": float(np.percentile(g, 90))},
           "w": {"mean": float(w.mean()), "std": float(w.std()), "share_above_half": float((w > 0.5).mean())},
           "share_G_nonneg": float((g >= 0).mean()),
           "samplers": {"data": stats(agent, obs, acts)}}
    for name, k, sel in (("guided_k1", 1, "argmax"), (f"argmax_k{args.k}", args.k, "argmax"),
                         (f"tilt_k{args.k}", args.k, "tilt")):
        a = agent.sample_actions(obs, key, omega=args.omega, num_candidates=k, selection=sel)
        out["samplers"][name] = stats(agent, obs, a)
    cand = agent.candidates(obs[:500], key, jnp.float32(args.omega), args.k)
    out["tilt_ess"] = float(cand["tilt_ess"].mean())
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
