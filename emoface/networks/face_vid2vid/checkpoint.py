"""Loading face-vid2vid checkpoints (the public vox-256 ``00000189-checkpoint.pth.tar`` layout).

A checkpoint is either the public training checkpoint, a dict with ``generator``,
``kp_detector`` and ``he_estimator`` state dicts (plus ``discriminator``, optimizers and the
epoch, ignored unless asked for), or one network's bare state dict. Keys load unchanged into the
networks of this package; a ``module.`` prefix (``DataParallel``) is stripped. A mismatch raises
one :class:`CheckpointMismatchError` listing, per network, the missing, unexpected and mis-shaped
keys and the sizes the network was built with.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from emoface.io.weights import WeightsInfo, register_weights, resolve_weights

WEIGHTS_KEY = "face_vid2vid"
"""Key of the public vox-256 checkpoint in :data:`emoface.io.weights.KNOWN_WEIGHTS`."""

register_weights(
    WEIGHTS_KEY,
    WeightsInfo(
        file_name="00000189-checkpoint.pth.tar",
        source=(
            "the vox-256 checkpoint of zhanglonghao1992/One-Shot_Free-View_Neural_Talking_Head_Synthesis "
            "(README, 'Vox-256-New' MediaFire link: https://www.mediafire.com/folder/fcvtkn21j57bb/TalkingHead_Update); "
            "SadTalker ships the same networks as checkpoints/facevid2vid_00189-model.pth.tar (rename it or pass its path)"
        ),
        description="face-vid2vid renderer (kp_detector, he_estimator, generator), vox-256",
    ),
)

NETWORK_NAMES = ("kp_detector", "he_estimator", "generator", "discriminator")
"""Checkpoint entries this module loads, in the public checkpoint's names."""

