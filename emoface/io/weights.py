"""Pretrained weight files: where they live, a clear error when they are missing, safe loading.

Every network whose weights come from the internet in real use (SyncNet, the FID InceptionV3,
the LPIPS backbone, the emotion classifier, face-alignment, face-vid2vid ...) resolves its file
through :func:`resolve_weights`: an explicit path when the user configures one, otherwise the
torch hub cache file name users know, ``$TORCH_HOME/hub/checkpoints/<file name>``
(``torch.hub.get_dir()``). Nothing is ever downloaded here; a missing file raises
:class:`MissingWeightsError` naming the file, the folder it goes in and where to get it.

Known files are registered in :data:`KNOWN_WEIGHTS`; other modules may add their own entries
with :func:`register_weights`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


@dataclass(frozen=True)
class WeightsInfo:
    """A pretrained weight file users know by name.

    Attributes:
        file_name: the file name in the torch hub cache (``$TORCH_HOME/hub/checkpoints``).
        source: where the file comes from (URL or instructions), quoted in errors.
        description: what the weights are for.
    """

    file_name: str
    source: str
    description: str = ""


KNOWN_WEIGHTS: dict[str, WeightsInfo] = {
    "syncnet": WeightsInfo(
        "syncnet_v2.model",
        "http://www.robots.ox.ac.uk/~vgg/software/lipsync/data/syncnet_v2.model "
        "(joonson/syncnet_python, download_model.sh)",
        "SyncNet lip-sync expert for LSE-C / LSE-D",
    ),
    "fid_inception": WeightsInfo(
        "pt_inception-2015-12-05-6726825d.pth",
        "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
        "pt_inception-2015-12-05-6726825d.pth (pytorch_fid.inception.FID_WEIGHTS_URL)",
        "InceptionV3 (TF FID port) for FID",
    ),
    "lpips_alex": WeightsInfo(
        "alexnet-owt-7be5be79.pth",
        "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth (torchvision AlexNet)",
        "AlexNet backbone of LPIPS (the linear heads ship inside the lpips package)",
    ),
    "lpips_vgg": WeightsInfo(
        "vgg16-397923af.pth",
        "https://download.pytorch.org/models/vgg16-397923af.pth (torchvision VGG16)",
        "VGG16 backbone of LPIPS (the linear heads ship inside the lpips package)",
    ),
    "emotion_fan": WeightsInfo(
        "emotion_fan_mead.pth",
        "a checkpoint of emoface's EmotionClassifier (`emoface fit --config "
        "configs/emotion_classifier.yaml`, then `EmotionClassifier.load_from_checkpoint(ckpt)"
        ".export(path)`) or an Emotion-FAN "
        "(Open-Debin/Emotion-FAN) state dict fine-tuned on MEAD, saved under this name",
        "Emotion-FAN video emotion classifier for emotion accuracy",
    ),
}
"""Registry of weight files: key -> :class:`WeightsInfo`."""


class MissingWeightsError(FileNotFoundError):
    """A pretrained weight file is not where emoface looks for it.

    Attributes:
        path: the path that was looked up.
        file_name: the expected file name.
        source: where the file comes from.
    """

    def __init__(self, path: Path, file_name: str, source: str, description: str = "") -> None:
        self.path = Path(path)
        self.file_name = file_name
        self.source = source
        what = f" ({description})" if description else ""
        message = (
            f"missing weight file {file_name!r}{what}: expected at {self.path}. "
            f"Put the file in {self.path.parent} (the torch hub cache, `$TORCH_HOME/hub/checkpoints`, "
            f"unless a path was configured) or pass its path explicitly. It comes from: {source}. "
            "emoface never downloads weights itself."
        )
        super().__init__(message)


def hub_checkpoint_dir() -> Path:
    """The torch hub checkpoint folder, ``$TORCH_HOME/hub/checkpoints`` (``torch.hub.get_dir()``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def register_weights(key: str, info: WeightsInfo) -> None:
    """Add (or replace) a known weight file under ``key``."""
    KNOWN_WEIGHTS[key] = info


def _info(key_or_info: str | WeightsInfo) -> WeightsInfo:
    if isinstance(key_or_info, WeightsInfo):
        return key_or_info
    try:
        return KNOWN_WEIGHTS[key_or_info]
    except KeyError:
        raise KeyError(
            f"unknown weights {key_or_info!r}; known: {', '.join(sorted(KNOWN_WEIGHTS))}"
        ) from None


def default_weights_path(key_or_info: str | WeightsInfo) -> Path:
    """Where the hub cache file of a known weight file would be (it may not exist)."""
    return hub_checkpoint_dir() / _info(key_or_info).file_name


def resolve_weights(key_or_info: str | WeightsInfo, path: str | os.PathLike | None = None) -> Path:
    """Find a weight file.

    Args:
        key_or_info: a key of :data:`KNOWN_WEIGHTS` or a :class:`WeightsInfo`.
        path: an explicit file (or a folder holding the known file name); ``None`` for the
            torch hub cache default.

    Returns:
        The existing file's path.

    Raises:
        MissingWeightsError: the file does not exist; the message names the file, the folder it
            goes in and where it comes from.
    """
    info = _info(key_or_info)
    if path is None:
        candidate = default_weights_path(info)
    else:
        candidate = Path(os.path.expandvars(os.fspath(path))).expanduser()
        if candidate.is_dir():
            candidate = candidate / info.file_name
    if not candidate.is_file():
        raise MissingWeightsError(candidate, info.file_name, info.source, info.description)
    return candidate


def load_weights(
    key_or_info: str | WeightsInfo,
    path: str | os.PathLike | None = None,
    map_location: str | torch.device = "cpu",
) -> Any:
    """Resolve then load a weight file with ``torch.load(..., weights_only=True)``.

    Returns:
        Whatever the file holds (usually a state dict).
    """
    resolved = resolve_weights(key_or_info, path)
    return torch.load(resolved, map_location=map_location, weights_only=True)


def extract_state_dict(obj: Any, prefixes: tuple[str, ...] = ("module.",)) -> dict[str, torch.Tensor]:
    """A plain state dict from a loaded checkpoint.

    Unwraps ``{"state_dict": ...}`` / ``{"model": ...}`` containers and strips the given key
    prefixes (``module.`` from ``DataParallel``).
    """
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model", "net"):
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping):
        raise TypeError(f"expected a state dict (a mapping of tensors), got {type(obj).__name__}")
    state: dict[str, torch.Tensor] = {}
    for name, value in obj.items():
        for prefix in prefixes:
            name = name.removeprefix(prefix)
        state[name] = value
    return state
