"""Quiet by default on a headless machine. Imported first by the package, before anything loads MuJoCo.

- dm_control picks an OpenGL backend when it is imported; without a display its GLFW attempt prints a `DISPLAY`
  warning. On Linux with no display and no MUJOCO_GL set, use EGL (offscreen), which says nothing.
- gymnasium warns that a Box's float64 bounds lose precision as float32 when OGBench builds its spaces; the bounds
  are +-inf or small integers, exact in float32, so that warning says nothing about our data. `env_warnings_off()`
  filters exactly that message where OGBench environments are made.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings

if sys.platform.startswith("linux") and "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "egl"

BOX_PRECISION_WARNING = r".*Box (low|high|bound)'?s? precision lowered by casting to float32"


@contextlib.contextmanager
def env_warnings_off():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=BOX_PRECISION_WARNING, category=UserWarning)
        yield
