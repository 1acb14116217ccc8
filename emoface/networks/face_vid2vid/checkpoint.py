"""Loading face-vid2vid checkpoints as users download them.

Three layouts are understood (:data:`LAYOUTS`), told apart by their content, not their name:

* ``training``: the public training checkpoint (``00000189-checkpoint.pth.tar``, SadTalker's
  copy ``facevid2vid_00189-model.pth.tar``, :meth:`FaceRenderer.export`), a dict with
  ``generator``, ``kp_detector`` and ``he_estimator`` state dicts (plus ``discriminator``,
  optimizers and the epoch, ignored unless asked for);
* ``sadtalker_safetensors``: SadTalker's single file ``SadTalker_V0.0.2_256.safetensors``, a
  flat safetensors dict whose keys are prefixed ``generator.``, ``kp_extractor.`` and
  ``he_estimator.``, beside other networks' entries (ignored);
* ``bare``: one network's state dict.

Keys load unchanged into the networks of this package; a ``module.`` prefix (``DataParallel``) is
stripped. Which generator a file holds (plain ``OcclusionAwareGenerator`` or
``OcclusionAwareSPADEGenerator``; the public vox-256 file holds the SPADE one) is read from its
keys (:func:`generator_variant`), and :func:`load_face_vid2vid_networks` builds that class. A
mismatch raises one :class:`CheckpointMismatchError` listing, per network, the missing,
unexpected and mis-shaped keys and the sizes the network was built with; a file in none of the
layouts raises :class:`UnknownCheckpointLayoutError`, which lists them.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
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
            "SadTalker ships the same networks as checkpoints/facevid2vid_00189-model.pth.tar and inside "
            "checkpoints/SadTalker_V0.0.2_256.safetensors (pass either path; both load as they are)"
        ),
        description="face-vid2vid renderer (kp_detector, he_estimator, generator), vox-256",
    ),
)

NETWORK_NAMES = ("kp_detector", "he_estimator", "generator", "discriminator")
"""Checkpoint entries this module loads, in the public checkpoint's names."""

RENDERER_NETWORKS = ("kp_detector", "he_estimator", "generator")
"""The networks a renderer needs (inference and stage 2)."""

SADTALKER_PREFIXES: dict[str, str] = {
    "generator.": "generator",
    "kp_extractor.": "kp_detector",
    "he_estimator.": "he_estimator",
}
"""Key prefix in SadTalker's flat safetensors file -> our network name (SadTalker calls the
keypoint detector ``kp_extractor``)."""

LAYOUTS: dict[str, str] = {
    "training": (
        "a face-vid2vid training checkpoint (.pth.tar): a dict with 'generator', 'kp_detector' and "
        "'he_estimator' state dicts (the public 00000189-checkpoint.pth.tar, SadTalker's "
        "facevid2vid_00189-model.pth.tar, FaceRenderer.export)"
    ),
    "sadtalker_safetensors": (
        "SadTalker's single file SadTalker_V0.0.2_256.safetensors: flat keys prefixed "
        + ", ".join(repr(prefix) for prefix in SADTALKER_PREFIXES)
        + " (other networks' entries ignored)"
    ),
    "bare": "the bare state dict of one network (kp_detector, he_estimator, generator or discriminator)",
}
"""Checkpoint layouts :func:`read_face_vid2vid_checkpoint` understands: name -> description."""

GENERATOR_VARIANTS = ("plain", "spade")
"""Generator classes a checkpoint may hold: ``OcclusionAwareGenerator`` / ``OcclusionAwareSPADEGenerator``."""

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


