"""Telling real images from GAN fakes: calibrated, robust to re-compression, explained, and trainable on your
own generator (``ganforge detect`` / ``ganforge detect-train``).

Modules: :mod:`decode` (the one decode path every image goes through), :mod:`sources` (files, folders, zips,
built-in sets, runs), :mod:`features` and :mod:`cnn` (the two kinds), :mod:`augment`, :mod:`calibrate`,
:mod:`detector` (training, scoring, files), :mod:`report` (the HTML page).
"""
