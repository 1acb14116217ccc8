"""Pictures of the cues: landmarks, gaze arrows and head-pose axes drawn over frames.

Plain functions, numpy in and uint8 RGB images out (no Lightning, no matplotlib): the
``emoface plot`` verb, the notebooks and the systems' logged images all draw with them.

Conventions (docs/data_format.md): landmarks are iBUG-68 ``(68, 3)`` in the pixels of the frame
they belong to; the camera frame has x right, y down, z away from the camera; gaze directions
are unit vectors in that frame (``R @ gaze_to_vector(gaze)``); the head pose is the similarity
``landmarks = scale * R @ normalized + translation``. Drawing is an orthographic projection:
a 3D direction ``(dx, dy, dz)`` is drawn as ``(dx, dy)``.

Typical use::

    track = track_from_arrays(np.load("clip.npz"))          # cache clip, cue file or sidecar
    video = annotate_frames(frames, track, upscale=4)       # (T, 4H, 4W, 3)
    grid = image_grid(video[pick_frames(len(video), 8)], columns=4)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np
import torch

from emoface.geometry.landmarks import NUM_LANDMARKS
from emoface.geometry.relocation import LEFT_PUPIL, RIGHT_PUPIL, relocate
from emoface.geometry.rotations import euler_to_matrix, gaze_to_vector

Color = tuple[int, int, int]

LANDMARK_COLOR: Color = (0, 255, 120)
"""Default colour of landmarks (RGB)."""
GENERATED_COLOR: Color = (255, 80, 200)
"""Colour used for generated cues when they are drawn beside real ones."""
GAZE_COLOR: Color = (255, 230, 0)
AXIS_COLORS: tuple[Color, Color, Color] = ((235, 40, 40), (40, 200, 40), (60, 120, 255))
"""Head-pose axes: x (right of the head) red, y (down) green, forward (out of the face) blue."""
BACKGROUND: Color = (32, 32, 36)
"""Canvas colour when there are no frames (e.g. a stage-1 cue file)."""

# iBUG-68 contours: (first, last + 1, closed).
CONTOURS: tuple[tuple[int, int, bool], ...] = (
    (0, 17, False),  # jaw
    (17, 22, False),  # right brow
    (22, 27, False),  # left brow
    (27, 31, False),  # nose bridge
    (31, 36, False),  # nose base
    (36, 42, True),  # right eye
    (42, 48, True),  # left eye
    (48, 60, True),  # outer lips
    (60, 68, True),  # inner lips
)
_SHIFT = 4  # cv2 sub-pixel bits
_ONE = 1 << _SHIFT


@dataclass(frozen=True)
class CueTrack:
    """Per-frame cues to draw, all in the pixels of the frames they go over.

    Attributes:
        landmarks: ``(T, 68, 2 or 3)`` posed iBUG-68 landmarks (x, y pixels; z ignored).
        pupils: ``(T, 2, 2)`` pupil centres (right eye first), or ``None``.
        gaze_vectors: ``(T, 2, 3)`` unit gaze directions in the camera frame, or ``None``.
        rotation: ``(T, 3, 3)`` head rotation, or ``None``.
        translation: ``(T, 3)`` head translation in pixels (origin of the canonical frame), or ``None``.
        scale: ``(T,)`` pixels per canonical unit (outer eye corners are 1.0 apart), or ``None``.
    """

    landmarks: np.ndarray
    pupils: np.ndarray | None = None
    gaze_vectors: np.ndarray | None = None
    rotation: np.ndarray | None = None
    translation: np.ndarray | None = None
    scale: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.landmarks)

    def frame(self, t: int) -> dict[str, np.ndarray | None]:
        """The cues of frame ``t`` as keyword arguments of :func:`draw_cues`."""
        pick = lambda a: None if a is None else a[t]  # noqa: E731
        return {
            "landmarks": self.landmarks[t],
            "pupils": pick(self.pupils),
            "gaze_vectors": pick(self.gaze_vectors),
            "rotation": pick(self.rotation),
            "translation": pick(self.translation),
            "scale": pick(self.scale),
        }

    def scaled(self, factor: float) -> CueTrack:
        """The same cues for frames resized by ``factor`` (pixel quantities scaled)."""
        mul = lambda a: None if a is None else a * factor  # noqa: E731
        return replace(
            self, landmarks=mul(self.landmarks), pupils=mul(self.pupils), translation=mul(self.translation),
            scale=mul(self.scale),
        )  # fmt: skip


def _np(value: object) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.array(value, dtype=np.float32)  # a copy: cache arrays are read-only memory maps


def track_from_arrays(arrays: Mapping[str, object]) -> CueTrack:
    """Build a :class:`CueTrack` from any of emoface's per-clip files or batch slices.

    Understood keys (docs/data_format.md), first match wins for each cue:

    * stage-1 cue files: ``relocated (T, 70, 3)`` (landmarks + pupils), ``gaze_vectors``;
    * cache clips and mini-MEAD sidecars: ``landmarks (T, 68, 3)``, ``pupils (T, 2, 2)``;
    * cues only: ``normalized_landmarks`` + ``gaze`` + pose -> relocated here;
    * pose: ``rotation (T, 3, 3)`` or ``euler (T, 3)``, ``translation (T, 3)``, ``scale (T,)``;
      gaze directions from ``gaze (T, 2, 2)`` (head-relative degrees) and the rotation.

    Raises:
        KeyError: no landmarks can be made from the keys.
    """
    keys = set(arrays.keys()) if hasattr(arrays, "keys") else set()
    get = lambda k: _np(arrays[k]) if k in keys else None  # noqa: E731
    rotation = get("rotation")
    if rotation is None and "euler" in keys:
        rotation = euler_to_matrix(torch.from_numpy(get("euler"))).numpy()
    translation, scale, gaze = get("translation"), get("scale"), get("gaze")
    pupils = gaze_vectors = None
    if "relocated" in keys:
        relocated = get("relocated")
        landmarks = relocated[:, :NUM_LANDMARKS]
        pupils = relocated[:, [RIGHT_PUPIL, LEFT_PUPIL], :2]
        gaze_vectors = get("gaze_vectors")
    elif "landmarks" in keys:
        landmarks = get("landmarks")
        pupils = get("pupils")
    elif {"normalized_landmarks", "gaze"} <= keys and rotation is not None and translation is not None \
            and scale is not None:  # fmt: skip
        out = relocate(*(torch.from_numpy(a) for a in (get("normalized_landmarks"), gaze, rotation, translation, scale)))
        landmarks = out.landmarks.numpy()
        pupils = out.pupils[..., :2].numpy()
        gaze_vectors = out.gaze_vectors.numpy()
    else:
        raise KeyError(f"no landmarks among the keys {sorted(keys)} (want relocated, landmarks, or "
                       "normalized_landmarks + gaze + rotation/euler + translation + scale)")  # fmt: skip
    if gaze_vectors is None and gaze is not None and rotation is not None:
        directions = gaze_to_vector(torch.from_numpy(gaze)).numpy()  # (T, 2, 3) head frame
        gaze_vectors = np.einsum("tij,tej->tei", rotation, directions)
    if landmarks.ndim != 3 or landmarks.shape[1:2] != (NUM_LANDMARKS,):
        raise KeyError(f"landmarks must be (T, 68, 2 or 3), got {landmarks.shape}")
    return CueTrack(landmarks, pupils, gaze_vectors, rotation, translation, scale)


def canvas_size(track: CueTrack, margin: float = 0.15) -> int:
    """An even square canvas side that holds every landmark of ``track`` (for cues without frames).

    Cue coordinates are crop pixels and the crop is centred on the face, so the side is about
    twice the head's mean position, grown when a landmark would fall outside.
    """
    points = track.landmarks[..., :2]
    centre = float(np.median(track.translation[:, :2])) if track.translation is not None else float(np.median(points))
    extent = float(points.max()) * (1 + margin)
    side = max(2 * centre, extent, 32.0)
    return int(np.ceil(side / 2) * 2)


def blank_frames(count: int, height: int, width: int | None = None, color: Color = BACKGROUND) -> np.ndarray:
    """``(count, H, W, 3)`` uint8 frames of one colour."""
    frames = np.empty((count, height, width or height, 3), dtype=np.uint8)
    frames[:] = np.asarray(color, dtype=np.uint8)
    return frames


def _fixed(points: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(points, dtype=np.float64)[..., :2] * _ONE).astype(np.int32)


def _line(image: np.ndarray, a: np.ndarray, b: np.ndarray, color: Color, thickness: int) -> None:
    cv2.line(image, tuple(_fixed(a)), tuple(_fixed(b)), color, thickness, cv2.LINE_AA, _SHIFT)


def _arrow(image: np.ndarray, a: np.ndarray, b: np.ndarray, color: Color, thickness: int) -> None:
    length = float(np.linalg.norm(np.asarray(b) - np.asarray(a)))
    tip = min(0.4, 4.0 * thickness / max(length, 1e-6))
    cv2.arrowedLine(image, tuple(_fixed(a)), tuple(_fixed(b)), color, thickness, cv2.LINE_AA, _SHIFT, tip)


def draw_landmarks(image: np.ndarray, landmarks: np.ndarray, color: Color = LANDMARK_COLOR,
                   thickness: int = 1, points: bool = True) -> np.ndarray:  # fmt: skip
    """Draw the iBUG-68 contours (and points) of ``landmarks (68, 2+)`` on ``image`` in place; returns it."""
    fixed = _fixed(landmarks)
    for first, last, closed in CONTOURS:
        cv2.polylines(image, [fixed[first:last]], closed, color, thickness, cv2.LINE_AA, _SHIFT)
    if points:
        radius = max(1, thickness) * _ONE
        for point in fixed:
            cv2.circle(image, tuple(point), radius, color, -1, cv2.LINE_AA, _SHIFT)
    return image


def draw_gaze(image: np.ndarray, pupils: np.ndarray, gaze_vectors: np.ndarray, length: float,
              color: Color = GAZE_COLOR, thickness: int = 1) -> np.ndarray:  # fmt: skip
    """Draw one arrow per eye from the pupil ``(2, 2)`` along the camera-frame gaze ``(2, 3)`` (x, y drawn)."""
    for pupil, direction in zip(_np(pupils), _np(gaze_vectors)):
        cv2.circle(image, tuple(_fixed(pupil)), max(1, thickness) * _ONE, color, -1, cv2.LINE_AA, _SHIFT)
        _arrow(image, pupil[:2], pupil[:2] + length * direction[:2], color, thickness)
    return image


def draw_pose_axes(image: np.ndarray, rotation: np.ndarray, origin: np.ndarray, length: float,
                   thickness: int = 1, colors: Sequence[Color] = AXIS_COLORS) -> np.ndarray:  # fmt: skip
    """Draw the head's x (right), y (down) and forward (``-z``, out of the face) axes from ``origin (2+,)``."""
    rotation = _np(rotation)
    origin = _np(origin)[:2]
    axes = (rotation[:, 0], rotation[:, 1], -rotation[:, 2])  # columns of R: the head's axes in the camera frame
    # Draw the axis pointing away from the viewer first, so the nearer ones stay on top.
    for k in sorted(range(3), key=lambda i: -axes[i][2]):
        _arrow(image, origin, origin + length * axes[k][:2], colors[k], thickness)
    return image


