"""dipole: diffusion/flow policies for offline and online RL, with DIPOLE's greediness knob.

    import dipole
    agent = dipole.make("dipole", ex_obs, ex_actions, seed=0, preset="small", beta=3.0)
    agent, info = agent.update(batch)
    actions = agent.sample_actions(obs, rng, omega=1.0, num_candidates=32)
    agent.save("agent.dpl")
    agent = dipole.load("agent.dpl")
"""

from dipole import _quiet  # noqa: F401  (must run before anything imports MuJoCo)
from dipole.agents import AGENTS, Agent, AgentConfig, DIPOLEAgent, DIPOLEConfig, get_agent, load, make, make_config
from dipole.data.dataset import Dataset
from dipole.errors import DipoleError
from dipole.version import __version__


def __getattr__(name):
    # the training loops pull in evaluation and plotting; load them only when asked for
    if name == "train":
        from dipole.runners.loop import train

        return train
    if name == "finetune":
        from dipole.runners.online import finetune

        return finetune
    raise AttributeError(f"module 'dipole' has no attribute {name!r}")


__all__ = ["AGENTS", "Agent", "AgentConfig", "DIPOLEAgent", "DIPOLEConfig", "Dataset", "DipoleError", "get_agent", "load", "make",
           "make_config", "train", "finetune", "__version__"]
