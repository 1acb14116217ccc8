"""Loading LivePortrait's public weight files, strictly, from the folder users download.

The public release (KwaiVGI/LivePortrait on Hugging Face, ``liveportrait/``) holds
``base_models/appearance_feature_extractor.pth``, ``base_models/motion_extractor.pth``,
``base_models/warping_module.pth``, ``base_models/spade_generator.pth`` (raw state dicts) and
``retargeting_models/stitching_retargeting_module.pth`` (a dict of three state dicts with
``module.`` keys). A folder given to :func:`load_live_portrait` may hold the files directly, in
those two subfolders, or under ``liveportrait/`` (the downloaded repository's root).

Sizes are the public ``models.yaml``'s unless the folder has a ``models.json`` sidecar (written
by :func:`save_live_portrait` for other sizes, e.g. the tiny renderers of the tests). A missing
file is a :class:`MissingWeightsError` naming it and where it goes; a file that does not fit is
one :class:`LivePortraitMismatchError` listing the keys per file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from emoface.io.weights import MissingWeightsError, hub_checkpoint_dir
from emoface.networks.face_vid2vid.checkpoint import NetworkMismatch, compare_state_dict, strip_prefix
from emoface.networks.live_portrait.appearance import AppearanceFeatureExtractor
from emoface.networks.live_portrait.motion_extractor import MotionExtractor
from emoface.networks.live_portrait.spade_generator import SPADEDecoder
from emoface.networks.live_portrait.stitching import FILE_ENTRIES, StitchingRetargeting
from emoface.networks.live_portrait.warping import WarpingNetwork

FILES: dict[str, str] = {
    "appearance_feature_extractor": "appearance_feature_extractor.pth",
    "motion_extractor": "motion_extractor.pth",
    "warping_module": "warping_module.pth",
    "spade_generator": "spade_generator.pth",
    "stitching_retargeting_module": "stitching_retargeting_module.pth",
}
"""Network name -> public file name."""

SUBFOLDERS = {"stitching_retargeting_module": "retargeting_models"}
"""The public release's subfolder of each file (``base_models`` for the others)."""

SOURCE = (
    "https://huggingface.co/KwaiVGI/LivePortrait (folder liveportrait/: base_models/*.pth and "
    "retargeting_models/stitching_retargeting_module.pth; the GitHub README's `huggingface-cli download "
    "KwaiVGI/LivePortrait --local-dir pretrained_weights`). Code MIT; see the release for the weights' terms"
)
"""Where the files come from (quoted in errors)."""

CONFIG_FILE = "models.json"
"""Optional sidecar with the networks' constructor arguments (public sizes when absent)."""

CLASSES: dict[str, type[nn.Module]] = {
    "appearance_feature_extractor": AppearanceFeatureExtractor,
    "motion_extractor": MotionExtractor,
    "warping_module": WarpingNetwork,
    "spade_generator": SPADEDecoder,
    "stitching_retargeting_module": StitchingRetargeting,
}
_MAX_LISTED = 8


class LivePortraitMismatchError(ValueError):
    """LivePortrait files do not fit the networks.

    Attributes:
        problems: network name -> its mismatch.
    """

    def __init__(self, message: str, problems: dict[str, NetworkMismatch]) -> None:
        super().__init__(message)
        self.problems = problems


@dataclass
class LivePortraitNetworks:
    """The five networks of LivePortrait (F, M, W, G, S)."""

    appearance_feature_extractor: AppearanceFeatureExtractor
    motion_extractor: MotionExtractor
    warping_module: WarpingNetwork
    spade_generator: SPADEDecoder
    stitching_retargeting_module: StitchingRetargeting | None

    def items(self) -> list[tuple[str, nn.Module]]:
        """``(name, network)`` of the networks present."""
        return [(name, net) for name in FILES if (net := getattr(self, name)) is not None]


def default_folder() -> Path:
    """``$TORCH_HOME/hub/checkpoints/liveportrait`` (used when no folder is given)."""
    return hub_checkpoint_dir() / "liveportrait"


def find_file(folder: str | os.PathLike, name: str) -> Path | None:
    """A network's file in ``folder`` (directly, in its public subfolder, or under ``liveportrait/``)."""
    folder = Path(os.path.expandvars(os.fspath(folder))).expanduser()
    file_name = FILES[name]
    sub = SUBFOLDERS.get(name, "base_models")
    for candidate in (folder / file_name, folder / sub / file_name, folder / "liveportrait" / sub / file_name):
        if candidate.is_file():
            return candidate
    return None


def is_live_portrait_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder holding LivePortrait's motion extractor file."""
    return Path(path).is_dir() and find_file(path, "motion_extractor") is not None