def draw_cues(
    image: np.ndarray,
    landmarks: np.ndarray,
    pupils: np.ndarray | None = None,
    gaze_vectors: np.ndarray | None = None,
    rotation: np.ndarray | None = None,
    translation: np.ndarray | None = None,
    scale: float | np.ndarray | None = None,
    color: Color = LANDMARK_COLOR,
    draw: Sequence[str] = ("landmarks", "gaze", "pose"),
    thickness: int | None = None,
) -> np.ndarray:
    """Draw one frame's cues on a copy of ``image`` ``(H, W, 3)`` uint8.

    Args:
        image: the frame the cues' pixel coordinates refer to.
        landmarks: ``(68, 2+)`` pixels.
        pupils: ``(2, 2)`` pixels (gaze arrows start there; eye contour centres when ``None``).
        gaze_vectors: ``(2, 3)`` camera-frame unit directions.
        rotation: ``(3, 3)`` head rotation (pose axes).
        translation: ``(3,)`` pixels, the axes' origin (landmark centroid when ``None``).
        scale: pixels per canonical unit (arrow lengths; the outer-eye-corner distance when ``None``).
        color: landmark colour.
        draw: which of ``landmarks``, ``gaze``, ``pose`` to draw.
        thickness: line width in pixels (default: grows with the image size).

    Returns:
        uint8 ``(H, W, 3)``.
    """
    out = np.ascontiguousarray(np.array(image, dtype=np.uint8, copy=True))
    landmarks = _np(landmarks)
    width = thickness or max(1, round(min(out.shape[:2]) / 200))
    unit = float(_np(scale)) if scale is not None else float(np.linalg.norm(landmarks[45, :2] - landmarks[36, :2]))
    if "landmarks" in draw:
        draw_landmarks(out, landmarks, color, width)
    if "pose" in draw and rotation is not None:
        origin = _np(translation)[:2] if translation is not None else landmarks[:, :2].mean(0)
        draw_pose_axes(out, rotation, origin, 0.5 * unit, width + 1)
    if "gaze" in draw and gaze_vectors is not None:
        if pupils is None:
            pupils = np.stack([landmarks[36:42, :2].mean(0), landmarks[42:48, :2].mean(0)])
        draw_gaze(out, pupils, gaze_vectors, 1.0 * unit, GAZE_COLOR, width)
    return out


