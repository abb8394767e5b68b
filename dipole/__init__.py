"""dipole: diffusion/flow policies for offline and online RL, with DIPOLE's greediness knob."""

from dipole.agents import AGENTS, get_agent, make_config
from dipole.agents.dipole import DIPOLEAgent, DIPOLEConfig

__version__ = "0.1.0"
__all__ = ["AGENTS", "get_agent", "make_config", "DIPOLEAgent", "DIPOLEConfig", "__version__"]