def read_config(folder: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Constructor arguments per network from the folder's ``models.json`` (``{}``: public sizes)."""
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        return {}
    config = json.loads(path.read_text())
    unknown = set(config) - set(FILES)
    if unknown:
        raise ValueError(f"{path}: unknown networks {sorted(unknown)}; expected some of {list(FILES)}")
    return config


def build_networks(config: Mapping[str, Mapping[str, Any]] | None = None, stitching: bool = True) -> LivePortraitNetworks:
    """The five networks at the public sizes, or those of ``config`` (network name -> arguments)."""
    config = config or {}
    nets = {name: cls(**config.get(name, {})) for name, cls in CLASSES.items()}
    if not stitching:
        nets["stitching_retargeting_module"] = None
    return LivePortraitNetworks(**nets)  # type: ignore[arg-type]


def _file_states(path: Path, name: str) -> Mapping[str, Any]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, Mapping):
        raise LivePortraitMismatchError(f"{path} holds a {type(state).__name__}, not a state dict", {})
    if name != "stitching_retargeting_module":
        return strip_prefix(state)
    missing = [entry for entry in FILE_ENTRIES.values() if not isinstance(state.get(entry), Mapping)]
    if missing:
        raise LivePortraitMismatchError(
            f"{path} lacks the entries {missing} (the public file holds {list(FILE_ENTRIES.values())}, one state "
            f"dict each; found: {list(state)[:6]})",
            {},
        )
    return {
        f"{ours}.{key}": value
        for ours, entry in FILE_ENTRIES.items()
        for key, value in strip_prefix(state[entry]).items()
    }


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_LISTED])
    return shown + (f", ... ({len(keys) - _MAX_LISTED} more)" if len(keys) > _MAX_LISTED else "")


def load_live_portrait(
    folder: str | os.PathLike | None = None,
    networks: LivePortraitNetworks | None = None,
    stitching: bool | None = None,
) -> LivePortraitNetworks:
    """LivePortrait's networks with the public files loaded strictly.

    Args:
        folder: the downloaded weights (``None``: :func:`default_folder`).
        networks: networks to fill (``None``: built at the folder's sizes, :func:`read_config`).
        stitching: require the stitching file (``True``), skip it (``False``), or load it when
            present (``None``, LivePortrait's own behaviour).

    Raises:
        MissingWeightsError: a file is missing (the message names it and where it goes).
        LivePortraitMismatchError: files do not fit (every problem of every file in one message);
            nothing is loaded then.
    """
    folder = Path(folder) if folder is not None else default_folder()
    names = [name for name in FILES if name != "stitching_retargeting_module"]
    has_stitching = find_file(folder, "stitching_retargeting_module") is not None
    if stitching or (stitching is None and has_stitching):
        names.append("stitching_retargeting_module")
    if networks is None:
        networks = build_networks(read_config(folder), stitching="stitching_retargeting_module" in names)
    paths: dict[str, Path] = {}
    for name in names:
        path = find_file(folder, name)
        if path is None:
            sub = SUBFOLDERS.get(name, "base_models")
            raise MissingWeightsError(folder / sub / FILES[name], FILES[name], SOURCE, f"LivePortrait {name}")
        if getattr(networks, name) is None:
            raise ValueError(f"no {name} network to load {path} into")
        paths[name] = path
    states = {name: _file_states(path, name) for name, path in paths.items()}
    problems = {}
    for name, state in states.items():
        mismatch = compare_state_dict(getattr(networks, name), state)
        if mismatch.blocking(strict=True):
            problems[name] = mismatch
    if problems:
        lines = [f"the LivePortrait files in {folder} do not fit the networks:"]
        for name, mismatch in problems.items():
            config = getattr(getattr(networks, name), "config", {})
            lines.append(f"* {paths[name].name} ({type(getattr(networks, name)).__name__} built with {config})")
            if mismatch.missing:
                lines.append(f"    missing keys ({len(mismatch.missing)}): {_listing(mismatch.missing)}")
            if mismatch.unexpected:
                lines.append(f"    unexpected keys ({len(mismatch.unexpected)}): {_listing(mismatch.unexpected)}")
            if mismatch.mis_shaped:
                shapes = [f"{key} file {a} vs network {b}" for key, (a, b) in mismatch.mis_shaped.items()]
                lines.append(f"    mis-shaped keys ({len(shapes)}): {_listing(shapes)}")
        lines.append(f"Public files need the public sizes; other sizes need a {CONFIG_FILE} beside the files.")
        raise LivePortraitMismatchError("\n".join(lines), problems)
    for name, state in states.items():
        getattr(networks, name).load_state_dict(state, strict=True)
    return networks


def save_live_portrait(folder: str | os.PathLike, networks: LivePortraitNetworks, subfolders: bool = True) -> Path:
    """Write networks in the public files' layout (and ``models.json`` with their sizes).

    Args:
        folder: where to write (created).
        networks: the networks.
        subfolders: use the public ``base_models/`` and ``retargeting_models/`` subfolders.

    Returns:
        ``folder``.
    """
    folder = Path(folder)
    for name, net in networks.items():
        target = folder / (SUBFOLDERS.get(name, "base_models") if subfolders else "") / FILES[name]
        target.parent.mkdir(parents=True, exist_ok=True)
        state = net.file_state() if isinstance(net, StitchingRetargeting) else net.state_dict()
        torch.save(state, target)
    config = {name: dict(net.config) for name, net in networks.items()}
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=1))
    return folder