def upscale_frames(frames: np.ndarray, factor: int) -> np.ndarray:
    """Resize ``(T, H, W, 3)`` or ``(H, W, 3)`` uint8 by an integer ``factor`` (bilinear)."""
    if factor == 1:
        return frames
    single = frames.ndim == 3
    batch = frames[None] if single else frames
    height, width = batch.shape[1:3]
    out = np.stack([cv2.resize(f, (width * factor, height * factor), interpolation=cv2.INTER_LINEAR) for f in batch])
    return out[0] if single else out


def auto_upscale(side: int, target: int = 256) -> int:
    """The integer factor that brings ``side`` pixels to at least ``target`` (1 when already there)."""
    return max(1, int(np.ceil(target / max(side, 1))))


def annotate_frames(
    frames: np.ndarray,
    track: CueTrack,
    upscale: int = 1,
    color: Color = LANDMARK_COLOR,
    draw: Sequence[str] = ("landmarks", "gaze", "pose"),
    labels: Sequence[str] | None = None,
) -> np.ndarray:
    """Draw ``track`` over every frame.

    Args:
        frames: ``(T', H, W, 3)`` uint8; frame ``t`` of the track goes over ``frames[min(t, T' - 1)]``
            (a single frame serves as a still background).
        track: cues of ``T`` frames in the pixels of ``frames``.
        upscale: integer resize of the frames before drawing (thin lines on small crops).
        color: landmark colour.
        draw: which of ``landmarks``, ``gaze``, ``pose`` to draw.
        labels: optional text per frame (top-left corner).

    Returns:
        ``(T, H * upscale, W * upscale, 3)`` uint8.
    """
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    scaled = track.scaled(upscale) if upscale != 1 else track
    out = []
    for t in range(len(track)):
        base = upscale_frames(frames[min(t, len(frames) - 1)], upscale)
        image = draw_cues(base, color=color, draw=draw, **scaled.frame(t))
        if labels is not None:
            put_label(image, labels[t])
        out.append(image)
    return np.stack(out)


