"""Landmark backends: where the 68 3D landmarks of each frame come from.

* ``face_alignment`` (real data): the face-alignment package (S3FD detector, 3D-FAN-4 and the
  depth network, ``LandmarksType.THREE_D``), frames batched through the networks, on the GPU
  when there is one. Weights are never downloaded by emoface: they must already be in the torch
  hub cache under face-alignment's own file names (see :func:`face_alignment_weight_files`).
* ``dlib`` (real data, weights installable offline): dlib's HOG face detector and its 68-point
  shape predictor (``shape_predictor_68_face_landmarks.dat`` from the ``face-recognition-models``
  package), 2D points lifted to 3D with the mean face's depth (:mod:`emoface.geometry.lifting`).
  The predictor was trained on iBUG 300-W, whose licence excludes commercial use.
* ``groundtruth`` (mini-MEAD): the generator's landmarks from the clip's sidecar.

``auto`` (:func:`default_backend`) is face_alignment when its weights are in the torch hub cache,
else dlib when its weight file is installed.

A backend returns landmarks in the pixels of the decoded (source) frames plus a per-frame
"face found" flag; gap filling, crop, pose and gaze are done by the pipeline.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from emoface.io.arrays import load_npz
from emoface.preprocessing.features import ClipFailure
from emoface.preprocessing.layout import ClipSpec

BACKENDS = ("face_alignment", "dlib", "groundtruth")


class FaceAlignmentWeightsError(FileNotFoundError):
    """face-alignment's weight files are not in the torch hub cache.

    Attributes:
        folder: where the files go (``$TORCH_HOME/hub/checkpoints``).
        missing: file name -> download URL of each missing file.
    """

    def __init__(self, folder: Path, missing: dict[str, str]) -> None:
        self.folder = folder
        self.missing = missing
        lines = "\n".join(f"  {name}  (from {url})" for name, url in missing.items())
        super().__init__(
            f"face-alignment weights missing from {folder}:\n{lines}\n"
            f"Put these files in that folder (or set TORCH_HOME to a folder whose hub/checkpoints holds "
            f"them); emoface never downloads weights itself."
        )


def face_alignment_weight_files() -> dict[str, str]:
    """File name -> URL of the weights the installed face-alignment loads for 3D landmarks.

    Read from the package itself (``face_alignment.api.models_urls`` and the S3FD detector's
    ``models_urls``), so the names follow the installed version (1.5: ``3DFAN4-7835d9f11d.pth.tar``,
    ``depth-2a464da4ea.pth.tar``, ``s3fd-619a316812.pth``).
    """
    from face_alignment import api
    from face_alignment.detection.sfd import sfd_detector

    urls = [api.models_urls["3DFAN-4"], api.models_urls["depth"], sfd_detector.models_urls["s3fd"]]
    return {os.path.basename(urlparse(url).path): url for url in urls}


def face_alignment_weights_dir() -> Path:
    """The folder face-alignment reads its weights from: ``torch.hub.get_dir()/checkpoints``."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def check_face_alignment_weights() -> Path:
    """Raise :class:`FaceAlignmentWeightsError` naming every missing file; return the folder."""
    folder = face_alignment_weights_dir()
    missing = {name: url for name, url in face_alignment_weight_files().items() if not (folder / name).is_file()}
    if missing:
        raise FaceAlignmentWeightsError(folder, missing)
    return folder


