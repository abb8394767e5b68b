"""Omega x K sweeps of a trained agent: one evaluation per point, a table, a JSON file and a plot.

Each row is its own evaluation and is reported as such; a sweep never replaces the headline score, which is taken at
the omega and K of the agent's config (fixed before training).
"""

from __future__ import annotations

import os
import time

from dipole.runners.evaluation import omega_sweep, row_selection, sweep_settings
from dipole.runners.plots import omega_sweep_plot
from dipole.storage import atomic_write_json

# per-episode statistics some environments report (highway driving), shown as extra columns when present
EXTRA_COLUMNS = (("failure", "crash or off-road", 100.0, "{:.1f}%"), ("mean_speed", "mean speed (m/s)", 1.0, "{:.2f}"),
                 ("distance", "distance (m)", 1.0, "{:.0f}"))


def format_sweep_table(rows: list[dict], headline_omega=None, headline_k=None, headline_selection="argmax") -> str:
    extra = [c for c in EXTRA_COLUMNS if rows and all(c[0] in r for r in rows)]
    lines = ["| omega | K | selection | success rate ± s.d. | return ± s.d. | episode length |"
             + "".join(f" {c[1]} |" for c in extra),
             "|---:|---:|---|---:|---:|---:|" + "---:|" * len(extra)]
    headline_sel = headline_selection if (headline_k or 1) > 1 else None
    for r in rows:
        sel = row_selection(r)
        mark = " (headline)" if (r["omega"] == headline_omega and r["num_candidates"] == headline_k
                                 and sel == headline_sel) else ""
        succ = "-" if r["success"] is None else f"{100 * r['success']:.1f}% ± {100 * r['success_std']:.1f}"
        lines.append(f"| {_omega(r)}{mark} | {r['num_candidates']} | {sel or '-'} | {succ} | {r['return']:.1f} ± "
                     f"{r['return_std']:.1f} | {r['length']:.0f} |"
                     + "".join(" " + fmt.format(scale * r[key]) + " |" for key, _, scale, fmt in extra))
    return "\n".join(lines)


def _omega(row) -> str:
    return "-" if row["omega"] is None else f"{row['omega']:g}"  # '-': an agent without a greediness knob


def new_output_stem(folder: str, prefix: str) -> str:
    """The first `folder/PREFIX-N` (N = 1, 2, ...) with no .json yet, claimed at once so that no other call takes it."""
    os.makedirs(folder, exist_ok=True)
    n = 1
    while True:
        stem = os.path.join(folder, f"{prefix}-{n}")
        try:
            os.close(os.open(stem + ".json", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            return stem
        except FileExistsError:
            n += 1


def run_sweep(agent, env_name, stem, omegas, candidates, episodes, seed, title="", selections=("argmax",)):
    """Evaluate every (omega, K, selection); write STEM.json (rows) and STEM.png (plot). Returns the rows."""
    start = time.time()
    total = len(sweep_settings(omegas, candidates, selections))

    def progress(row):
        done = progress.n = getattr(progress, "n", 0) + 1
        eta = (time.time() - start) / done * (total - done)
        succ = "n/a" if row["success"] is None else f"{row['success']:.3f}"
        sel = row_selection(row)
        print(f"  eval {done}/{total}: omega={_omega(row)} K={row['num_candidates']}{' ' + sel if sel else ''} "
              f"success={succ} return={row['return']:.1f}  (ETA {eta:.0f}s)", flush=True)

    rows = omega_sweep(agent, env_name, omegas, candidates, episodes, seed=seed, progress=progress,
                       selections=selections)
    atomic_write_json(stem + ".json", rows)
    omega_sweep_plot(rows, stem + ".png", title=title, headline_omega=agent.sampling().fields()["omega"])
    return rows
