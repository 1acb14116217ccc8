"""SyncNet (Chung & Zisserman 2016), parameter-compatible with joonson/syncnet_python.

The module's parameter names and shapes equal the reference ``SyncNetModel.S``
(``netcnnaud.*``, ``netfcaud.*``, ``netcnnlip.*``, ``netfclip.*``) so the public
``syncnet_v2.model`` state dict loads unchanged (:meth:`SyncNet.from_pretrained`).

Inputs as the reference defines them:
    * audio: 13 MFCC x 20 columns (0.2 s at 100 Hz), ``(N, 1, 13, 20)``;
    * video: 5 frames of a face crop, colour in **BGR** order, raw 0-255 floats, no
      normalisation, ``(N, 3, 5, S, S)`` with ``S = 224`` for the reference network.

The constructor can also build narrower networks for small crops (``image_size`` 64-96 px)
trained by :class:`emoface.lightning_modules.SyncNetTrainer`; the last lip convolution's kernel
is derived from ``image_size`` (6 x 6 at 224 px, as in the reference).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from torch import Tensor, nn

from emoface.io.weights import extract_state_dict, load_weights

REFERENCE_AUDIO_CHANNELS = (64, 192, 384, 256, 256, 512)
REFERENCE_LIP_CHANNELS = (96, 256, 256, 256, 256, 512)


def _lip_feature_size(image_size: int) -> int:
    """Spatial size of the lip stream before its last convolution (6 at 224 px)."""

    def out(size: int, kernel: int, stride: int, pad: int) -> int:
        return (size + 2 * pad - kernel) // stride + 1

    size = out(image_size, 7, 2, 0)  # conv 7x7 / 2
    size = out(size, 3, 2, 0)  # max-pool 3 / 2
    size = out(size, 5, 2, 1)  # conv 5x5 / 2
    size = out(size, 3, 2, 1)  # max-pool 3 / 2, pad 1
    size = out(size, 3, 2, 0)  # (three 3x3 convs keep the size) max-pool 3 / 2
    if size < 1:
        raise ValueError(f"image_size {image_size} is too small for SyncNet's lip stream (>= 47 px)")
    return size


class SyncNet(nn.Module):
    """Two-stream audio / lip embedding network.

    Args:
        embed_dim: embedding size of both streams (1024 in the reference).
        audio_channels: 6 conv widths of the audio stream (reference: 64, 192, 384, 256, 256, 512).
        lip_channels: 6 conv widths of the lip stream (reference: 96, 256, 256, 256, 256, 512).
        image_size: side of the square face crops (224 in the reference).
    """

    def __init__(
        self,
        embed_dim: int = 1024,
        audio_channels: Sequence[int] = REFERENCE_AUDIO_CHANNELS,
        lip_channels: Sequence[int] = REFERENCE_LIP_CHANNELS,
        image_size: int = 224,
    ) -> None:
        super().__init__()
        a = list(audio_channels)
        v = list(lip_channels)
        if len(a) != 6 or len(v) != 6:
            raise ValueError("audio_channels and lip_channels need 6 widths each")
        self.embed_dim = embed_dim
        self.image_size = image_size
        # Indices inside each Sequential match the reference (they form the parameter names).
        self.netcnnaud = nn.Sequential(
            nn.Conv2d(1, a[0], kernel_size=3, stride=1, padding=1),
            nn.BatchNorm2d(a[0]),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=1, stride=1),
            nn.Conv2d(a[0], a[1], kernel_size=3, stride=1, padding=1),
            nn.BatchNorm2d(a[1]),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=(1, 2)),
            nn.Conv2d(a[1], a[2], kernel_size=3, padding=1),
            nn.BatchNorm2d(a[2]),
            nn.ReLU(inplace=True),
            nn.Conv2d(a[2], a[3], kernel_size=3, padding=1),
            nn.BatchNorm2d(a[3]),
            nn.ReLU(inplace=True),
            nn.Conv2d(a[3], a[4], kernel_size=3, padding=1),
            nn.BatchNorm2d(a[4]),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(a[4], a[5], kernel_size=(5, 4), padding=0),
            nn.BatchNorm2d(a[5]),
            nn.ReLU(),
        )
        self.netfcaud = nn.Sequential(
            nn.Linear(a[5], 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, embed_dim)
        )
        self.netfclip = nn.Sequential(
            nn.Linear(v[5], 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, embed_dim)
        )
        last = _lip_feature_size(image_size)
        self.netcnnlip = nn.Sequential(
            nn.Conv3d(3, v[0], kernel_size=(5, 7, 7), stride=(1, 2, 2), padding=0),
            nn.BatchNorm3d(v[0]),
            nn.ReLU(inplace=True),
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2)),
            nn.Conv3d(v[0], v[1], kernel_size=(1, 5, 5), stride=(1, 2, 2), padding=(0, 1, 1)),
            nn.BatchNorm3d(v[1]),
            nn.ReLU(inplace=True),
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
            nn.Conv3d(v[1], v[2], kernel_size=(1, 3, 3), padding=(0, 1, 1)),
            nn.BatchNorm3d(v[2]),
            nn.ReLU(inplace=True),
            nn.Conv3d(v[2], v[3], kernel_size=(1, 3, 3), padding=(0, 1, 1)),
            nn.BatchNorm3d(v[3]),
            nn.ReLU(inplace=True),
            nn.Conv3d(v[3], v[4], kernel_size=(1, 3, 3), padding=(0, 1, 1)),
            nn.BatchNorm3d(v[4]),
            nn.ReLU(inplace=True),
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2)),
            nn.Conv3d(v[4], v[5], kernel_size=(1, last, last), padding=0),
            nn.BatchNorm3d(v[5]),
            nn.ReLU(inplace=True),
        )

    def forward_aud(self, mfcc: Tensor) -> Tensor:
        """Audio embeddings: ``(N, 1, 13, 20)`` MFCC windows -> ``(N, embed_dim)``."""
        mid = self.netcnnaud(mfcc)
        return self.netfcaud(mid.flatten(1))

    def forward_lip(self, frames: Tensor) -> Tensor:
        """Lip embeddings: ``(N, 3, 5, S, S)`` BGR 0-255 windows -> ``(N, embed_dim)``."""
        mid = self.netcnnlip(frames)
        return self.netfclip(mid.flatten(1))

    def forward(self, frames: Tensor, mfcc: Tensor) -> tuple[Tensor, Tensor]:
        """Both embeddings: ``(N, 3, 5, S, S)``, ``(N, 1, 13, 20)`` -> ``(N, D)``, ``(N, D)``."""
        return self.forward_lip(frames), self.forward_aud(mfcc)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike | None = None, **kwargs: object) -> SyncNet:
        """The reference network with ``syncnet_v2.model`` weights (or a compatible state dict).

        Args:
            path: weight file or folder; ``None``: ``$TORCH_HOME/hub/checkpoints/syncnet_v2.model``.
            **kwargs: constructor arguments when the file holds a non-reference-sized network.

        Raises:
            emoface.io.weights.MissingWeightsError: the file is missing.
        """
        state = extract_state_dict(load_weights("syncnet", path))
        net = cls(**kwargs)  # type: ignore[arg-type]
        net.load_state_dict(state, strict=True)
        return net.eval()
