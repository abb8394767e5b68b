"""Quiet by default on a headless machine. Imported first by the package, before anything loads MuJoCo.

- dm_control picks an OpenGL backend when it is imported; without a display its GLFW attempt prints a `DISPLAY`
  warning. On Linux with no display and no MUJOCO_GL set, use EGL (offscreen), which says nothing, where its library
  is installed; where it is not (a GPU server image without libEGL), `import mujoco` would fail on EGL, so rendering
  is switched off instead (`MUJOCO_GL=disable`: nothing here renders). A MUJOCO_GL the user set is kept.
- gymnasium warns that a Box's float64 bounds lose precision as float32 when OGBench builds its spaces; the bounds
  are +-inf or small integers, exact in float32, so that warning says nothing about our data. OGBench's manipulation
  environments build a new action Box on every reset, so the warning would repeat through every evaluation: exactly
  that message is filtered for the whole process.
"""

from __future__ import annotations

import ctypes
import os
import sys
import warnings


def headless_mujoco_gl(load=ctypes.CDLL) -> str:
    """MUJOCO_GL for a Linux machine with no display: 'egl' where libEGL loads, else 'disable'."""
    try:
        load("libEGL.so.1")
        return "egl"
    except OSError:
        return "disable"


if sys.platform.startswith("linux") and "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = headless_mujoco_gl()

BOX_PRECISION_WARNING = r".*Box (low|high|bound)'?s? precision lowered by casting to float32"

warnings.filterwarnings("ignore", message=BOX_PRECISION_WARNING, category=UserWarning)