def put_label(image: np.ndarray, text: str, corner: tuple[int, int] = (4, 4)) -> np.ndarray:
    """Write ``text`` (white on a dark box) at the top-left ``corner`` of ``image`` in place; returns it."""
    if not text:
        return image
    font_scale = max(0.3, min(image.shape[:2]) / 700)
    (width, height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
    x, y = corner
    cv2.rectangle(image, (x - 2, y - 2), (x + width + 2, y + height + baseline), (0, 0, 0), -1)
    cv2.putText(image, text, (x, y + height), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255), 1, cv2.LINE_AA)
    return image


def pick_frames(count: int, wanted: int) -> np.ndarray:
    """``min(count, wanted)`` evenly spaced frame indices from ``0`` to ``count - 1``."""
    wanted = max(1, min(count, wanted))
    return np.unique(np.round(np.linspace(0, count - 1, wanted)).astype(int))


def image_grid(images: Sequence[np.ndarray] | np.ndarray, columns: int | None = None, pad: int = 2,
               pad_color: Color = (255, 255, 255)) -> np.ndarray:  # fmt: skip
    """Tile equally sized ``(H, W, 3)`` uint8 images into one ``(rows * (H + pad) + pad, ...)`` image.

    Args:
        images: ``N`` images (or an ``(N, H, W, 3)`` array).
        columns: images per row (default: all in one row).
        pad: pixels between and around the tiles.
        pad_color: colour of the padding.
    """
    images = [np.asarray(image, dtype=np.uint8) for image in images]
    if not images:
        raise ValueError("image_grid needs at least one image")
    height, width = images[0].shape[:2]
    columns = max(1, min(columns or len(images), len(images)))
    rows = -(-len(images) // columns)
    grid = np.empty((rows * (height + pad) + pad, columns * (width + pad) + pad, 3), dtype=np.uint8)
    grid[:] = np.asarray(pad_color, dtype=np.uint8)
    for index, image in enumerate(images):
        if image.shape[:2] != (height, width):
            raise ValueError(f"image {index} is {image.shape[:2]}, the first is {(height, width)}")
        r, c = divmod(index, columns)
        y, x = pad + r * (height + pad), pad + c * (width + pad)
        grid[y : y + height, x : x + width] = image
    return grid


def even_frames(frames: np.ndarray) -> np.ndarray:
    """Pad ``(T, H, W, 3)`` frames with one black row/column where H or W is odd (H.264 yuv420p)."""
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if not (pad_h or pad_w):
        return frames
    return np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)))
