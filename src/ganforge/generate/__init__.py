"""Using a trained generator: loading runs (:mod:`.runs`), seeded sampling, truncation and latent walks
(:mod:`.sampling`) and StyleGAN2 tools (:mod:`.stylegan`: import, style mixing, noise). The projector is in
:mod:`ganforge.edit`. Nothing heavy is imported here."""