def resolve_device(device: str) -> str:
    """``"auto"`` -> ``"cuda"`` when a GPU is present, else ``"cpu"``; other values unchanged."""
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class GroundTruthBackend:
    """Landmarks from mini-MEAD's ground-truth sidecar (no detector)."""

    name = "groundtruth"
    needs_frames = False

    def landmarks(self, clip: ClipSpec, num_frames: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(T, 68, 3)`` landmarks and ``(T,)`` found flags (the first ``num_frames`` when given).

        Raises:
            ClipFailure: no sidecar, or a sidecar shorter than the video.
        """
        if not Path(clip.groundtruth).is_file():
            raise ClipFailure("no ground-truth sidecar (the groundtruth backend needs mini-MEAD)")
        landmarks = load_npz(clip.groundtruth)["landmarks"].astype(np.float32)
        if num_frames is not None:
            if len(landmarks) < num_frames:
                raise ClipFailure(f"ground truth has {len(landmarks)} frames, the video {num_frames}")
            landmarks = landmarks[:num_frames]
        return landmarks, np.ones(len(landmarks), dtype=bool)


class FaceAlignmentBackend:
    """3D landmarks with the face-alignment package, frames batched through its networks.

    Per chunk of frames: S3FD detection in one batch (on frames downscaled so their longer side
    is at most ``detect_size``), the largest face per frame, then one batched forward of FAN
    (plus its horizontally flipped input, as face-alignment does) and one of the depth network
    over all faces of the chunk. The post-processing (heat-map maxima, sub-pixel refinement,
    depth scaling) is face-alignment's own code, so the result equals
    ``FaceAlignment.get_landmarks_from_image`` frame by frame.

    Args:
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"`` ...
        batch_size: faces per network forward.
        detect_size: longer image side for detection (``0``: full resolution).
        flip_input: average with the flipped input (face-alignment's default).

    Raises:
        FaceAlignmentWeightsError: when its weight files are not in the torch hub cache.
    """

    name = "face_alignment"
    needs_frames = True

    def __init__(self, device: str = "auto", batch_size: int = 16, detect_size: int = 640, flip_input: bool = True):
        import face_alignment

        check_face_alignment_weights()
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.detect_size = detect_size
        self.model = face_alignment.FaceAlignment(
            face_alignment.LandmarksType.THREE_D,
            device=self.device,
            flip_input=flip_input,
            face_detector="sfd",
            compile=False,
        )

    def detect(self, frames: np.ndarray) -> list[np.ndarray | None]:
        """Largest face box ``(5,)`` (x1, y1, x2, y2, score) per frame, ``None`` where there is none."""
        import torch

        _, height, width, _ = frames.shape
        factor = 1.0
        if self.detect_size and max(height, width) > self.detect_size:
            factor = self.detect_size / max(height, width)
        batch = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
        if factor != 1.0:
            size = (round(height * factor), round(width * factor))
            batch = torch.nn.functional.interpolate(batch, size=size, mode="bilinear", antialias=True)
        boxes: list[np.ndarray | None] = []
        for found in self.model.face_detector.detect_from_batch(batch):
            if len(found) == 0:
                boxes.append(None)
                continue
            found = np.asarray(found, dtype=np.float64)
            areas = (found[:, 2] - found[:, 0]) * (found[:, 3] - found[:, 1])
            best = found[int(np.argmax(areas))].copy()
            best[:4] /= factor
            boxes.append(best)
        return boxes

    def face_boxes(self, image: np.ndarray) -> np.ndarray:
        """Face boxes ``(N, 5)`` float32 (x1, y1, x2, y2, score) of one RGB uint8 image, largest first."""
        import torch

        image = np.ascontiguousarray(np.asarray(image, dtype=np.uint8)[..., :3])
        height, width = image.shape[:2]
        factor = 1.0
        if self.detect_size and max(height, width) > self.detect_size:
            factor = self.detect_size / max(height, width)
        batch = torch.from_numpy(image).permute(2, 0, 1)[None].float()
        if factor != 1.0:
            size = (round(height * factor), round(width * factor))
            batch = torch.nn.functional.interpolate(batch, size=size, mode="bilinear", antialias=True)
        found = np.asarray(self.model.face_detector.detect_from_batch(batch)[0], dtype=np.float64).reshape(-1, 5)
        found[:, :4] /= factor
        found = found.astype(np.float32)
        areas = (found[:, 2] - found[:, 0]) * (found[:, 3] - found[:, 1])
        return found[np.argsort(-areas, kind="stable")]

    def faces(self, image: np.ndarray, boxes: np.ndarray | None = None) -> list[DetectedFace]:
        """The faces of one RGB uint8 image ``(H, W, 3)`` with their 3D landmarks, largest box first.

        Args:
            boxes: ``(N, 5)`` the boxes to measure (e.g. the first of :meth:`face_boxes`); default: all.
        """
        image = np.ascontiguousarray(np.asarray(image, dtype=np.uint8)[..., :3])
        boxes = self.face_boxes(image) if boxes is None else np.asarray(boxes, dtype=np.float32).reshape(-1, 5)
        if not len(boxes):
            return []
        # face-alignment's crop maths needs Python-float-compatible (float64) box values.
        landmarks = self.landmarks_for_boxes(np.repeat(image[None], len(boxes), 0), list(boxes.astype(np.float64)))
        return [DetectedFace(box=box, landmarks=points, landmarks_2d=points[:, :2].copy())
                for box, points in zip(boxes, landmarks)]  # fmt: skip

    def landmarks_for_boxes(self, frames: np.ndarray, boxes: list[np.ndarray]) -> np.ndarray:
        """3D landmarks ``(N, 68, 3)`` of one given box per frame (``frames`` uint8 ``(N, H, W, 3)``)."""
        import torch
        from face_alignment import utils as fa_utils

        fa = self.model
        centers, scales, crops = [], [], []
        for frame, box in zip(frames, boxes):
            center = np.array([box[2] - (box[2] - box[0]) / 2.0, box[3] - (box[3] - box[1]) / 2.0])
            center[1] = center[1] - (box[3] - box[1]) * fa_utils.CENTER_Y_OFFSET
            scale = (box[2] - box[0] + box[3] - box[1]) / fa.face_detector.reference_scale
            centers.append(center)
            scales.append(scale)
            crops.append(fa_utils.crop(frame, center, scale).transpose((2, 0, 1)).astype(np.float32) / 255.0)
        inputs = torch.from_numpy(np.stack(crops))
        out = np.zeros((len(crops), fa_utils.NUM_LANDMARKS, 3), dtype=np.float32)
        res = fa_utils.CROP_RESOLUTION
        with torch.no_grad():
            for start in range(0, len(crops), self.batch_size):
                chunk = inputs[start : start + self.batch_size].to(fa.device, dtype=fa.dtype)
                heat = fa.face_alignment_net(chunk)
                heat = (heat[-1] if isinstance(heat, list) else heat).detach()
                if fa.flip_input:
                    flipped = fa.face_alignment_net(fa_utils.flip(chunk))
                    flipped = flipped[-1] if isinstance(flipped, list) else flipped
                    heat = heat + fa_utils.flip(flipped.detach(), is_label=True)
                heat_np = heat.to(device="cpu", dtype=torch.float32).numpy()
                depth_inputs, pts_all = [], []
                for k in range(len(chunk)):
                    i = start + k
                    pts, pts_img, _ = fa_utils.get_preds_fromhm(heat_np[k : k + 1], centers[i], scales[i])
                    pts = torch.from_numpy(pts).view(fa_utils.NUM_LANDMARKS, 2) * 4
                    pts_img = torch.from_numpy(pts_img).view(fa_utils.NUM_LANDMARKS, 2)
                    maps = np.zeros((fa_utils.NUM_LANDMARKS, res, res), dtype=np.float32)
                    for j in range(fa_utils.NUM_LANDMARKS):
                        if pts[j, 0] > 0 and pts[j, 1] > 0:
                            maps[j] = fa_utils.draw_gaussian(maps[j], pts[j], 2)
                    depth_inputs.append(torch.from_numpy(maps))
                    pts_all.append(pts_img)
                maps = torch.stack(depth_inputs).to(fa.device, dtype=fa.dtype)
                depth = fa.depth_prediciton_net(torch.cat((chunk, maps), 1)).detach()
                depth = depth.to(device="cpu", dtype=torch.float32).view(len(chunk), fa_utils.NUM_LANDMARKS, 1)
                for k in range(len(chunk)):
                    i = start + k
                    z = depth[k] * (1.0 / (res / (fa_utils.SCALE_FACTOR * scales[i])))
                    out[i] = torch.cat((pts_all[k], z), 1).numpy()
        return out

    def landmarks_from_chunks(self, chunks: Iterable[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Landmarks ``(T, 68, 3)`` (zeros where no face) and found flags ``(T,)`` of a chunked video."""
        all_landmarks, all_found = [], []
        for frames in chunks:
            boxes = self.detect(frames)
            found = np.array([box is not None for box in boxes], dtype=bool)
            landmarks = np.zeros((len(frames), 68, 3), dtype=np.float32)
            if found.any():
                index = np.flatnonzero(found)
                landmarks[index] = self.landmarks_for_boxes(frames[index], [boxes[i] for i in index])
            all_landmarks.append(landmarks)
            all_found.append(found)
        if not all_landmarks:
            return np.zeros((0, 68, 3), dtype=np.float32), np.zeros(0, dtype=bool)
        return np.concatenate(all_landmarks), np.concatenate(all_found)


# ----------------------------------------------------------------------------------------------
# dlib
# ----------------------------------------------------------------------------------------------
DLIB_PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"
DLIB_PREDICTOR_ENV = "EMOFACE_DLIB_PREDICTOR"
DLIB_LICENCE_NOTE = (
    "dlib's 68-point predictor was trained on the iBUG 300-W data set, whose licence excludes "
    "commercial use."
)


class DlibWeightsError(FileNotFoundError):
    """dlib's 68-point shape predictor file is not where emoface looks for it.

    Attributes:
        path: the file looked for.
    """

    def __init__(self, path: Path, reason: str = "") -> None:
        self.path = path
        super().__init__(
            f"dlib shape predictor {DLIB_PREDICTOR_FILE} not found at {path}{reason}.\n"
            f"Install it with `pip install face-recognition-models` (it ships the file), or set "
            f"{DLIB_PREDICTOR_ENV} to the path of a copy of {DLIB_PREDICTOR_FILE}; emoface never downloads "
            f"weights itself. {DLIB_LICENCE_NOTE}"
        )


def dlib_predictor_path() -> Path:
    """Where the 68-point predictor is looked for.

    ``$EMOFACE_DLIB_PREDICTOR`` when set, else ``models/shape_predictor_68_face_landmarks.dat`` in
    the installed ``face_recognition_models`` package (located without importing it: its
    ``__init__`` needs ``pkg_resources``, which recent setuptools no longer ship).
    """
    override = os.environ.get(DLIB_PREDICTOR_ENV)
    if override:
        return Path(override).expanduser()
    from importlib.util import find_spec

    spec = find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return Path("face_recognition_models (not installed)") / "models" / DLIB_PREDICTOR_FILE
    return Path(list(spec.submodule_search_locations)[0]) / "models" / DLIB_PREDICTOR_FILE


def check_dlib_weights(path: str | os.PathLike | None = None) -> Path:
    """Return the predictor file; raise :class:`DlibWeightsError` naming it when it is missing."""
    target = Path(path) if path is not None else dlib_predictor_path()
    if not target.is_file():
        raise DlibWeightsError(target)
    return target


_DLIB_MODELS: dict[str, object] = {}


def _load_dlib_predictor(path: Path):
    """The shape predictor of ``path``, loaded once per process (parsing the 100 MB file takes seconds)."""
    import dlib

    key = str(path.resolve())
    if key not in _DLIB_MODELS:
        try:
            _DLIB_MODELS[key] = dlib.shape_predictor(key)
        except RuntimeError as error:  # a truncated or foreign file
            raise DlibWeightsError(path, f" (unreadable: {error})") from error
    return _DLIB_MODELS[key]


@dataclass(frozen=True)
class DetectedFace:
    """One face of an image.

    Attributes:
        box: ``(5,)`` float32 x1, y1, x2, y2, detector score (pixels of the image).
        landmarks: ``(68, 3)`` float32 iBUG-68 points: x, y in image pixels, z depth in pixel units.
        landmarks_2d: ``(68, 2)`` float32 the detector's own x, y (equal to ``landmarks[:, :2]``).
    """

    box: np.ndarray
    landmarks: np.ndarray
    landmarks_2d: np.ndarray

    @property
    def area(self) -> float:
        return float((self.box[2] - self.box[0]) * (self.box[3] - self.box[1]))


class DlibBackend:
    """dlib's HOG face detector and 68-point shape predictor, 2D points lifted to 3D.

    Detection runs on the image downscaled so that its longer side is at most ``detect_size``,
    upsampled ``upsample`` times inside dlib (``"auto"``: the fewest doublings, at most 2, that
    bring the shorter side to 256 px: dlib's HOG detector misses faces under about 80 px). The
    predictor runs on the full-resolution image. Landmarks get z from the mean face fitted to the
    2D points (:func:`emoface.geometry.lifting.lift_landmarks`): the depth of identity and
    expression is the mean face's.

    The predictor was trained on iBUG 300-W, whose licence excludes commercial use.

    Args:
        predictor_path: the ``.dat`` file (default: :func:`dlib_predictor_path`).
        upsample: dlib's upsampling count for detection, or ``"auto"``.
        detect_size: longer image side for detection (``0``: full resolution).
        min_score: detections scoring at or below this are dropped (dlib's own default is 0).
        lift: ``"orthographic"`` or ``"similarity"`` (see :mod:`emoface.geometry.lifting`).

    Raises:
        DlibWeightsError: the predictor file is missing or unreadable.
    """

    name = "dlib"
    needs_frames = True

    def __init__(
        self,
        predictor_path: str | os.PathLike | None = None,
        upsample: int | str = "auto",
        detect_size: int = 640,
        min_score: float = 0.0,
        lift: str = "orthographic",
    ) -> None:
        import dlib

        from emoface.geometry.lifting import LIFT_METHODS

        if lift not in LIFT_METHODS:
            raise ValueError(f"unknown lifting method {lift!r}; expected one of {', '.join(LIFT_METHODS)}")
        if upsample != "auto" and (not isinstance(upsample, int) or upsample < 0):
            raise ValueError(f"upsample must be 'auto' or an int >= 0, got {upsample!r}")
        self.predictor_path = check_dlib_weights(predictor_path)
        self.predictor = _load_dlib_predictor(self.predictor_path)
        self.detector = dlib.get_frontal_face_detector()
        self.upsample = upsample
        self.detect_size = detect_size
        self.min_score = min_score
        self.lift = lift

    def _upsample_for(self, height: int, width: int) -> int:
        if self.upsample != "auto":
            return int(self.upsample)
        times, side = 0, min(height, width)
        while side < 256 and times < 2:
            side, times = side * 2, times + 1
        return times

    @staticmethod
    def _as_rgb(image: np.ndarray) -> np.ndarray:
        image = np.asarray(image)
        if image.dtype != np.uint8:
            raise ValueError(f"expected a uint8 image, got {image.dtype}")
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, -1)
        if image.ndim != 3 or image.shape[-1] not in (3, 4):
            raise ValueError(f"expected an (H, W, 3) RGB image, got shape {image.shape}")
        return np.ascontiguousarray(image[..., :3])

    def detect(self, image: np.ndarray) -> np.ndarray:
        """Face boxes ``(N, 5)`` float32 (x1, y1, x2, y2, score) of an RGB uint8 image, largest first."""
        import cv2

        image = self._as_rgb(image)
        height, width = image.shape[:2]
        factor = 1.0
        if self.detect_size and max(height, width) > self.detect_size:
            factor = self.detect_size / max(height, width)
            small = (max(1, round(width * factor)), max(1, round(height * factor)))
            image = cv2.resize(image, small, interpolation=cv2.INTER_AREA)
        rects, scores, _ = self.detector.run(image, self._upsample_for(*image.shape[:2]), self.min_score)
        boxes = np.array(
            [[r.left(), r.top(), r.right() + 1, r.bottom() + 1, s] for r, s in zip(rects, scores) if s > self.min_score],
            dtype=np.float64,
        ).reshape(-1, 5)
        boxes[:, :4] /= factor
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        return boxes[np.argsort(-areas, kind="stable")].astype(np.float32)

    def landmarks_2d(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        """The predictor's 68 points ``(68, 2)`` float32 (pixels) in ``box`` (x1, y1, x2, y2, ...)."""
        import dlib

        image = self._as_rgb(image)
        x1, y1, x2, y2 = (int(round(float(v))) for v in box[:4])
        shape = self.predictor(image, dlib.rectangle(x1, y1, x2 - 1, y2 - 1))
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)

    def face_boxes(self, image: np.ndarray) -> np.ndarray:
        """Face boxes ``(N, 5)`` float32 (x1, y1, x2, y2, score) of one RGB uint8 image, largest first."""
        return self.detect(image)

    def faces(self, image: np.ndarray, boxes: np.ndarray | None = None) -> list[DetectedFace]:
        """The faces of one RGB uint8 image ``(H, W, 3)``, largest box first (empty: no face).

        Each face has its box, its 68 points lifted to 3D and the predictor's 2D points.

        Args:
            boxes: ``(N, 5)`` the boxes to measure (e.g. the first of :meth:`face_boxes`); default: all.
        """
        from emoface.geometry.lifting import lift_landmarks

        image = self._as_rgb(image)
        found = []
        for box in self.detect(image) if boxes is None else np.asarray(boxes, dtype=np.float32).reshape(-1, 5):
            points = self.landmarks_2d(image, box)
            found.append(DetectedFace(box=box, landmarks=lift_landmarks(points, self.lift), landmarks_2d=points))
        return found

    def landmarks_from_chunks(self, chunks: Iterable[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Landmarks ``(T, 68, 3)`` (zeros where no face) and found flags ``(T,)`` of a chunked video.

        The largest face of each frame, as the face_alignment backend does.
        """
        from emoface.geometry.lifting import lift_landmarks

        points, found = [], []
        for frames in chunks:
            for frame in frames:
                boxes = self.detect(frame)
                found.append(len(boxes) > 0)
                points.append(self.landmarks_2d(frame, boxes[0]) if len(boxes) else np.zeros((68, 2), np.float32))
        if not points:
            return np.zeros((0, 68, 3), dtype=np.float32), np.zeros(0, dtype=bool)
        flags = np.array(found, dtype=bool)
        landmarks = np.zeros((len(points), 68, 3), dtype=np.float32)
        if flags.any():
            landmarks[flags] = lift_landmarks(np.stack(points)[flags], self.lift)
        return landmarks, flags


def default_backend() -> str:
    """``face_alignment`` when its weights are in the torch hub cache, else ``dlib`` when its predictor
    file is installed, else ``face_alignment`` (whose missing-weights error then says what to do)."""
    try:
        check_face_alignment_weights()
        return "face_alignment"
    except FaceAlignmentWeightsError:
        pass
    except ImportError:
        pass
    try:
        check_dlib_weights()
        import dlib  # noqa: F401
    except (DlibWeightsError, ImportError):
        return "face_alignment"
    return "dlib"


def make_stand_in_weights(folder: str | os.PathLike, seed: int = 0) -> list[Path]:
    """Write random-init stand-ins of face-alignment's weight files (for offline tests and benchmarks).

    face-alignment's own networks (FAN-4, ResNetDepth, S3FD) are saved the way the real files are
    (a plain FAN state dict; ``{"state_dict": {"module.*": ...}}`` for the depth net; a plain S3FD
    state dict) under the file names the installed version fetches. The S3FD face-score biases are
    raised so that every frame yields a face box. Landmarks from these are meaningless; the code
    path and the compute cost are the real ones.

    Returns:
        the written files.
    """
    import torch
    from face_alignment.detection.sfd.net_s3fd import s3fd
    from face_alignment.models import FAN, ResNetDepth

    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    names = face_alignment_weight_files()
    fan_name = next(name for name in names if name.startswith("3DFAN4"))
    depth_name = next(name for name in names if name.startswith("depth"))
    sfd_name = next(name for name in names if name.startswith("s3fd"))
    torch.manual_seed(seed)
    torch.save(FAN(4).state_dict(), target / fan_name)
    depth = ResNetDepth().state_dict()
    torch.save({"state_dict": {f"module.{key}": value for key, value in depth.items()}}, target / depth_name)
    detector = s3fd()
    with torch.no_grad():
        for name, module in detector.named_modules():
            if name.endswith("mbox_conf") and isinstance(module, torch.nn.Conv2d):
                module.weight.mul_(0.01)
                module.bias.zero_()
                module.bias[-1] = 5.0  # the face channel (the last one) wins everywhere
    torch.save(detector.state_dict(), target / sfd_name)
    return [target / fan_name, target / depth_name, target / sfd_name]


Backend = GroundTruthBackend | FaceAlignmentBackend | DlibBackend


def make_backend(name: str, device: str = "auto", batch_size: int = 16) -> Backend:
    """Instantiate a backend by name (see :data:`BACKENDS`; ``"auto"``: :func:`default_backend`)."""
    if name == "auto":
        name = default_backend()
    if name == "dlib":
        return DlibBackend()
    if name == "groundtruth":
        return GroundTruthBackend()
    if name == "face_alignment":
        return FaceAlignmentBackend(device=device, batch_size=batch_size)
    raise ValueError(f"unknown backend {name!r}; expected one of {', '.join(BACKENDS)}")
