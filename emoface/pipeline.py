"""Inference of the whole method: a face photo + speech -> a talking-face video, from three checkpoints.

    pipeline = TalkingFacePipeline.from_checkpoints("s2l.ckpt", "l2k.ckpt")   # renderer named by l2k
    photo = pipeline.prepare_photo(load_image("face.png"), make_backend("dlib"))
    speech = load_speech("speech.wav")
    cues = pipeline.cues(speech, photo, emotion="happy", level=3, seed=0)    # stage 1 + relocation
    frames = pipeline.frames(photo, cues)                                     # stage 2 + renderer

The photo is cropped as preprocessing crops MEAD (:func:`~emoface.preprocessing.features.stable_crop_box`
around its landmarks), at the renderer's side; its landmarks, head pose and gaze are estimated as
preprocessing estimates them and become stage 1's reference face and stage 2's source. Stage 1 runs
free over the whole speech (any length); its relocated landmarks, in the crop pixels of stage 1's
training data, are normalised to the crop (pixels / (side / 2) - 1), which is how stage 2 reads
them whatever side either stage was trained at. The renderer draws ``batch_size`` frames per call
from one encoding of the source. Used by ``emoface generate``, the benchmark and notebooks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emoface.emotions import EMOTIONS, emotion_index, levels_of
from emoface.preprocessing.features import CropBox

SAMPLE_RATE = 16000
FPS = 25
SYSTEMS = {"network.": "SpeechToLandmarks", "mapper.": "LandmarksToKeypoints", "generator.": "FaceRenderer"}
"""State-dict key prefix -> the system whose checkpoint it is."""


class PipelineError(ValueError):
    """An input the pipeline cannot use; the message names the file or value and the reason."""


# ----------------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------------
def read_checkpoint(path: str | Path, role: str) -> dict[str, Any]:
    """Load a Lightning checkpoint's dictionary on the CPU.

    Args:
        path: the ``.ckpt`` file.
        role: what it should be (``"stage 1 (--s2l)"`` ...), for the messages.

    Raises:
        PipelineError: missing, unreadable or not a Lightning checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: {role} checkpoint not found")
    try:
        try:
            # Only the keys are needed here: memory-mapped, no tensor data is read (the systems'
            # load_from_checkpoint reads the weights once, afterwards). weights_only: a checkpoint
            # from elsewhere cannot run code.
            checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # a legacy (pre-zip) file cannot be memory-mapped
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any failure to read is the same message
        raise PipelineError(f"{path}: unreadable {role} checkpoint ({type(error).__name__}: {error})") from error
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise PipelineError(f"{path}: not a Lightning checkpoint (no state_dict); expected the {role} checkpoint")
    return checkpoint


def checkpoint_system(checkpoint: dict[str, Any]) -> str:
    """Which emoface system wrote a checkpoint (by its weights' names), or ``"unknown"``."""
    keys = list(checkpoint["state_dict"])
    for prefix, system in SYSTEMS.items():
        if any(key.startswith(prefix) for key in keys):
            return system
    return "unknown"


def expect_system(path: str | Path, expected: str, role: str) -> dict[str, Any]:
    """Read ``path`` and check it is a checkpoint of ``expected``; returns the checkpoint dictionary."""
    checkpoint = read_checkpoint(path, role)
    found = checkpoint_system(checkpoint)
    if found != expected:
        raise PipelineError(
            f"{path}: a {found} checkpoint was given as the {role} checkpoint, which must be a {expected} one"
        )
    return checkpoint


def data_size(checkpoint: dict[str, Any], default: int = 256) -> int:
    """The crop side the checkpoint's system was trained at (its data module's ``size``)."""
    datamodule = checkpoint.get("datamodule_hyper_parameters") or {}
    return int(datamodule.get("size", default))


def resolve_device(device: str) -> torch.device:
    """``"auto"`` (CUDA when present) or a torch device string."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise PipelineError(f"unknown device {device!r} ({error})") from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise PipelineError(f"device {device!r} asked for, but CUDA is not available here")
    return resolved


# ----------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------
def load_image(path: str | Path) -> np.ndarray:
    """An image file as RGB uint8 ``(H, W, 3)``; a transparent photo (RGBA, LA, or a palette
    with a transparent colour) is composited over white, not shown with the colours its
    transparent pixels happen to hold.

    Raises:
        PipelineError: missing or unreadable.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: image not found")
    try:
        with Image.open(path) as image:
            if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
                rgba = image.convert("RGBA")
                white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"), dtype=np.uint8).copy()
            return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError) as error:
        raise PipelineError(f"{path}: unreadable image ({error})") from error