class UnknownCheckpointLayoutError(CheckpointMismatchError):
    """A file is in none of the face-vid2vid checkpoint layouts (:data:`LAYOUTS`)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, {})


@dataclass
class FaceVid2VidCheckpoint:
    """A face-vid2vid checkpoint file read into per-network state dicts.

    Attributes:
        path: the file.
        layout: a key of :data:`LAYOUTS`.
        entries: network name (:data:`NETWORK_NAMES`) -> its state dict (``module.`` stripped).
    """

    path: Path
    layout: str
    entries: dict[str, Mapping[str, Any]]

    @property
    def generator_variant(self) -> str | None:
        """``"plain"`` or ``"spade"`` (from the generator entry's keys); ``None`` without one."""
        state = self.entries.get("generator")
        return None if state is None else generator_variant(state, source=str(self.path))


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
        return (
            "the checkpoint holds a SPADE generator (decoder.* keys): build OcclusionAwareSPADEGenerator, or let "
            "load_face_vid2vid_networks build the generator the file holds"
        )
    if not spade_in_file and spade_network and any(key.startswith("final.") for key in state):
        return (
            "the checkpoint holds the plain generator (final.* keys): build OcclusionAwareGenerator, or let "
            "load_face_vid2vid_networks build the generator the file holds"
        )
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


def generator_variant(state: Mapping[str, Any], source: str = "the generator state dict") -> str:
    """Which generator a state dict belongs to, from its keys.

    Returns:
        ``"spade"`` (``decoder.*`` keys: :class:`OcclusionAwareSPADEGenerator`) or ``"plain"``
        (``final.*`` / ``up_blocks.*`` keys: :class:`OcclusionAwareGenerator`).

    Raises:
        UnknownCheckpointLayoutError: neither kind of key (not a face-vid2vid generator).
    """
    keys = [key.removeprefix("module.") for key in state]
    if any(key.startswith("decoder.") for key in keys):
        return "spade"
    if any(key.startswith(("final.", "up_blocks.")) for key in keys):
        return "plain"
    raise UnknownCheckpointLayoutError(
        f"{source} is not a face-vid2vid generator: it has neither the SPADE decoder's keys (decoder.*) nor the "
        f"plain decoder's (final.*, up_blocks.*); first keys: {_listing(keys[:5])}"
    )


def generator_class(variant: str) -> type[nn.Module]:
    """The generator class of a variant (:data:`GENERATOR_VARIANTS`)."""
    from emoface.networks.face_vid2vid.generator import OcclusionAwareGenerator, OcclusionAwareSPADEGenerator

    classes = {"plain": OcclusionAwareGenerator, "spade": OcclusionAwareSPADEGenerator}
    if variant not in classes:
        raise ValueError(f"unknown generator variant {variant!r}; expected one of {', '.join(classes)}")
    return classes[variant]


def is_safetensors_file(path: str | os.PathLike) -> bool:
    """A safetensors file: an 8-byte little-endian header length, then a JSON header."""
    with open(path, "rb") as file:
        head = file.read(9)
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 100_000_000


def _layouts_listing() -> str:
    return "; ".join(f"({i}) {text}" for i, text in enumerate(LAYOUTS.values(), 1))


def _load_file(path: Path, keys_only: bool) -> Any:
    """A checkpoint file's content (safetensors or ``torch.save``); ``keys_only`` reads no tensor data
    where the format allows (safetensors: values ``None``; zip files: memory-mapped)."""
    if is_safetensors_file(path):
        from safetensors import safe_open
        from safetensors.torch import load_file

        if keys_only:
            with safe_open(path, framework="pt") as file:
                return dict.fromkeys(file.keys())
        return load_file(path, device="cpu")
    if keys_only:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # a legacy (pre-zip) file cannot be memory-mapped
            pass
    return torch.load(path, map_location="cpu", weights_only=True)


def read_face_vid2vid_checkpoint(path: str | os.PathLike | None = None, keys_only: bool = False) -> FaceVid2VidCheckpoint:
    """Read a face-vid2vid checkpoint in any of the :data:`LAYOUTS` into per-network state dicts.

    Args:
        path: the file (or a folder holding ``00000189-checkpoint.pth.tar``); ``None``: that file
            in the torch hub cache (``$TORCH_HOME/hub/checkpoints``).
        keys_only: read the layout and keys cheaply (for :func:`generator_variant`); the values
            may then be ``None`` or memory-mapped.

    Raises:
        MissingWeightsError: the file does not exist.
        UnknownCheckpointLayoutError: the file is in none of the layouts (the message lists them).
    """
    resolved = resolve_weights(WEIGHTS_KEY, path)
    checkpoint = _load_file(resolved, keys_only)
    if not isinstance(checkpoint, Mapping):
        raise UnknownCheckpointLayoutError(
            f"{resolved} holds a {type(checkpoint).__name__}, not a face-vid2vid checkpoint. Layouts understood: "
            f"{_layouts_listing()}"
        )
    if any(isinstance(checkpoint.get(name), Mapping) for name in NETWORK_NAMES):
        entries = {
            name: strip_prefix(checkpoint[name]) for name in NETWORK_NAMES if isinstance(checkpoint.get(name), Mapping)
        }
        return FaceVid2VidCheckpoint(resolved, "training", entries)
    state = strip_prefix(checkpoint)
    flat: dict[str, dict[str, Any]] = {}
    for key, value in state.items():
        for prefix, name in SADTALKER_PREFIXES.items():
            if key.startswith(prefix):
                flat.setdefault(name, OrderedDict())[key.removeprefix(prefix)] = value
                break
    if flat:
        return FaceVid2VidCheckpoint(resolved, "sadtalker_safetensors", flat)
    kind = identify_state_dict(state)
    if kind is None:
        raise UnknownCheckpointLayoutError(
            f"{resolved} is in no face-vid2vid checkpoint layout (first keys: {_listing(list(state)[:5])}). Layouts "
            f"understood: {_layouts_listing()}"
        )
    return FaceVid2VidCheckpoint(resolved, "bare", {kind: state})


def default_generator(path: str | os.PathLike | None) -> nn.Module:
    """A vox-256 generator of the class a face-vid2vid file holds (``None`` or a file not on disk:
    the plain one, the default of a renderer trained from scratch)."""
    if path is None:
        return generator_class("plain")()
    try:
        variant = read_face_vid2vid_checkpoint(path, keys_only=True).generator_variant
    except FileNotFoundError:  # MissingWeightsError: a system rebuilt after its init file went away
        variant = None
    return generator_class(variant or "plain")()


def _load_entries(checkpoint: FaceVid2VidCheckpoint, networks: Mapping[str, nn.Module], strict: bool) -> None:
    """Check every network against its entry (all problems in one error), then load them all."""
    if checkpoint.layout == "bare":
        (kind,) = checkpoint.entries
        if kind not in networks:
            raise CheckpointMismatchError(
                f"{checkpoint.path} holds a bare {kind} state dict, but no {kind} network was given to load it into",
                {},
            )
    problems: dict[str, NetworkMismatch] = {}
    for name, network in networks.items():
        if name not in checkpoint.entries:
            found = ", ".join(checkpoint.entries) or "none"
            problems[name] = NetworkMismatch(note=f"the checkpoint has no {name!r} entry (entries found: {found})")
            continue
        mismatch = compare_state_dict(network, checkpoint.entries[name])
        if name == "generator":
            mismatch.note = _generator_hint(network, checkpoint.entries[name])
        if mismatch.blocking(strict):
            problems[name] = mismatch
    if problems:
        raise CheckpointMismatchError(format_mismatch(str(checkpoint.path), problems, networks), problems)
    for name, network in networks.items():
        network.load_state_dict(checkpoint.entries[name], strict=strict)


def load_face_vid2vid_state(
    path: str | os.PathLike | None = None,
    kp_detector: nn.Module | None = None,
    he_estimator: nn.Module | None = None,
    generator: nn.Module | None = None,
    discriminator: nn.Module | None = None,
    strict: bool = True,
) -> list[str]:
    """Load a face-vid2vid checkpoint (any of :data:`LAYOUTS`) into the given networks.

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
            all networks in one message; a generator of the other variant is named); nothing is
            loaded then.
        UnknownCheckpointLayoutError: the file is in none of the layouts.
    """
    networks = {
        name: net
        for name, net in zip(NETWORK_NAMES, (kp_detector, he_estimator, generator, discriminator))
        if net is not None
    }
    if not networks:
        raise ValueError("pass at least one network to load into (kp_detector, he_estimator, generator, discriminator)")
    _load_entries(read_face_vid2vid_checkpoint(path), networks, strict)
    return list(networks)


def load_face_vid2vid_networks(
    path: str | os.PathLike | FaceVid2VidCheckpoint | None = None,
    kp_detector: nn.Module | None = None,
    he_estimator: nn.Module | None = None,
    generator: nn.Module | None = None,
    kp_detector_params: Mapping[str, Any] | None = None,
    he_estimator_params: Mapping[str, Any] | None = None,
    generator_params: Mapping[str, Any] | None = None,
    strict: bool = True,
) -> dict[str, nn.Module]:
    """The renderer's three networks with a face-vid2vid checkpoint loaded, built as the file needs.

    A network not given is built with the given sizes (``*_params``; ``None``: the vox-256
    constructor defaults); the generator's class, plain or SPADE, is the one the file holds
    (:func:`generator_variant`), so the public files load with no argument.

    Args:
        path: the checkpoint (any of :data:`LAYOUTS`), or one already read.
        kp_detector, he_estimator, generator: networks to fill instead of building them.
        kp_detector_params, he_estimator_params, generator_params: constructor arguments of the
            networks built here.
        strict: fail on missing or unexpected keys.

    Returns:
        ``{"kp_detector", "he_estimator", "generator"}`` loaded.

    Raises:
        MissingWeightsError, UnknownCheckpointLayoutError, CheckpointMismatchError: as
        :func:`load_face_vid2vid_state`.
    """
    from emoface.networks.face_vid2vid.head_estimator import HeadExpressionEstimator
    from emoface.networks.face_vid2vid.keypoint_detector import CanonicalKeypointDetector

    checkpoint = path if isinstance(path, FaceVid2VidCheckpoint) else read_face_vid2vid_checkpoint(path)
    if kp_detector is None:
        kp_detector = CanonicalKeypointDetector(**(kp_detector_params or {}))
    if he_estimator is None:
        he_estimator = HeadExpressionEstimator(**(he_estimator_params or {}))
    if generator is None:
        variant = checkpoint.generator_variant or "spade"  # an absent entry is reported by _load_entries
        generator = generator_class(variant)(**(generator_params or {}))
    networks = {"kp_detector": kp_detector, "he_estimator": he_estimator, "generator": generator}
    _load_entries(checkpoint, networks, strict)
    return networks
