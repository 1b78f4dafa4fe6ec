"""Model families and their registry.

Every family module registers a builder ``build(cfg: ModelConfig) -> (G, D)``. All generators share one
interface so that training, sampling and the CLI never look at the family:

* ``G(z, c=None)`` maps latents ``z`` of shape ``[B, G.z_dim]`` (and class indices ``c`` of shape ``[B]``
  when ``G.num_classes > 0``) to images ``[B, C, H, W]`` in ``[-1, 1]``;
* ``D(x, c=None)`` maps images to real/fake logits of shape ``[B]``.
"""
# Importing the family modules fills the registry.
from ganforge.models import (  # noqa: F401
    cdcgan,
    dcgan,
    layers,
    mlp,
    pix2pix,
    progan,
    srresnet,
    stylegan2,
)
from ganforge.models.registry import build, families, is_conditional, register

__all__ = ["build", "families", "is_conditional", "register"]
