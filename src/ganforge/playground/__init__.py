"""The playground: a local page to train and explore GANs (``ganforge playground``)."""
