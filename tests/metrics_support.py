"""Stand-in weight files and small inputs shared by the metrics tests (no downloads anywhere)."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

FID_FILE = "pt_inception-2015-12-05-6726825d.pth"
ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
SYNCNET_FILE = "syncnet_v2.model"


def hub_dir(torch_home: Path) -> Path:
    """``<torch_home>/hub/checkpoints`` (created)."""
    path = torch_home / "hub" / "checkpoints"
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_fid_inception_weights(torch_home: Path, seed: int = 0) -> Path:
    """A randomly initialised state dict with the keys and shapes of pytorch-fid's FID Inception.

    Built from pytorch-fid's own blocks exactly as ``fid_inception_v3`` assembles them.
    """
    from pytorch_fid import inception as fi

    torch.manual_seed(seed)
    net = fi._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    net.Mixed_5b = fi.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = fi.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = fi.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = fi.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = fi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = fi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = fi.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = fi.FIDInceptionE_1(1280)
    net.Mixed_7c = fi.FIDInceptionE_2(2048)
    path = hub_dir(torch_home) / FID_FILE
    torch.save(net.state_dict(), path)
    return path


def write_alexnet_weights(torch_home: Path, seed: int = 0) -> Path:
    """A random torchvision AlexNet state dict under torchvision's hub file name."""
    import torchvision

    torch.manual_seed(seed)
    path = hub_dir(torch_home) / ALEXNET_FILE
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), path)
    return path


def reference_syncnet_layers() -> dict[str, nn.Sequential]:
    """syncnet_python's ``SyncNetModel.S`` layer by layer (transcribed from the reference), for names/shapes."""
    return {
        "netcnnaud": nn.Sequential(
            nn.Conv2d(1, 64, (3, 3), (1, 1), (1, 1)),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.MaxPool2d(1, 1),
            nn.Conv2d(64, 192, (3, 3), (1, 1), (1, 1)),
            nn.BatchNorm2d(192),
            nn.ReLU(),
            nn.MaxPool2d(3, (1, 2)),
            nn.Conv2d(192, 384, (3, 3), padding=(1, 1)),
            nn.BatchNorm2d(384),
            nn.ReLU(),
            nn.Conv2d(384, 256, (3, 3), padding=(1, 1)),
            nn.BatchNorm2d(256),
            nn.ReLU(),
            nn.Conv2d(256, 256, (3, 3), padding=(1, 1)),
            nn.BatchNorm2d(256),
            nn.ReLU(),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(256, 512, (5, 4), padding=(0, 0)),
            nn.BatchNorm2d(512),
            nn.ReLU(),
        ),  # fmt: skip
        "netfcaud": nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, 1024)),
        "netfclip": nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, 1024)),
        "netcnnlip": nn.Sequential(
            nn.Conv3d(3, 96, (5, 7, 7), (1, 2, 2), 0),
            nn.BatchNorm3d(96),
            nn.ReLU(),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2)),
            nn.Conv3d(96, 256, (1, 5, 5), (1, 2, 2), (0, 1, 1)),
            nn.BatchNorm3d(256),
            nn.ReLU(),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
            nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)),
            nn.BatchNorm3d(256),
            nn.ReLU(),
            nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)),
            nn.BatchNorm3d(256),
            nn.ReLU(),
            nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)),
            nn.BatchNorm3d(256),
            nn.ReLU(),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2)),
            nn.Conv3d(256, 512, (1, 6, 6), padding=0),
            nn.BatchNorm3d(512),
            nn.ReLU(),
        ),  # fmt: skip
    }


def reference_syncnet_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict named and shaped like ``syncnet_v2.model``, with random values and BN stats."""
    torch.manual_seed(seed)
    state = {}
    for prefix, seq in reference_syncnet_layers().items():
        for name, value in seq.state_dict().items():
            if name.endswith("running_var"):
                value = torch.rand_like(value) + 0.5
            elif name.endswith("running_mean"):
                value = torch.randn_like(value) * 0.1
            state[f"{prefix}.{name}"] = value
    return state


def talking_videos(
    batch: int, frames: int, size: int, seed: int = 0, sample_rate: int = 16000
) -> tuple[torch.Tensor, torch.Tensor]:
    """Smooth synthetic face-like videos ``(B, T, 3, S, S)`` uint8 and speech-like audio ``(B, 640 T)``."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    spf = sample_rate // 25
    videos, audio = [], []
    for _ in range(batch):
        envelope = torch.rand(frames, generator=g)
        colour = torch.rand(3, 1, 1, generator=g) * 0.5 + 0.3
        clip = []
        for t in range(frames):
            face = ((xx / 0.7) ** 2 + (yy / 0.9) ** 2 < 1).float()
            mouth = ((xx / 0.35) ** 2 + ((yy - 0.45) / (0.03 + 0.2 * envelope[t])) ** 2 < 1).float()
            img = colour * face - 0.25 * mouth + 0.05 * torch.randn(3, size, size, generator=g)
            clip.append(img)
        videos.append(torch.stack(clip))
        tt = torch.arange(frames * spf) / sample_rate
        carrier = torch.sin(2 * math.pi * 180 * tt) + 0.3 * torch.randn(frames * spf, generator=g)
        audio.append(0.3 * carrier * envelope.repeat_interleave(spf))
    v = (torch.stack(videos).clamp(0, 1) * 255).round().to(torch.uint8)
    return v, torch.stack(audio)