@dataclass
class Speech:
    """Speech resampled to 16 kHz mono, cut to whole 25 fps frames.

    Attributes:
        waveform: float32 ``(T * 640,)``.
        features: float32 ``(4T, 39)`` audio features at 100 Hz (as preprocessing computes them).
        num_frames: ``T``.
        source: where it came from (for messages).
    """

    waveform: np.ndarray
    features: np.ndarray
    num_frames: int
    source: str = ""


def load_speech(path: str | Path, silence_rms: float = 1e-4) -> Speech:
    """Decode any audio (or video) file FFmpeg reads, resample to 16 kHz mono as preprocessing does.

    Raises:
        PipelineError: missing, unreadable, shorter than one frame, or silent (RMS below ``silence_rms``).
    """
    from emoface.io.media import MediaError, read_audio
    from emoface.preprocessing.features import audio_features

    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: audio not found")
    try:
        wave = read_audio(path, sample_rate=SAMPLE_RATE)
    except MediaError as error:
        raise PipelineError(f"{path}: unreadable audio ({error.reason})") from error
    per_frame = SAMPLE_RATE // FPS
    num_frames = len(wave) // per_frame
    if num_frames < 1:
        raise PipelineError(f"{path}: audio too short ({len(wave) / SAMPLE_RATE:.3f} s; one frame is {1 / FPS:.2f} s)")
    wave = wave[: num_frames * per_frame]
    rms = float(np.sqrt(np.mean(np.square(wave, dtype=np.float64))))
    if rms < silence_rms:
        raise PipelineError(f"{path}: the audio is silent (RMS {rms:.2e}); a talking face needs speech")
    return Speech(wave, audio_features(wave, SAMPLE_RATE, num_frames, FPS), num_frames, str(path))


def check_emotion(emotion: str, level: int) -> tuple[int, int]:
    """``(emotion index, level)`` of an emotion name or 3-letter code and an intensity level.

    Raises:
        PipelineError: naming the valid emotions, or the valid levels of that emotion.
    """
    try:
        index = emotion_index(emotion)
    except ValueError as error:
        raise PipelineError(str(error)) from error
    valid = levels_of(EMOTIONS[index])
    if level not in valid:
        raise PipelineError(
            f"level {level} is not a level of {EMOTIONS[index]!r}; expected one of {', '.join(map(str, valid))}"
        )
    return index, level


@dataclass
class FacePhoto:
    """A photo's face, cropped and measured as preprocessing does for a MEAD frame.

    Attributes:
        crop: uint8 ``(S, S, 3)`` the crop at the renderer's side ``S``.
        landmarks: float32 ``(68, 3)`` in crop pixels.
        normalized_landmarks: ``(68, 3)`` pose removed (canonical frame).
        rotation, translation, scale: head pose ``(3, 3)``, ``(3,)`` pixels, ``()``.
        gaze: ``(2, 2)`` per-eye (yaw, pitch) degrees.
        box: the crop box in the photo's pixels.
        face_box: ``(5,)`` the detected face (x1, y1, x2, y2, score) in the photo's pixels.
        faces_found: how many faces the photo has (the largest is used).
    """

    crop: np.ndarray
    landmarks: np.ndarray
    normalized_landmarks: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    scale: np.ndarray
    gaze: np.ndarray
    box: CropBox
    face_box: np.ndarray
    faces_found: int

    def relocated(self) -> np.ndarray:
        """``(70, 3)`` the photo's relocated points (68 posed landmarks + 2 pupils), crop pixels."""
        from emoface.geometry.relocation import relocate

        cues = (self.normalized_landmarks, self.gaze, self.rotation, self.translation, self.scale)
        return relocate(*(torch.from_numpy(np.asarray(v, dtype=np.float32)) for v in cues)).points.numpy()


def largest_face(image: np.ndarray, backend: Any) -> tuple[Any | None, int]:
    """The largest face of a photo (:class:`~emoface.preprocessing.backends.DetectedFace`, or ``None``)
    and how many faces the photo has; only the largest one's landmarks are computed."""
    if not hasattr(backend, "face_boxes"):
        raise PipelineError(f"the landmark backend {getattr(backend, 'name', backend)!r} cannot find faces in a photo; "
                            "use dlib or face_alignment")  # fmt: skip
    boxes = backend.face_boxes(image)
    if not len(boxes):
        return None, 0
    return backend.faces(image, boxes=boxes[:1])[0], len(boxes)


