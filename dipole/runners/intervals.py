"""The checks both training loops make on their counts and intervals (updates offline, environment steps online)."""

from __future__ import annotations

from dipole.errors import UsageError


def check_intervals(settings, total: str, lows: dict[str, int], aligned: tuple[str, ...]) -> None:
    """Refuse counts below their `lows`; clamp log_every, eval_every and save_every to the run's length `total`
    (longer means "only at the end", which the loops do anyway); the `aligned` intervals shorter than the run must
    be multiples of log_every (they act at the end of a logged chunk)."""
    for name, low in lows.items():
        if getattr(settings, name) < low:
            raise UsageError(f"{name} must be >= {low}, got {getattr(settings, name)}")
    n = getattr(settings, total)
    for name in ("log_every", "eval_every", "save_every"):
        setattr(settings, name, min(getattr(settings, name), n))
    for name in aligned:
        value = getattr(settings, name)
        if value and value < n and value % settings.log_every:
            raise UsageError(f"{name} ({value}) must be a multiple of log_every ({settings.log_every})")