# Keys that identify a bare state dict's network (all of a group must be present).
_SIGNATURES: dict[str, tuple[str, ...]] = {
    "kp_detector": ("kp.weight", "predictor.conv.weight"),
    "he_estimator": ("fc_yaw.weight", "fc_exp.weight"),
    "generator": ("second.weight", "dense_motion_network.mask.weight"),
    "discriminator": ("discs.",),
}
_MAX_LISTED = 8


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the networks it is loaded into.

    Attributes:
        problems: network name -> its :class:`NetworkMismatch`.
    """

    def __init__(self, message: str, problems: dict[str, NetworkMismatch]) -> None:
        super().__init__(message)
        self.problems = problems


@dataclass
class NetworkMismatch:
    """How one state dict differs from one network.

    Attributes:
        missing: keys the network has and the state dict lacks.
        unexpected: keys the state dict has and the network lacks.
        mis_shaped: key -> (checkpoint shape, network shape).
        note: extra explanation (an absent entry, a probable wrong generator variant).
    """

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mis_shaped: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=dict)
    note: str = ""

    def blocking(self, strict: bool) -> bool:
        """Whether loading must fail (shape mismatches always; missing / unexpected keys when strict)."""
        return bool(self.mis_shaped or self.note or (strict and (self.missing or self.unexpected)))


def strip_prefix(state: Mapping[str, Any], prefix: str = "module.") -> Mapping[str, Any]:
    """``state`` without ``prefix`` on its keys (``DataParallel``); the same object when none has it.

    The state dict's ``_metadata`` (versions read by some layers' loading hooks) follows the keys.
    """
    if not any(key.startswith(prefix) for key in state):
        return state
    stripped: OrderedDict[str, Any] = OrderedDict((key.removeprefix(prefix), value) for key, value in state.items())
    metadata = getattr(state, "_metadata", None)
    if metadata is not None:
        root = prefix.rstrip(".")
        stripped._metadata = OrderedDict(  # type: ignore[attr-defined]
            ("" if key == root else key.removeprefix(prefix), value) for key, value in metadata.items()
        )
    return stripped


def compare_state_dict(network: nn.Module, state: Mapping[str, Any]) -> NetworkMismatch:
    """Missing, unexpected and mis-shaped keys of ``state`` against ``network.state_dict()``."""
    expected = network.state_dict()
    mismatch = NetworkMismatch(
        missing=[key for key in expected if key not in state],
        unexpected=[key for key in state if key not in expected],
    )
    for key, value in state.items():
        if key in expected and isinstance(value, Tensor) and tuple(value.shape) != tuple(expected[key].shape):
            mismatch.mis_shaped[key] = (tuple(value.shape), tuple(expected[key].shape))
    return mismatch


def identify_state_dict(state: Mapping[str, Any]) -> str | None:
    """Which face-vid2vid network a bare state dict belongs to (:data:`NETWORK_NAMES`), or ``None``."""
    for name, keys in _SIGNATURES.items():
        if all(any(k == key or (key.endswith(".") and k.startswith(key)) for k in state) for key in keys):
            return name
    return None


def _describe(network: nn.Module) -> str:
    config = getattr(network, "config", None)
    if not isinstance(config, Mapping):
        return type(network).__name__
    sizes = ", ".join(f"{key}={value!r}" for key, value in config.items())
    return f"{type(network).__name__}({sizes})"


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_LISTED])
    return shown + (f", ... ({len(keys) - _MAX_LISTED} more)" if len(keys) > _MAX_LISTED else "")


def _generator_hint(network: nn.Module, state: Mapping[str, Any]) -> str:
    spade_in_file = any(key.startswith("decoder.") for key in state)
    spade_network = hasattr(network, "decoder") and not hasattr(network, "final")
    if spade_in_file and not spade_network:
        return "the checkpoint holds a SPADE generator (decoder.* keys): build OcclusionAwareSPADEGenerator"
    if not spade_in_file and spade_network and any(key.startswith("final.") for key in state):
        return "the checkpoint holds the plain generator (final.* keys): build OcclusionAwareGenerator"
    return ""


def format_mismatch(source: str, problems: Mapping[str, NetworkMismatch], networks: Mapping[str, nn.Module]) -> str:
    """The message of :class:`CheckpointMismatchError`."""
    lines = [f"the face-vid2vid checkpoint {source} does not fit the networks:"]
    for name, mismatch in problems.items():
        lines.append(f"* {name}: built as {_describe(networks[name])}")
        if mismatch.note:
            lines.append(f"    {mismatch.note}")
        if mismatch.missing:
            lines.append(f"    missing keys ({len(mismatch.missing)}): {_listing(mismatch.missing)}")
        if mismatch.unexpected:
            lines.append(f"    unexpected keys ({len(mismatch.unexpected)}): {_listing(mismatch.unexpected)}")
        if mismatch.mis_shaped:
            shapes = [
                f"{key} checkpoint {tuple(a)} vs network {tuple(b)}" for key, (a, b) in mismatch.mis_shaped.items()
            ]
            lines.append(f"    mis-shaped keys ({len(shapes)}): {_listing(shapes)}")
    lines.append(
        "Build the networks with the checkpoint's sizes (the public vox-256 checkpoints: the constructor "
        "defaults, i.e. config/vox-256.yaml of the public code)."
    )
    return "\n".join(lines)


def load_face_vid2vid_state(
    path: str | os.PathLike | None = None,
    kp_detector: nn.Module | None = None,
    he_estimator: nn.Module | None = None,
    generator: nn.Module | None = None,
    discriminator: nn.Module | None = None,
    strict: bool = True,
) -> list[str]:
    """Load a face-vid2vid checkpoint into the given networks.

    Args:
        path: the checkpoint file (or a folder holding ``00000189-checkpoint.pth.tar``); ``None``:
            that file in the torch hub cache (``$TORCH_HOME/hub/checkpoints``).
        kp_detector, he_estimator, generator, discriminator: networks to fill; ``None`` skips one.
        strict: fail on missing or unexpected keys (shape mismatches always fail).

    Returns:
        The names of the networks loaded.

    Raises:
        MissingWeightsError: the file does not exist.
        CheckpointMismatchError: a network's entry is absent or does not fit it (all problems of
            all networks in one message); nothing is loaded then.
        TypeError: the file holds no state dict.
    """
    networks = {
        name: net
        for name, net in zip(NETWORK_NAMES, (kp_detector, he_estimator, generator, discriminator))
        if net is not None
    }
    if not networks:
        raise ValueError("pass at least one network to load into (kp_detector, he_estimator, generator, discriminator)")
    resolved = resolve_weights(WEIGHTS_KEY, path)
    checkpoint = torch.load(resolved, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, Mapping):
        raise TypeError(f"{resolved} holds a {type(checkpoint).__name__}, not a face-vid2vid checkpoint (a dict)")

    entries: dict[str, Mapping[str, Any]]
    if any(isinstance(checkpoint.get(name), Mapping) for name in NETWORK_NAMES):
        entries = {name: checkpoint[name] for name in NETWORK_NAMES if isinstance(checkpoint.get(name), Mapping)}
    else:
        state = strip_prefix(checkpoint)
        kind = identify_state_dict(state)
        if kind is None:
            raise CheckpointMismatchError(
                f"{resolved} is neither a face-vid2vid checkpoint (entries {', '.join(NETWORK_NAMES[:3])}) nor the "
                f"state dict of one of its networks (first keys: {_listing(list(state)[:5])})",
                {},
            )
        entries = {kind: state}
        if kind not in networks:
            raise CheckpointMismatchError(
                f"{resolved} holds a bare {kind} state dict, but no {kind} network was given to load it into",
                {},
            )

    problems: dict[str, NetworkMismatch] = {}
    states: dict[str, Mapping[str, Any]] = {}
    for name, network in networks.items():
        if name not in entries:
            found = ", ".join(entries) or "none"
            problems[name] = NetworkMismatch(note=f"the checkpoint has no {name!r} entry (entries found: {found})")
            continue
        states[name] = strip_prefix(entries[name])
        mismatch = compare_state_dict(network, states[name])
        if name == "generator":
            mismatch.note = _generator_hint(network, states[name])
        if mismatch.blocking(strict):
            problems[name] = mismatch
    if problems:
        raise CheckpointMismatchError(format_mismatch(str(resolved), problems, networks), problems)

    for name, network in networks.items():
        network.load_state_dict(states[name], strict=strict)
    return list(networks)