def measure_face(image: np.ndarray, face: Any, size: int, faces_found: int = 1) -> FacePhoto:
    """Crop a detected face at ``size`` and estimate its pose and gaze (preprocessing's own functions)."""
    from emoface.preprocessing.features import crop_frames, estimate_pose, landmarks_to_crop, stable_crop_box
    from emoface.preprocessing.gaze import estimate_gaze

    landmarks = np.asarray(face.landmarks, dtype=np.float32)[None]  # (1, 68, 3) photo pixels
    box = stable_crop_box(landmarks, size)
    crop = crop_frames(image[None], box)
    crop_landmarks = landmarks_to_crop(landmarks, box)
    pose = estimate_pose(crop_landmarks)
    gaze = estimate_gaze(crop, crop_landmarks, pose["rotation"], pose["translation"], pose["scale"])
    return FacePhoto(
        crop=crop[0], landmarks=crop_landmarks[0], normalized_landmarks=pose["normalized_landmarks"][0],
        rotation=pose["rotation"][0], translation=pose["translation"][0], scale=pose["scale"][0],
        gaze=gaze["gaze"][0], box=box, face_box=np.asarray(face.box), faces_found=faces_found,
    )  # fmt: skip


def pose_from_video(path: str | Path, backend: Any, num_frames: int) -> dict[str, np.ndarray]:
    """Head motion of a video's largest face, relative to its first frame, for ``num_frames`` frames.

    The video is read at 25 fps; a shorter video is played back and forth (no jump at the loop),
    a longer one is cut.

    Returns:
        ``rotation`` ``(T, 3, 3)`` relative to frame 0, ``translation`` ``(T, 3)`` change of the head
        position in units of the head's scale, ``scale`` ``(T,)`` ratio to frame 0.

    Raises:
        PipelineError: unreadable video, or no face in it.
    """
    from emoface.io.media import MediaError, iter_video_chunks
    from emoface.preprocessing.features import ClipFailure, drop_stray_faces, estimate_pose, fill_gaps

    try:
        landmarks, found = backend.landmarks_from_chunks(iter_video_chunks(path, fps=FPS))
    except MediaError as error:
        raise PipelineError(f"{path}: unreadable video ({error.reason})") from error
    if len(found) == 0 or not found.any():
        raise PipelineError(f"{path}: no face found in the --pose-from video")
    try:
        # A frame whose detector took something else for the face (far from where the face mostly
        # is) would move every frame's pose, all being relative to frame 0: fill it instead.
        landmarks = fill_gaps(landmarks, drop_stray_faces(landmarks, found), max_gap=len(found), max_missing=0.5)
    except ClipFailure as failure:
        raise PipelineError(f"{path}: too few frames with a face for --pose-from ({failure.reason})") from failure
    pose = estimate_pose(landmarks)
    order = np.arange(num_frames) % max(1, 2 * len(found) - 2) if len(found) > 1 else np.zeros(num_frames, int)
    order = np.where(order < len(found), order, 2 * len(found) - 2 - order)
    rotation = pose["rotation"][order]
    relative = np.einsum("tij,kj->tik", rotation, pose["rotation"][0])  # R_t R_0^T
    translation = (pose["translation"][order] - pose["translation"][0]) / pose["scale"][0]
    return {"rotation": relative.astype(np.float32), "translation": translation.astype(np.float32),
            "scale": (pose["scale"][order] / pose["scale"][0]).astype(np.float32)}  # fmt: skip


