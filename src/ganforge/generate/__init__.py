"""Using a trained generator: loading runs (:mod:`.runs`), seeded sampling, truncation and latent walks
(:mod:`.sampling`), StyleGAN2 tools (:mod:`.stylegan`: import, style mixing, noise) and the projector
(:mod:`.project`). Nothing heavy is imported here."""
