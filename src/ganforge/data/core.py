"""The types shared by the data package: the error type and the loaded dataset."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

# File extensions accepted in user folders and zips (compared lower-case).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")
FIT_MODES = ("center-crop", "pad", "stretch")
DEFAULT_FOLDER_RESOLUTION = 64
MIN_RESOLUTION = 4
MAX_RESOLUTION = 2048  # above the largest GANs' (1024): past it a typo, and memory runs out


def to_signed_unit(x, normalize: str):
    """Images in a run's training scale (``data.normalize``: [-1,1], [0,1] or none = 0..255) -> [-1, 1],
    the scale every image writer and metric reads."""
    if normalize == "[0,1]":
        return x * 2 - 1
    if normalize == "none":
        return x / 127.5 - 1
    return x


@dataclass
class ImageDataset:
    """A whole dataset held in memory as uint8 images.

    ``images`` is ``[N, C, H, W]`` uint8 (H == W); ``labels`` is int64 ``[N]`` or None when the data
    is unlabelled (or labels were turned off); ``class_names[i]`` names label ``i``.
    """

    images: torch.Tensor
    labels: torch.Tensor | None
    class_names: list[str] = field(default_factory=list)
    name: str = ""
    skipped: int = 0
    label_note: str = ""  # why a folder gave no labels (files beside the class folders, ...), for messages

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"images must be uint8 [N, C, H, W], "
                             f"got {self.images.dtype} {tuple(self.images.shape)}")
        self.images = self.images.contiguous()
        if self.labels is not None:
            self.labels = self.labels.to(torch.int64).contiguous()
            if self.labels.shape != (self.images.shape[0],):
                raise ValueError(f"labels must have shape [{self.images.shape[0]}], "
                                 f"got {tuple(self.labels.shape)}")

    @property
    def resolution(self) -> int:
        return int(self.images.shape[2])

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __repr__(self) -> str:
        labels = f"{self.num_classes} classes" if self.labels is not None else "unlabelled"
        return (f"ImageDataset(name={self.name!r}, n={len(self)}, channels={self.channels}, "
                f"resolution={self.resolution}, {labels}, skipped={self.skipped})")