# ----------------------------------------------------------------------------------------------
# The pipeline
# ----------------------------------------------------------------------------------------------
class TalkingFacePipeline:
    """Stage 1, relocation, stage 2 and the renderer, for one photo and one speech at a time.

    Args:
        s2l: a :class:`~emoface.lightning_modules.SpeechToLandmarks` system.
        l2k: a :class:`~emoface.lightning_modules.LandmarksToKeypoints` system (with its renderer).
        s2l_size: crop side of stage 1's training data (its landmarks' pixels).
        render_size: the renderer's image side.
        device: where everything runs.
        batch_size: frames per renderer call.
        autocast_dtype: e.g. ``torch.bfloat16`` for the renderer on a GPU.
    """

    def __init__(
        self,
        s2l: Any,
        l2k: Any,
        s2l_size: int = 256,
        render_size: int = 256,
        device: str | torch.device = "cpu",
        batch_size: int = 8,
        autocast_dtype: torch.dtype | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.s2l = s2l.eval().to(self.device)
        self.l2k = l2k.eval().to(self.device)
        self.s2l_size = int(s2l_size)
        self.render_size = int(render_size)
        self.renderer = self.l2k.inference_renderer(batch_size=batch_size, autocast_dtype=autocast_dtype).to(
            self.device
        )
        self._check_compatible()

    def _check_compatible(self) -> None:
        renderer_kp = self.renderer.num_kp
        mapper_kp = self.l2k.mapper.num_kp
        mapper_scale = getattr(self.l2k.mapper, "scale", False)
        if renderer_kp != mapper_kp or mapper_scale != self.renderer.has_scale:
            raise PipelineError(
                f"the stage-2 mapper predicts {mapper_kp} keypoints{' and a scale' if mapper_scale else ''} but the "
                f"{self.renderer.family} renderer has {renderer_kp}{' and a scale' if self.renderer.has_scale else ''}; "
                "use the renderer (family) the stage-2 checkpoint was trained with"
            )

    @classmethod
    def from_checkpoints(
        cls,
        s2l: str | Path,
        l2k: str | Path,
        renderer: str | Path | None = None,
        device: str = "auto",
        batch_size: int = 8,
        precision: str = "32",
    ) -> TalkingFacePipeline:
        """Load the three checkpoints (the renderer: ``renderer`` or the one ``l2k`` names).

        Args:
            precision: ``"32"`` or ``"bf16"`` (renderer autocast; meant for GPUs).

        Raises:
            PipelineError: a missing, unreadable or wrong-kind checkpoint (named), or a renderer
                that does not fit the stage-2 mapper.
        """
        from emoface.io.weights import MissingWeightsError
        from emoface.lightning_modules import LandmarksToKeypoints, SpeechToLandmarks

        s2l_checkpoint = expect_system(s2l, "SpeechToLandmarks", "stage-1 (--s2l)")
        l2k_checkpoint = expect_system(l2k, "LandmarksToKeypoints", "stage-2 (--l2k)")
        if renderer is not None:
            found = (
                checkpoint_system(read_checkpoint(renderer, "renderer (--renderer)"))
                if str(renderer).endswith(".ckpt")
                else None
            )
            if found not in (None, "FaceRenderer"):
                raise PipelineError(
                    f"{renderer}: a {found} checkpoint was given as the renderer (--renderer) checkpoint"
                )
        if precision not in ("32", "bf16"):
            raise PipelineError(f"unknown precision {precision!r}; expected 32 or bf16")
        resolved = resolve_device(device)
        # The stage-1 system's frozen critic is not needed to generate (its weights are in the checkpoint).
        s2l_system = SpeechToLandmarks.load_from_checkpoint(s2l, map_location="cpu", emotion_classifier_checkpoint=None)
        overrides = {} if renderer is None else {"renderer_checkpoint": str(renderer)}
        l2k_system = LandmarksToKeypoints.load_from_checkpoint(l2k, map_location="cpu", **overrides)
        try:
            l2k_system.load_renderer()
        except (MissingWeightsError, FileNotFoundError) as error:
            raise PipelineError(f"the renderer of {l2k}: {error}") from error
        except (RuntimeError, ValueError) as error:  # weights that do not fit the networks, or the mapper
            raise PipelineError(
                f"the renderer {l2k_system.hparams.renderer_checkpoint} does not fit: {error}"
            ) from error
        return cls(
            s2l_system, l2k_system, s2l_size=data_size(s2l_checkpoint), render_size=data_size(l2k_checkpoint),
            device=resolved, batch_size=batch_size, autocast_dtype=torch.bfloat16 if precision == "bf16" else None,
        )  # fmt: skip

    # ------------------------------------------------------------------------------------------
    def prepare_photo(self, image: np.ndarray, backend: Any) -> FacePhoto:
        """The largest face of ``image`` (RGB uint8), cropped at the renderer's side.

        Raises:
            PipelineError: no face.
        """
        face, count = largest_face(image, backend)
        if face is None:
            raise PipelineError("no face found in the image")
        return measure_face(image, face, self.render_size, faces_found=count)

    @torch.no_grad()
    def cues(
        self,
        speech: Speech,
        photo: FacePhoto,
        emotion: str,
        level: int = 3,
        seed: int = 0,
        pose: dict[str, np.ndarray] | None = None,
    ) -> dict[str, np.ndarray]:
        """Stage 1 over the whole speech, the photo as the reference face, then relocation.

        Args:
            pose: head motion to use instead of stage 1's (:func:`pose_from_video`), applied to
                the photo's own pose.

        Returns:
            the arrays of a stage-1 prediction file (docs/data_format.md) in crop pixels of
            stage 1's side (``size``), ``T`` = ``speech.num_frames``.
        """
        from emoface.geometry.relocation import relocate
        from emoface.geometry.rotations import matrix_to_euler

        emotion_id, level = check_emotion(emotion, level)
        factor = self.s2l_size / self.render_size  # the photo's crop in stage 1's pixels
        device = self.device
        batch = {
            "audio": torch.from_numpy(speech.features).to(device)[None],
            "emotion": torch.tensor([emotion_id], device=device),
            "level": torch.tensor([level], device=device),
            "ref_landmarks": torch.from_numpy(photo.landmarks * factor).to(device)[None],
            "ref_normalized_landmarks": torch.from_numpy(photo.normalized_landmarks).to(device)[None],
        }
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            out = self.s2l.generate(batch, seed=seed)
        rotation, translation, scale = out.rotation[0], out.translation[0], out.scale[0]
        if pose is not None:
            # The photo's pose moved as the video's head moves (rotation, position in head units, size).
            photo_rotation = torch.from_numpy(photo.rotation).to(device)
            rotation = torch.from_numpy(pose["rotation"]).to(device) @ photo_rotation
            photo_scale = float(photo.scale) * factor
            translation = torch.from_numpy(photo.translation * factor).to(device) + torch.from_numpy(
                pose["translation"]).to(device) * photo_scale  # fmt: skip
            scale = torch.from_numpy(pose["scale"]).to(device) * photo_scale
        relocated = relocate(out.normalized_landmarks[0], out.gaze[0], rotation, translation, scale)
        arrays = {
            "normalized_landmarks": out.normalized_landmarks[0], "gaze": out.gaze[0], "rotation": rotation,
            "euler": matrix_to_euler(rotation), "translation": translation, "scale": scale,
            "relocated": relocated.points, "gaze_vectors": relocated.gaze_vectors,
        }  # fmt: skip
        arrays = {key: value.float().cpu().numpy() for key, value in arrays.items()}
        arrays.update(emotion=np.str_(EMOTIONS[emotion_id]), level=np.int64(level), start=np.int64(0),
                      fps=np.int64(FPS), size=np.int64(self.s2l_size), clip=np.str_(Path(speech.source).stem))  # fmt: skip
        return arrays

    def frames(
        self, photo: FacePhoto, cues: dict[str, np.ndarray], progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """Stage 2 and the renderer: uint8 frames ``(T, S, S, 3)`` of the photo driven by ``cues``
        (all in memory; long speech: :meth:`iter_frames`)."""
        return np.concatenate(list(self.iter_frames(photo, cues, progress=progress)))

    @torch.inference_mode()
    def iter_frames(
        self, photo: FacePhoto, cues: dict[str, np.ndarray], progress: Callable[[int], None] | None = None
    ) -> Iterator[np.ndarray]:
        """Stage 2 and the renderer, ``batch_size`` frames at a time: uint8 chunks ``(t, S, S, 3)``
        as they are rendered, so a caller that encodes them holds one batch, whatever the length.

        Args:
            progress: called with the number of frames of each rendered chunk.
        """
        from emoface.lightning_modules.landmarks_to_keypoints import normalise_points

        points = normalise_points(torch.from_numpy(cues["relocated"]), int(cues.get("size", self.s2l_size)))
        source_points = normalise_points(torch.from_numpy(photo.relocated()), self.render_size)
        source_image = torch.from_numpy(photo.crop).permute(2, 0, 1)
        renderer = self.renderer
        source = renderer.prepare_source(source_image)
        device = renderer.device
        # (T, K, 3) keypoints of every frame: small; the frames are made batch by batch
        _, keypoints = self.l2k.map_keypoints(
            points.to(device).float().unsqueeze(0), source_points.to(device).float().unsqueeze(0),
            source.kp_canonical, source.estimate,
        )  # fmt: skip
        keypoints = keypoints[0]
        for start in range(0, keypoints.shape[0], renderer.batch_size):
            frames = renderer.render(source, keypoints[start : start + renderer.batch_size])  # (t, 3, S, S)
            yield (frames.permute(0, 2, 3, 1).float().cpu().numpy() * 255.0).round().astype(np.uint8)
            if progress is not None:
                progress(frames.shape[0])


__all__ = [
    "FacePhoto", "PipelineError", "Speech", "TalkingFacePipeline", "check_emotion", "checkpoint_system",
    "largest_face", "load_image", "load_speech", "measure_face", "pose_from_video", "read_checkpoint",
]  # fmt: skip
