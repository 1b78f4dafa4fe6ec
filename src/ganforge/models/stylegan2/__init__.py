"""StyleGAN2 networks numerically matching the official stylegan2-ada-pytorch ones (plain PyTorch ops).

``networks`` holds the official-style ``Generator`` / ``Discriminator``; ``family`` registers them as the
ganforge families ``stylegan2`` and ``cstylegan2``; ``load_official_state`` loads weights stored under the
official state-dict names.
"""
from ganforge.models.stylegan2.family import GanforgeDiscriminator, build_networks
from ganforge.models.stylegan2.networks import (
    Discriminator,
    Generator,
    MappingNetwork,
    SynthesisNetwork,
    set_precision,
)
from ganforge.models.stylegan2.state import OfficialStateError, load_official_state

__all__ = ["Discriminator", "GanforgeDiscriminator", "Generator", "MappingNetwork", "OfficialStateError",
           "SynthesisNetwork", "build_networks", "load_official_state", "set_precision"]
