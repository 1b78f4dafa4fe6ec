"""What the discriminator sees: DiffAugment (:mod:`.diffaug`) and adaptive augmentation, ADA (:mod:`.ada`)."""
