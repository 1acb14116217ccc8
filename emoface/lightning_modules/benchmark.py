"""``Benchmark``: the MEAD table, methods x metrics, from a test loop (``emoface test``).

The protocol (recorded in ``protocol.json`` with every result):

* **Frames**: each method's video is decoded at 25 fps (other rates are resampled and counted
  as ``wrong_rate``); with ``crop: ground_truth`` it is resized to the cache's crop size (OpenCV
  ``INTER_AREA`` when shrinking), with ``crop: own`` warped from its own size.
* **Alignment** for the image and landmark metrics: both videos are resampled to the shorter
  length by evenly spaced indices (EAT's evaluation). LSE uses the method's frames at their own
  timing, because the method was driven by the audio at that timing.
* **Every video aligned by its own face** (``crop: own``, the default): landmarks are detected on
  each row's own frames (the ground truth's included) at their own size; per frame a similarity
  (skimage's estimate) of points 27-47 (nose and eyes) onto the template, smoothed over time,
  then stabilised with the video's own pixels (each crop registered to its median crop) and
  placed by the landmarks re-detected on the steady crops (:meth:`Benchmark._own_alignment`);
  cut at ``image_size`` (PSNR, SSIM, LPIPS, FID, LMD: 128) and ``sync_size`` (SyncNet, emotion:
  224). Frames without a face are interpolated (or dropped, ``no_face: drop``); a video with a face
  in fewer than ``min_face_coverage`` of its frames is ``no_face`` (counted in its row). Any
  framing (size, letterbox, zoom, offset) gives the same crop of the same face.
  ``crop: ground_truth`` (formerly ``aligned``) cuts every row with the ground truth's per-frame
  warp, for reconstructions that share the cache's framing; ``box`` is syncnet_python's box rule;
  ``none`` whole frames. ``configs/benchmark/eat.yaml`` is EAT's protocol (its template, clips,
  skimage warp, drop rule, mean-centred LMD, torchvision FID).
* **FID**: ``fid_frames`` evenly spaced crops per video (``None``: all frames), real set = the
  ground-truth clips' crops, pytorch-fid's InceptionV3 (or torchvision's, ``fid_network``) and
  Frechet distance, its matrix square roots on rank 0 only.
* **LSE**: the ground-truth audio (default) or the method's own track (``audio: own``).
* **Emotion accuracy**: one prediction per video (all its crops); the target is the emotion of
  the clip the file name names; classifier outputs are mapped to EMOTIONS by label name.
* **M-LMD / F-LMD, pose and gaze error**, in the ``image_size`` crop's pixels: ``landmarks:
  cache`` takes the ground truth's from the preprocessed cache and a method's from an ``.npz``
  sidecar; a detector (``dlib``, ``face_alignment``, ``auto``) runs on every row's image crops,
  the ground truth's included (EAT detects with dlib on its 128 crops), only frames with a face
  in both count. Pose is the Umeyama fit and gaze the image estimate of the preprocessing, both
  computed alike for the ground truth and the method.
* **Sanity rows**: ``ground_truth`` (PSNR inf: identical) and ``source_frame`` (the clip's first
  frame held still), whose image and landmark metrics skip that first frame, the ground truth's
  own, so its figures are those of a still face against the moving one.
* **Ground-truth cache**: the ground-truth side (crops, landmarks, pose, gaze, FID features) is
  computed once per clip and kept on disk under a hash of every setting it depends on
  (:meth:`Benchmark.gt_settings`) and stamped with the clip file's size and time, so adding a
  method costs only its videos and a changed protocol never reads stale entries.

A metric whose evaluator cannot be loaded (missing weight file) is ``n/a`` with the reason in
every row; a clip a method lacks, cannot be decoded, is too short or shows no face is counted and
named in ``report.md``, and results.md shows each row's clips as scored / expected.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import zipfile
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor, nn
from torchmetrics import Metric

from emoface.datamodules.mead import user_cache_root
from emoface.datamodules.method_videos import evenly_spaced
from emoface.emotions import EMOTIONS
from emoface.metrics import build_fid_inception
from emoface.metrics import functional as MF
from emoface.metrics.face_crop import (
    ALIGN_POINTS,
    EAT_ALIGN_POINTS,
    TEMPLATE_EYE_DISTANCE,
    TEMPLATES,
    alignment_matrices,
    box_matrices,
    compose,
    crop_template,
    face_boxes,
    fill_missing_matrices,
    register_to_median,
    rescale_matrices,
    similarity_to_template,
    smooth_matrices,
    transform_points,
    warp_faces,
    warp_faces_skimage,
)

log = logging.getLogger(__name__)

SCALARS: tuple[tuple[str, str, str], ...] = (
    # (key, column title, better direction: "up", "down" or "zero")
    ("psnr", "PSNR", "up"),
    ("ssim", "SSIM", "up"),
    ("lpips", "LPIPS", "down"),
    ("lse_c", "LSE-C", "up"),
    ("lse_d", "LSE-D", "down"),
    ("offset", "AV offset", "zero"),
    ("emotion_acc", "Emo-Acc", "up"),
    ("m_lmd", "M-LMD", "down"),
    ("f_lmd", "F-LMD", "down"),
    ("pose", "Pose err", "down"),
    ("gaze", "Gaze err", "down"),
)
ARROWS = {"up": "↑", "down": "↓", "zero": "→0"}
UNITS = {"psnr": "dB", "offset": "frames", "m_lmd": "px", "f_lmd": "px", "pose": "°", "gaze": "°"}
"""Units shown in the table's header (LMD: pixels of the ``image_size`` crop; offset: 25 fps frames)."""
ROW_COUNTS = ("method", "clips", "expected", "missing", "unreadable", "too_short", "no_face", "wrong_rate",
              "face_frames", "face_frames_searched")  # fmt: skip
"""Per-row counts reported in protocol.json and results.csv."""
METRIC_GROUPS = {  # config name -> scalar keys it produces
    "psnr": ("psnr",),
    "ssim": ("ssim",),
    "lpips": ("lpips",),
    "fid": (),
    "lse": ("lse_c", "lse_d", "offset"),
    "emotion": ("emotion_acc",),
    "lmd": ("m_lmd", "f_lmd"),
    "pose": ("pose",),
    "gaze": ("gaze",),
}
STATUSES = ("ok", "missing", "unreadable", "too_short", "no_face")
CROPS = ("own", "ground_truth", "box", "none")
CROP_ALIASES = {"aligned": "ground_truth"}
"""Older names of crop modes (``aligned`` was the ground-truth warp before every video was aligned by its own face)."""
NO_FACE_RULES = ("interpolate", "drop")
WARPS = ("opencv", "skimage")
FID_NETWORKS = ("pytorch_fid", "torchvision")
FID_NETWORK_NAMES = {
    "pytorch_fid": "pytorch-fid InceptionV3 pool3 (TF FID port)",
    "torchvision": "torchvision ImageNet InceptionV3 avgpool (EAT's FID; not comparable to pytorch-fid's)",
}
LANDMARK_SOURCES = ("cache", "dlib", "face_alignment", "auto")
GT_CACHE_VERSION = 2
"""Bumped whenever what the ground-truth cache stores, or how, changes (old folders are then unused)."""


class RowScores(Metric):
    """Sums and counts of one table row (per-clip scores, FID features, emotion hits), summed over ranks."""

    full_state_update = False

    def __init__(self, fid_dims: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        k = len(SCALARS)
        self.add_state("sums", torch.zeros(k, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("counts", torch.zeros(k, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("emo_correct", torch.zeros(len(EMOTIONS), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("emo_total", torch.zeros(len(EMOTIONS), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("status", torch.zeros(len(STATUSES) + 1, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("fid_sum", torch.zeros(fid_dims, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("fid_outer", torch.zeros(fid_dims, fid_dims, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("fid_count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        # frames where the alignment found a face, and frames looked at (own-face crop only)
        self.add_state("faces", torch.zeros(2, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, scores: dict[str, float], status: str, wrong_rate: bool = False,
               emotion: int | None = None, features: Tensor | None = None,
               faces: tuple[int, int] | None = None) -> None:  # fmt: skip
        """Add one clip: ``scores`` by :data:`SCALARS` key (absent or NaN: not scored); ``faces``:
        ``(frames with a face, frames searched)`` of its video."""
        for i, (key, _, _) in enumerate(SCALARS):
            value = scores.get(key)
            if value is not None and not math.isnan(value):  # inf is a score (PSNR of a copy)
                self.sums[i] += value
                self.counts[i] += 1
        self.status[STATUSES.index(status.split(":")[0])] += 1
        self.status[-1] += float(wrong_rate)
        if emotion is not None and "emotion_acc" in scores:
            self.emo_total[emotion] += 1
            self.emo_correct[emotion] += scores["emotion_acc"]
        if features is not None:
            feats = features.to(self.fid_sum.device, torch.float64)
            self.fid_sum += feats.sum(0)
            self.fid_outer += feats.T @ feats
            self.fid_count += feats.shape[0]
        if faces is not None:
            self.faces += torch.tensor(faces, dtype=torch.float64, device=self.faces.device)

    def compute(self) -> dict[str, Tensor]:
        return {name: getattr(self, name).clone() for name in self._defaults}


def smooth_tracks(landmarks: np.ndarray, found: np.ndarray, sigma: float) -> np.ndarray:
    """Landmark tracks ``(T, 68, D)`` low-passed over time (Gaussian of ``sigma`` frames, edges repeated);
    frames without a face (``found`` False) are bridged by linear interpolation first and stay
    unscored by the caller. ``sigma <= 0``: unchanged."""
    from scipy.ndimage import gaussian_filter1d

    points = np.asarray(landmarks, dtype=np.float32)
    found = np.asarray(found, dtype=bool)
    if sigma <= 0 or len(points) < 2 or not found.any():
        return points
    flat = points.reshape(len(points), -1).astype(np.float64)
    if not found.all():
        t = np.arange(len(points))
        flat = np.stack([np.interp(t, t[found], flat[found, j]) for j in range(flat.shape[1])], 1)
    return gaussian_filter1d(flat, sigma, axis=0, mode="nearest").reshape(points.shape).astype(np.float32)


def mean_centred_landmark_distance(preds: Tensor, target: Tensor) -> dict[str, Tensor]:
    """M-LMD and F-LMD as EAT's evaluation computes them, per video ``(B,)`` float64.

    Per frame, the mouth points 48-67 of each side are centred on their own mean, and all 68 points
    of each side on theirs (translation removed, scale kept: pixels); the mean Euclidean distance
    over the group's points; then the mean over frames. ``F-LMD`` here is over all 68 points (EAT's
    "face"), unlike :func:`emoface.metrics.functional.landmark_distance`'s 48 non-mouth points.

    Args:
        preds: ``(B, T, 68, D)`` landmarks (x, y used).
        target: ``(B, T, 68, D)``.
    """
    p, q = preds[..., :2].double(), target[..., :2].double()
    out = {}
    for key, points in (("m_lmd", list(range(48, 68))), ("f_lmd", list(range(68)))):
        a, b = p[..., points, :], q[..., points, :]
        a, b = a - a.mean(-2, keepdim=True), b - b.mean(-2, keepdim=True)
        out[key] = torch.linalg.vector_norm(a - b, dim=-1).mean(-1).mean(-1)
    return out


def gaussian_statistics(total: Tensor, outer: Tensor, count: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance from feature sums (as :class:`emoface.metrics.FID`)."""
    mu = total.cpu().numpy() / count
    sigma = (outer.cpu().numpy() - count * np.outer(mu, mu)) / (count - 1)
    return mu, sigma


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _module_digest(module: nn.Module) -> str:
    """sha256 of a network's parameters and buffers (identifies evaluators given directly, without a file)."""
    digest = hashlib.sha256()
    for key, value in sorted(module.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return "state_dict sha256:" + digest.hexdigest()


def _resize_frames(frames: Tensor, height: int, width: int) -> Tensor:
    """``(T, 3, h, w)`` uint8 -> ``(T, 3, height, width)`` with OpenCV (area when shrinking)."""
    import cv2

    if frames.shape[-2:] == (height, width):
        return frames
    interpolation = cv2.INTER_AREA if frames.shape[-1] > width else cv2.INTER_LINEAR
    images = frames.permute(0, 2, 3, 1).numpy()
    out = np.stack([cv2.resize(image, (width, height), interpolation=interpolation) for image in images])
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


class _Heartbeat:
    """Rank 0's progress line, ``benchmark: 3/50 clips (...), elapsed 0:01:40, ETA 0:26:00, now <clip> <row>``,
    printed by a daemon thread every ``every`` seconds, so a slow clip never leaves the log silent."""

    def __init__(self, shard: int, total: int, world: int, every: float) -> None:
        import threading
        import time

        self.shard, self.total, self.world, self.every = shard, total, world, every
        self.done, self.now, self.row = 0, "", ""
        self._start = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="benchmark-progress", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def advance(self) -> None:
        self.done += 1

    def line(self) -> str:
        import time

        from emoface.progress import format_seconds

        elapsed = time.perf_counter() - self._start
        eta = format_seconds(elapsed / self.done * (self.shard - self.done)) if self.done else "?"
        share = f" (rank 0's share of {self.total} clips over {self.world} ranks)" if self.world > 1 else ""
        now = f", now {self.now} {self.row}".rstrip() if self.now and self.done < self.shard else ""
        return (f"benchmark: {self.done}/{self.shard} clips done{share}, elapsed {format_seconds(elapsed)}, "
                f"ETA {eta}{now}")  # fmt: skip

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            print(self.line(), flush=True)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


class Benchmark(L.LightningModule):
    """MEAD benchmark over :class:`emoface.datamodules.method_videos.BenchmarkDataModule` (test loop only).

    Args:
        metrics: metric groups to compute among :data:`METRIC_GROUPS`.
        out_dir: where the table is written (default: ``<trainer.default_root_dir>/benchmark``).
        image_size: face crop side for PSNR, SSIM, LPIPS and FID.
        sync_size: face crop side for SyncNet and the emotion classifier (224 in both references).
        fid_frames: evenly spaced frames per video for FID; ``None``: every frame.
        min_coverage: a method video shorter than this fraction of the clip is ``too_short``.
        lmd_normalize: landmark normalisation of M-LMD / F-LMD (see ``LandmarkDistance``), or
            ``"mean_centred"``: EAT's (:func:`mean_centred_landmark_distance`; F-LMD over all 68 points).
        lmd_smooth: Gaussian sigma (frames) both landmark tracks (the method's and the ground
            truth's, alike) are smoothed with before M-LMD / F-LMD: a detector's per-frame jitter
            (about 1 px on 128 px crops) is not the method's error. 0: raw per-frame points (EAT's).
        lmd_detect_size: own crop with a detector for ``landmarks``: the side the aligned crop is
            warped to for that detector (its points then mapped to the ``image_size`` crop's pixels);
            ``None``: ``image_size`` itself (EAT: dlib on its 128 crops).
        fid_weights, lpips_weights, syncnet_weights, emotion_weights: weight files (``None``: the
            torch hub cache file of each).
        syncnet_args, emotion_args: constructor arguments of non-reference-sized evaluators.
        emotion_labels: class names of the classifier's outputs (default: the file's own).
        lpips_random_backbone: a random LPIPS backbone (plumbing tests only; numbers meaningless).
        fid_inception, syncnet, emotion_net: evaluator networks given directly (Python use).
        fid_dims: feature size of ``fid_inception`` (2048 for pytorch-fid's and torchvision's).
        fid_network: ``"pytorch_fid"`` (pytorch-fid's InceptionV3, the TF FID port) or
            ``"torchvision"`` (torchvision's ImageNet InceptionV3, EAT's; its FID is not comparable
            to pytorch-fid figures, and the table says which one ran).
        crop: ``"own"`` (default: every video, ground truth included, aligned by the landmarks
            detected on its own frames), ``"ground_truth"`` (the ground truth's per-frame warp cuts
            every row; reconstructions that share the cache's framing; ``"aligned"`` is its old
            name), ``"box"`` (syncnet_python's box rule from the ground truth's landmarks) or
            ``"none"`` (whole frames, resized; for caches whose frames are the very crops the
            evaluators were trained on).
        emotion_size: crop side for the emotion classifier (default: ``sync_size``).
        template_eye_distance: the mean-face template's outer-eye-corner distance as a fraction of its side.
        template: the alignment template, ``"mean_face"`` or ``"eat"`` (EAT's ``base_68``, see
            :func:`emoface.metrics.face_crop.crop_template`).
        align_points: landmark indices the similarity is fitted on (default: 27-47 for the mean
            face, 27-44 for EAT's template, as EAT slices ``[27:45]``).
        align_smooth: own crop: Gaussian sigma (frames) the per-frame similarities are smoothed with
            over time (0: none, EAT's).
        align_stabilise: own crop: refine the per-frame similarities with the video's own pixels
            (each crop registered to the video's median crop on the upper face, then the whole video
            put on the template by its time-averaged landmarks; :meth:`_own_alignment`). False:
            landmark fits only (EAT's).
        align_detector: own crop: the face detector of the alignment, ``"dlib"``,
            ``"face_alignment"`` or ``"auto"`` (face_alignment when its weights are cached, else dlib).
        no_face: own crop: frames where the detector finds no face are ``"interpolate"``d (their
            transform linearly interpolated from the nearest frames with a face, held at the
            ends; the frame is kept, so timing is intact) or ``"drop"``ped (EAT's rule; the video
            is shorter).
        min_face_coverage: own crop: a video with a face in fewer than this fraction of its
            frames is not scored (status ``no_face``; counted in the row).
        warp: own crop: ``"opencv"`` (warpAffine, bilinear, replicated border, ``INTER_AREA``
            pre-shrink where the warp shrinks) or ``"skimage"`` (``skimage.transform.warp``,
            bilinear, black outside the frame, no anti-aliasing: EAT's). The other crops use OpenCV.
        protocol_name: the protocol's name, printed over the table and in protocol.json.
        progress_seconds: rank 0 prints clips done / total with an ETA at least this often while
            testing (``None``: ``$EMOFACE_PROGRESS_SECONDS`` or 30; 0: never).
        landmarks: where M-LMD/F-LMD, pose and gaze landmarks come from: ``"cache"`` (ground truth:
            the preprocessed cache's; methods: an ``.npz`` sidecar) or a detector run on every
            row's image crops, ground truth included: ``"dlib"``, ``"face_alignment"``, ``"auto"``.
        landmark_detector: a detector object given directly (Python use; ``landmarks_from_chunks``).
        gt_cache: keep the ground-truth side (crops, landmarks, pose, gaze, FID features) on disk.
        gt_cache_dir: its folder (default ``$EMOFACE_CACHE/benchmark-gt``); one subfolder per
            setting hash (see :meth:`gt_settings`).
    """

    def __init__(
        self,
        metrics: list[str] = list(METRIC_GROUPS),  # noqa: B006 - jsonargparse needs a list default
        out_dir: str | None = None,
        image_size: int = 128,
        sync_size: int = 224,
        fid_frames: int | None = 5,
        min_coverage: float = 0.5,
        lmd_normalize: str = "none",
        lmd_smooth: float = 1.0,
        lmd_detect_size: int | None = 256,
        fid_weights: str | None = None,
        lpips_weights: str | None = None,
        syncnet_weights: str | None = None,
        syncnet_args: dict[str, Any] | None = None,
        emotion_weights: str | None = None,
        emotion_args: dict[str, Any] | None = None,
        emotion_labels: list[str] | None = None,
        lpips_random_backbone: bool = False,
        fid_inception: nn.Module | None = None,
        syncnet: nn.Module | None = None,
        emotion_net: nn.Module | None = None,
        fid_dims: int = 2048,
        crop: str = "own",
        emotion_size: int | None = None,
        template_eye_distance: float = TEMPLATE_EYE_DISTANCE,
        landmarks: str = "cache",
        landmark_detector: Any | None = None,
        gt_cache: bool = True,
        gt_cache_dir: str | None = None,
        fid_network: str = "pytorch_fid",
        template: str = "mean_face",
        align_points: list[int] | None = None,
        align_smooth: float = 1.0,
        align_detector: str = "auto",
        no_face: str = "interpolate",
        align_stabilise: bool = True,
        min_face_coverage: float = 0.5,
        warp: str = "opencv",
        protocol_name: str = "emoface",
        progress_seconds: float | None = None,
    ) -> None:
        super().__init__()
        unknown = [m for m in metrics if m not in METRIC_GROUPS]
        if unknown:
            raise ValueError(f"unknown metrics {unknown}; choose from {list(METRIC_GROUPS)}")
        self.save_hyperparameters(ignore=["fid_inception", "syncnet", "emotion_net", "landmark_detector"])
        self.metric_names = list(metrics)
        self.out_dir = out_dir
        self.image_size, self.sync_size = image_size, sync_size
        self.fid_frames, self.min_coverage, self.lmd_normalize = fid_frames, min_coverage, lmd_normalize
        self.fid_dims = fid_dims
        crop = CROP_ALIASES.get(crop, crop)
        for name, value, choices in (("crop", crop, CROPS), ("landmarks", landmarks, LANDMARK_SOURCES),
                                     ("template", template, TEMPLATES), ("no_face", no_face, NO_FACE_RULES),
                                     ("warp", warp, WARPS), ("fid_network", fid_network, FID_NETWORKS)):  # fmt: skip
            if value not in choices:
                raise ValueError(f"{name} must be one of {choices}, got {value!r}")
        if lmd_normalize not in (*MF.LANDMARK_NORMALIZATIONS, "mean_centred"):
            raise ValueError(f"lmd_normalize must be one of {(*MF.LANDMARK_NORMALIZATIONS, 'mean_centred')}, "
                             f"got {lmd_normalize!r}")  # fmt: skip
        if not 0.0 <= min_face_coverage <= 1.0:
            raise ValueError(f"min_face_coverage must be in [0, 1], got {min_face_coverage}")
        self.crop = crop
        self.template_name, self.no_face, self.warp_backend = template, no_face, warp
        default_points = EAT_ALIGN_POINTS if template == "eat" else ALIGN_POINTS
        self.align_points = tuple(int(i) for i in (align_points if align_points is not None else default_points))
        if not self.align_points or min(self.align_points) < 0 or max(self.align_points) > 67:
            raise ValueError(f"align_points must be iBUG-68 indices 0-67, got {align_points}")
        self.align_smooth, self.min_face_coverage = float(align_smooth), float(min_face_coverage)
        self.align_stabilise = bool(align_stabilise)
        self.lmd_smooth = float(lmd_smooth)
        self.lmd_detect_size = lmd_detect_size
        self.fid_network, self.protocol_name = fid_network, protocol_name
        from emoface.progress import progress_seconds as default_progress_seconds

        self.progress_seconds = default_progress_seconds() if progress_seconds is None else float(progress_seconds)
        self.emotion_size = emotion_size or sync_size
        self.template_eye_distance = template_eye_distance
        self.landmarks_mode = landmarks
        self.gt_cache, self.gt_cache_dir = gt_cache, gt_cache_dir
        self.gt_counts = {"decoded": 0, "cached": 0}
        self.unavailable: dict[str, str] = {}  # metric group -> why it is n/a
        self.weight_files: dict[str, str] = {}
        self.lpips = self._load("lpips", "lpips_alex", lpips_weights, lambda: self._build_lpips(lpips_weights,
                                lpips_random_backbone))  # fmt: skip
        fid_key = "fid_inception" if fid_network == "pytorch_fid" else "fid_inception_torchvision"
        self.inception = fid_inception or self._load(
            "fid", fid_key, fid_weights, lambda: self._build_inception(fid_network, fid_weights))
        self.syncnet = syncnet or self._load("lse", "syncnet", syncnet_weights, lambda: self._build_syncnet(
            syncnet_weights, syncnet_args))  # fmt: skip
        self.emotion_net = emotion_net or self._load("emotion", "emotion_fan", emotion_weights,
                                                     lambda: self._build_emotion(emotion_weights, emotion_args))  # fmt: skip
        self.detector, self.detector_identity = landmark_detector, None
        self._own_detector = landmark_detector is None
        if landmarks != "cache" and self._wants_landmarks():
            self._load_detector(landmarks, landmark_detector)
        self.align_detector_name = align_detector
        self.aligner, self.aligner_identity = None, None
        self._own_aligner = landmark_detector is None
        if crop == "own":
            self._load_aligner(align_detector, landmark_detector)
        self._memo: dict[tuple[Any, ...], tuple[np.ndarray, bool]] = {}
        self._heartbeat: _Heartbeat | None = None
        self.gt_counts_all = dict(self.gt_counts)
        labels = emotion_labels or getattr(self.emotion_net, "labels", None) or EMOTIONS
        self.emotion_labels = tuple(labels)
        for net in (self.lpips, self.inception, self.syncnet, self.emotion_net):
            if net is not None:
                net.eval().requires_grad_(False)
        self.rows = nn.ModuleDict()
        self.real_fid = RowScores(fid_dims)
        self._per_clip: list[dict[str, Any]] = []
        self.results: list[dict[str, Any]] = []

    # ------------------------------------------------------------------------------ evaluators
    @staticmethod
    def _build_lpips(weights: str | None, random_backbone: bool) -> nn.Module:
        from emoface.metrics import build_lpips

        return build_lpips("alex", weights, random_backbone)

    @staticmethod
    def _build_inception(network: str, weights: str | None) -> nn.Module:
        if network == "torchvision":
            from emoface.metrics.fid import build_torchvision_inception

            return build_torchvision_inception(weights)
        return build_fid_inception(weights)

    @staticmethod
    def _build_syncnet(weights: str | None, args: dict[str, Any] | None) -> nn.Module:
        from emoface.networks.syncnet import SyncNet

        return SyncNet.from_pretrained(weights, **(args or {}))

    @staticmethod
    def _build_emotion(weights: str | None, args: dict[str, Any] | None) -> nn.Module:
        from emoface.networks.emotion_fan import EmotionFAN

        return EmotionFAN.from_pretrained(weights, **(args or {}))

    def _load(self, group: str, key: str, path: str | None, build: Any) -> nn.Module | None:
        """Build an evaluator; a failure makes its metric group n/a with the reason (never a crash)."""
        if group not in self.metric_names:
            return None
        from emoface.io.weights import resolve_weights

        try:
            net = build()
        except (OSError, RuntimeError, KeyError, ValueError) as error:
            self.unavailable[group] = f"{type(error).__name__}: {str(error).splitlines()[0]}"
            return None
        if not (group == "lpips" and self.hparams.lpips_random_backbone):
            try:
                resolved = resolve_weights(key, path)
                self.weight_files[key] = f"{resolved} sha256:{_sha256(resolved)}"
            except (OSError, KeyError):
                pass
        return net

    def _load_detector(self, name: str, given: Any | None) -> None:
        """The landmark detector of every row; a failure makes lmd, pose and gaze n/a with the reason."""
        from emoface.preprocessing.backends import make_backend

        try:
            self.detector = given or make_backend(name, device="auto")
        except (OSError, ImportError, RuntimeError, ValueError) as error:
            for group in ("lmd", "pose", "gaze"):
                if group in self.metric_names:
                    self.unavailable[group] = f"{type(error).__name__}: {str(error).splitlines()[0]}"
            return
        self.landmarks_mode = getattr(self.detector, "name", name)
        identity: dict[str, Any] = {"backend": self.landmarks_mode, "class": type(self.detector).__name__}
        predictor = getattr(self.detector, "predictor_path", None)
        if predictor is not None:  # dlib: the shape predictor (iBUG 300-W, non-commercial licence)
            identity["weights"] = f"{predictor} sha256:{_sha256(Path(predictor))}"
        elif self.landmarks_mode == "face_alignment":
            from emoface.preprocessing.backends import face_alignment_weight_files, face_alignment_weights_dir

            folder = face_alignment_weights_dir()
            identity["weights"] = {n: f"sha256:{_sha256(folder / n)}" for n in face_alignment_weight_files()}
        for key in ("upsample", "detect_size", "min_score", "lift", "flip_input"):
            if hasattr(self.detector, key):
                identity[key] = getattr(self.detector, key)
        self.detector_identity = identity

    def _load_aligner(self, name: str, given: Any | None) -> None:
        """The face detector of the own-face crop (every row's frames, ground truth included).

        Raises:
            FileNotFoundError: its weights are missing (the message names the file); without a
                detector no row can be cropped, so this is an error, not an n/a.
        """
        from emoface.preprocessing.backends import default_backend, make_backend

        resolved = default_backend() if name == "auto" else name
        if given is not None:
            self.aligner = given
        elif self.detector is not None and getattr(self.detector, "name", None) == resolved:
            self.aligner = self.detector  # one detector object for both passes
        else:
            self.aligner = make_backend(resolved, device="auto")
        backend = getattr(self.aligner, "name", name)
        identity: dict[str, Any] = {"backend": backend, "class": type(self.aligner).__name__}
        predictor = getattr(self.aligner, "predictor_path", None)
        if predictor is not None:  # dlib: the shape predictor (iBUG 300-W, non-commercial licence)
            identity["weights"] = f"{predictor} sha256:{_sha256(Path(predictor))}"
        for key in ("upsample", "detect_size", "min_score", "flip_input"):
            if hasattr(self.aligner, key):
                identity[key] = getattr(self.aligner, key)
        self.aligner_identity = identity

    def __getstate__(self) -> dict[str, Any]:
        # A detector built here (dlib, face-alignment) may not pickle: spawned ranks build their own in setup.
        state = dict(super().__getstate__())
        if state.get("_own_detector"):
            state["detector"] = None
        if state.get("_own_aligner"):
            state["aligner"] = None
        state.pop("_heartbeat", None)
        return state

    def train(self, mode: bool = True) -> Benchmark:
        super().train(mode)
        for net in (self.lpips, self.inception, self.syncnet, self.emotion_net):
            if net is not None:
                net.eval()
        return self

    def enabled(self, group: str) -> bool:
        return group in self.metric_names and group not in self.unavailable

    # ------------------------------------------------------------------------------ loop
    def setup(self, stage: str) -> None:
        datamodule = self.trainer.datamodule
        self.row_names = list(datamodule.row_names)
        self.method_audio = {m.name: m.audio for m in datamodule.methods}
        for name in self.row_names:
            if name not in self.rows:
                self.rows[name] = RowScores(self.fid_dims)
        self.gt_counts = {"decoded": 0, "cached": 0}
        settings = self.gt_settings()
        self.gt_key = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]
        root = Path(self.gt_cache_dir) if self.gt_cache_dir else user_cache_root() / "benchmark-gt"
        self.gt_folder = root.expanduser() / self.gt_key
        if self.gt_cache:
            self.gt_folder.mkdir(parents=True, exist_ok=True)
            tmp = self.gt_folder / f"settings.{os.getpid()}.tmp"
            tmp.write_text(json.dumps(settings, indent=2, default=str))
            os.replace(tmp, self.gt_folder / "settings.json")  # ranks write the same file: atomically
        if self.detector is None and self.detector_identity is not None:  # unpickled in a spawned process
            self._load_detector(self.landmarks_mode, None)
        if self.crop == "own" and self.aligner is None:  # unpickled in a spawned process
            self._load_aligner(self.aligner_identity["backend"] if self.aligner_identity else self.align_detector_name,
                               None)  # fmt: skip

    def gt_settings(self) -> dict[str, Any]:
        """Every setting the cached ground-truth side depends on (its hash names the cache folder)."""
        dm = self.trainer.datamodule
        inception = None
        if self.enabled("fid"):
            inception = (self.weight_files.get("fid_inception") or self.weight_files.get("fid_inception_torchvision")
                         or _module_digest(self.inception))  # fmt: skip
        return {
            "version": GT_CACHE_VERSION,
            "mead_cache": str(Path(dm.cache_dir).expanduser().resolve()),
            "crop": self.crop, "template_eye_distance": self.template_eye_distance,
            "template": self.template_name, "align_points": list(self.align_points),
            "own": {"smooth": self.align_smooth, "no_face": self.no_face, "min_face_coverage": self.min_face_coverage,
                    "stabilise": self.align_stabilise,
                    "detector": self.aligner_identity} if self.crop == "own" else None,
            "warp": self.warp_backend, "image_size": self.image_size, "sync_size": self.sync_size,
            "emotion_size": self.emotion_size,
            "landmarks": self.landmarks_mode if self._wants_landmarks() else None,
            "detector": self.detector_identity if self._wants_landmarks() else None,
            "pose": self.enabled("pose") or self.enabled("gaze"), "gaze": self.enabled("gaze"),
            "fid": {"frames": self.fid_frames, "inception": inception, "dims": self.fid_dims,
                    "network": self.fid_network} if inception else None,
        }  # fmt: skip

    def _wants_landmarks(self) -> bool:
        return any(self.enabled(g) for g in ("lmd", "pose", "gaze"))

    def _gt_path(self, clip: str) -> Path:
        return self.gt_folder / f"{clip.replace('/', '_')}.npz"

    def _cut(self, frames: Tensor, matrices: np.ndarray, size: int) -> Tensor:
        """Face crops ``(len(matrices), 3, size, size)`` uint8 of ``frames (T or 1, 3, H, W)``, frame t with matrix t."""
        if self.crop == "none":  # whole frames resized as syncnet_python does
            out = frames if frames.shape[-1] == size else MF.reference_resize(frames, size)
            return out.expand(len(matrices), -1, -1, -1) if out.shape[0] == 1 else out
        border = "pad" if self.crop == "box" else "replicate"
        return warp_faces(frames, rescale_matrices(matrices, self.image_size, size), size, border)

    def _crop_matrices(self, landmarks: Tensor, height: int, width: int) -> np.ndarray:
        """``(T, 2, 3)`` frame -> ``image_size`` crop matrices from the ground truth's landmarks."""
        if self.crop == "aligned":
            return alignment_matrices(landmarks, self.image_size, self.template_eye_distance)
        if self.crop == "box":
            return box_matrices(face_boxes(landmarks), self.image_size)
        # "none": the whole frame resized (matrices only place landmarks in the crop).
        out = np.zeros((landmarks.shape[0], 2, 3))
        kx, ky = self.image_size / width, self.image_size / height
        out[:, 0, 0], out[:, 0, 2], out[:, 1, 1], out[:, 1, 2] = kx, 0.5 * kx - 0.5, ky, 0.5 * ky - 0.5
        return out

    def _detect(self, crops: Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Landmarks ``(T, 68, 3)`` float32 and found flags ``(T,)`` of image crops, by the configured detector."""
        return self._detect_frames(crops, self.detector)

    def _pose_gaze(self, crops: Tensor, landmarks: np.ndarray, found: np.ndarray) -> dict[str, np.ndarray]:
        """Head rotation ``(T, 3, 3)`` and gaze ``(T, 2, 2)`` (+ confidence ``(T, 2)``) from crop landmarks; frames
        without a face get the identity and zero confidence."""
        from emoface.preprocessing.features import estimate_pose
        from emoface.preprocessing.gaze import estimate_gaze

        t = len(landmarks)
        out = {"rotation": np.tile(np.eye(3, dtype=np.float32), (t, 1, 1)),
               "gaze": np.zeros((t, 2, 2), np.float32), "gaze_confidence": np.zeros((t, 2), np.float32)}  # fmt: skip
        if not found.any():
            return out
        pose = estimate_pose(landmarks[found])
        out["rotation"][found] = pose["rotation"]
        if self.enabled("gaze"):
            images = crops.permute(0, 2, 3, 1).numpy()[found]
            gaze = estimate_gaze(images, landmarks[found], pose["rotation"], pose["translation"], pose["scale"])
            out["gaze"][found], out["gaze_confidence"][found] = gaze["gaze"], gaze["gaze_confidence"]
        return out

    # ------------------------------------------------------------------------------ own-face alignment
    def _detect_frames(self, frames: Tensor, detector: Any) -> tuple[np.ndarray, np.ndarray]:
        """Landmarks ``(T, 68, 3)`` float32 (frame pixels) and found flags ``(T,)`` of ``frames (T, 3, H, W)``
        uint8 by ``detector``; identical frames (a row that copies another's pixels, a still frame)
        are detected once per clip."""
        images = frames.permute(0, 2, 3, 1).numpy()
        keys = [(id(detector), image.shape, hashlib.blake2b(image.tobytes(), digest_size=16).digest())
                for image in images]  # fmt: skip
        todo = list(dict.fromkeys(k for k in keys if k not in self._memo))
        if todo:
            first = {k: i for i, k in reversed(list(enumerate(keys)))}
            batch = np.stack([images[first[k]] for k in todo])
            landmarks, found = detector.landmarks_from_chunks([batch])
            for k, lm, ok in zip(todo, landmarks, found):
                self._memo[k] = (np.asarray(lm, np.float32), bool(ok))
        out = np.zeros((len(images), 68, 3), np.float32)
        flags = np.zeros(len(images), bool)
        for i, k in enumerate(keys):
            out[i], flags[i] = self._memo[k]
        return out, flags

    def _own_alignment(self, frames: Tensor) -> dict[str, Any]:
        """Crop matrices of a video aligned by the landmarks detected on its own frames.

        1. Per frame with a face, the similarity (skimage's estimate) of its points
           :attr:`align_points` onto the template; frames without one interpolated from their
           neighbours (or dropped: :attr:`no_face`); Gaussian smoothing over time (:attr:`align_smooth`).
        2. With :attr:`align_stabilise`: every crop registered to the video's median crop on the
           template's upper face (ECC), which removes the detector's per-frame jitter (about 1 px
           on 128 px crops of mini-MEAD's faces); then the landmarks are detected again on these
           steady crops (every video's face now at one size and place, where the detector's
           bias is alike for all) and one similarity for the whole video moves their time average
           onto the template, so the layout is still the template's and set by the face alone.

        Args:
            frames: ``(T, 3, H, W)`` uint8, any size.

        Returns:
            ``found`` (frames with a face), ``total`` (T), ``ok`` (coverage at least
            :attr:`min_face_coverage`); when ok, ``keep (K,)`` the frame indices kept and ``img``,
            ``sync``, ``emo`` ``(K, 2, 3)`` frame -> crop matrices at ``image_size``, ``sync_size``,
            ``emotion_size``.
        """
        landmarks, found = self._detect_frames(frames, self.aligner)
        total, count = len(found), int(found.sum())
        out: dict[str, Any] = {"found": count, "total": total,
                               "ok": count > 0 and count >= self.min_face_coverage * total}  # fmt: skip
        if not out["ok"]:
            return out
        keep = np.flatnonzero(found) if self.no_face == "drop" else np.arange(total)
        out["keep"] = keep
        template = crop_template(self.template_name, self.image_size, "image", self.template_eye_distance)
        matrices = np.zeros((total, 2, 3))
        matrices[found] = similarity_to_template(landmarks[found], template, self.align_points)
        matrices = smooth_matrices(fill_missing_matrices(matrices, found)[keep], self.align_smooth)
        if self.align_stabilise and len(keep) > 1:
            kept = frames[torch.from_numpy(keep)]
            upper = template[17:48]  # brows, nose, eyes: little speech or expression motion
            (x0, y0), (x1, y1) = np.floor(upper.min(0) - 4).astype(int), np.ceil(upper.max(0) + 4).astype(int)
            mask = np.zeros((self.image_size, self.image_size), np.uint8)
            mask[max(y0, 0) : y1, max(x0, 0) : x1] = 1
            crops = warp_faces(kept, matrices, self.image_size, antialias=True).permute(0, 2, 3, 1).numpy()
            matrices = compose(matrices, register_to_median(crops, mask))
            # The layout: landmarks detected again on the stabilised crops (every video's face at one
            # size and place, where the detector's bias is the same for all), averaged over time.
            steady = self._warp(kept, matrices, self.image_size)
            again, ok = self._detect_frames(steady, self.aligner)
            if ok.any():
                placed = again[ok][..., :2].mean(0)
            else:
                with_face = found[keep]
                placed = transform_points(landmarks[keep][with_face], matrices[with_face])[..., :2].mean(0)
            matrices = compose(matrices, similarity_to_template(placed[None], template, self.align_points)[0])
        out["img"] = matrices
        for key, size in (("sync", self.sync_size), ("emo", self.emotion_size)):
            # the same face layout at another size: the similarity from the image template to that one
            other = crop_template(self.template_name, size, "sync", self.template_eye_distance)
            step = similarity_to_template(template[None], other, range(68))[0]
            out[key] = compose(matrices, step)
        return out

    def _detect_aligned(self, frames: Tensor, matrices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Own crop: landmarks ``(T, 68, 3)`` in ``image_size`` crop pixels and found flags ``(T,)``, detected
        on the frames warped by ``matrices`` at :attr:`lmd_detect_size` (the same face layout, larger
        where it is larger than ``image_size``: the detector's points are then finer than the crop's
        pixels), mapped back to the ``image_size`` crop."""
        size = self.lmd_detect_size or self.image_size
        if size == self.image_size:
            return self._detect(self._warp(frames, matrices, size))
        landmarks, found = self._detect(self._warp(frames, rescale_matrices(matrices, self.image_size, size), size))
        k = self.image_size / size
        landmarks = landmarks.copy()
        landmarks[..., :2] = (landmarks[..., :2] + 0.5) * k - 0.5
        landmarks[..., 2:] *= k
        return landmarks, found

    def _warp(self, frames: Tensor, matrices: np.ndarray, size: int) -> Tensor:
        """Own crop: frame ``t`` (or the one frame) warped by ``matrices[t]`` into ``(len(matrices), 3, size, size)``."""
        if self.warp_backend == "skimage":
            return warp_faces_skimage(frames, matrices, size)
        return warp_faces(frames, matrices, size, "replicate", antialias=True)

    def _own_crops(self, frames: Tensor, alignment: dict[str, Any], picked: np.ndarray) -> dict[str, Tensor]:
        """Own crop of kept ``frames (K, 3, H, W)``: ``img`` at frames ``picked``, ``sync``/``emo`` at every frame."""
        crops = {"img": self._warp(frames[torch.from_numpy(picked)], alignment["img"][picked], self.image_size),
                 "sync": self._warp(frames, alignment["sync"], self.sync_size)}  # fmt: skip
        crops["emo"] = crops["sync"] if self.emotion_size == self.sync_size else self._warp(
            frames, alignment["emo"], self.emotion_size)  # fmt: skip
        return crops

    # ------------------------------------------------------------------------------ ground truth
    def ground_truth(self, item: dict[str, Any]) -> dict[str, Any]:
        """The clip's ground-truth side, from the on-disk cache or computed (and cached) from its frames.

        Returns:
            ``img (K, 3, S, S)``, ``sync``, ``emo`` crops (uint8 tensors) of the ``K`` frames kept
            (``keep (K,)``: all but, with ``no_face: drop``, those without a face), ``matrices
            (K, 2, 3)`` frame -> ``image_size`` crop, ``landmarks (K, 68, 3)`` in crop pixels and
            ``found (K,)`` (absent without landmark metrics), ``rotation``, ``gaze``,
            ``gaze_confidence`` (with pose/gaze), ``fid (k, D)`` float64 (with FID), ``source (3, H,
            W)`` its first kept frame, ``shape (H, W)``, ``faces (2,)`` frames with a face / frames
            (own crop; ``0, 0`` otherwise); ``no_face`` True (and no crops) when the ground truth's
            own face is found in too few frames to align it.
        """
        clip_file = Path(item["clip_path"])
        stat = clip_file.stat()
        stamp = f"{clip_file.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
        path = self._gt_path(item["clip"])
        if self.gt_cache and path.is_file():
            try:
                with np.load(path) as data:
                    arrays = {key: data[key] for key in data.files}
                if str(arrays.pop("stamp")) == stamp:
                    self.gt_counts["cached"] += 1
                    return self._gt_tensors(arrays)
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
                log.warning("ground-truth cache file %s unreadable (%s); recomputing it", path, error)
        from emoface.preprocessing.store import ClipFileCache

        frames = torch.from_numpy(ClipFileCache(capacity=1).get(clip_file).frames(0, int(item["num_frames"])))
        frames = frames.permute(0, 3, 1, 2).contiguous()
        self.gt_counts["decoded"] += 1
        h, w = frames.shape[-2:]
        arrays: dict[str, Any] = {"shape": np.array([h, w]), "faces": np.zeros(2, np.int64)}
        if self.crop == "own":
            alignment = self._own_alignment(frames)
            arrays["faces"] = np.array([alignment["found"], alignment["total"]])
            if not alignment["ok"]:
                arrays["no_face"] = np.array(True)
                return self._save_gt(path, stamp, arrays)
            keep = alignment["keep"]
            kept = frames[torch.from_numpy(keep)]
            crops = self._own_crops(kept, alignment, np.arange(len(keep)))
            matrices = alignment["img"]
        else:
            keep, kept = np.arange(frames.shape[0]), frames
            matrices = self._crop_matrices(item["landmarks"], h, w)
            crops = {"img": self._cut(frames, matrices, self.image_size),
                     "sync": self._cut(frames, matrices, self.sync_size)}  # fmt: skip
            crops["emo"] = crops["sync"] if self.emotion_size == self.sync_size else self._cut(
                frames, matrices, self.emotion_size)  # fmt: skip
        img = crops["img"]
        arrays |= {"img": img.numpy(), "sync": crops["sync"].numpy(), "emo": crops["emo"].numpy(),
                   "matrices": matrices, "keep": keep, "source": kept[0].numpy()}  # fmt: skip
        if self._wants_landmarks():
            if self.landmarks_mode == "cache":
                cached = np.asarray(item["landmarks"])[keep]
                landmarks, found = transform_points(cached, matrices), np.ones(len(matrices), bool)
            elif self.crop == "own":
                landmarks, found = self._detect_aligned(kept, matrices)
            else:
                landmarks, found = self._detect(img)
            arrays["landmarks"], arrays["found"] = landmarks, found
            if self.enabled("pose") or self.enabled("gaze"):
                arrays |= self._pose_gaze(img, landmarks, found)
        if self.enabled("fid"):
            arrays["fid"] = self._fid_features(img.to(self.device)).cpu().numpy()
        return self._save_gt(path, stamp, arrays)

    def _save_gt(self, path: Path, stamp: str, arrays: dict[str, Any]) -> dict[str, Any]:
        if self.gt_cache:
            tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
            np.savez(tmp, stamp=np.array(stamp), **arrays)
            os.replace(tmp, path)  # atomic: a concurrent rank or a crash never leaves half a file
        return self._gt_tensors(arrays)

    @staticmethod
    def _gt_tensors(arrays: dict[str, Any]) -> dict[str, Any]:
        out = dict(arrays)
        for key in ("img", "sync", "emo", "source"):
            if key in arrays:
                out[key] = torch.from_numpy(np.ascontiguousarray(arrays[key]))
        out["shape"] = tuple(int(v) for v in arrays["shape"])
        out["faces"] = tuple(int(v) for v in arrays["faces"])
        out["no_face"] = bool(arrays.get("no_face", False))
        return out

    def _fid_features(self, crops: Tensor) -> Tensor:
        count = crops.shape[0] if self.fid_frames is None else min(self.fid_frames, crops.shape[0])
        picked = crops[torch.from_numpy(evenly_spaced(crops.shape[0], count))]
        return MF.inception_features(self.inception, picked).double()

    # ------------------------------------------------------------------------------ one clip, every row
    def test_step(self, item: dict[str, Any], batch_idx: int) -> None:
        self._memo = {}  # detections of identical frames, within this clip
        if self._heartbeat is not None:
            self._heartbeat.now = item["clip"]
        gt = self.ground_truth(item)
        if gt["no_face"]:
            found, total = gt["faces"]
            for name in self.row_names:
                row = {"method": name, "clip": item["clip"], "frames": "", "note": "",
                       "status": f"no_face: the ground truth has a face in {found} of {total} frames"}  # fmt: skip
                self._finish(name, row, {}, item, False, gt["faces"] if name == "ground_truth" else None)
            self._clip_done()
            return
        t = gt["img"].shape[0]
        h, w = gt["shape"]
        matrices = gt["matrices"]
        own_crop = self.crop == "own"
        if self.enabled("fid"):
            self.real_fid.update({}, "ok", features=torch.from_numpy(gt["fid"]))
        for name in self.row_names:
            row: dict[str, Any] = {"method": name, "clip": item["clip"], "status": "ok", "frames": "", "note": ""}
            wrong_rate, faces = False, None
            if self._heartbeat is not None:
                self._heartbeat.row = name
            if name == "ground_truth":
                row["frames"] = f"{t}/{t}"
                faces = gt["faces"] if own_crop else None
                landmarks = (gt["landmarks"], gt["found"]) if "landmarks" in gt else None
                crops = {"img": gt["img"], "sync": gt["sync"], "emo": gt["emo"]}
                scores = self._score(crops, np.arange(t), landmarks, None, item, gt)
                self._finish(name, row, scores, item, wrong_rate, faces)
                continue
            if name == "source_frame":
                # Frame 0 is the ground truth's own frame: image and landmark metrics skip it
                # (PSNR would be inf there); sync and emotion see the whole still clip.
                gi = np.arange(1, t)
                row["frames"] = f"{t}/{t}"
                if own_crop:  # the still frame aligned by its own face is the ground truth's first crop
                    crops = {key: gt[key][:1].expand(n, -1, -1, -1)
                             for key, n in (("img", len(gi)), ("sync", t), ("emo", t))}  # fmt: skip
                    landmarks = None
                    if self._wants_landmarks() and "landmarks" in gt:
                        if self.landmarks_mode != "cache":
                            one = self._detect_aligned(gt["source"][None], gt["matrices"][:1])
                            landmarks = (np.repeat(one[0], len(gi), 0), np.repeat(one[1], len(gi), 0))
                        else:
                            landmarks = (np.repeat(gt["landmarks"][:1], len(gi), 0), np.ones(len(gi), bool))
                    scores = self._score(crops, gi, landmarks, None, item, gt)
                    self._finish(name, row, scores, item, wrong_rate, faces)
                    continue
                frames, own, audio = gt["source"][None], np.arange(t), None
                sidecar = item["landmarks"][:1].expand(len(gi), -1, -1)
            else:
                video = item["methods"][name]
                row["path"] = video.get("path", "")
                if video["status"] != "ok":
                    row["status"] = video["status"]
                    self._finish(name, row, {}, item, wrong_rate)
                    continue
                frames, sidecar = video["frames"], video["landmarks"]
                audio = video["audio"] if self.method_audio[name] == "own" else None
                fps = video["source_fps"]
                if fps is not None and abs(fps - self.trainer.datamodule.fps) > 0.01:
                    wrong_rate = True
                    row["note"] = f"resampled from {fps:g} fps"
                if own_crop:
                    alignment = self._own_alignment(frames)
                    faces = (alignment["found"], alignment["total"])
                    row["faces"] = f"{faces[0]}/{faces[1]}"
                    if not alignment["ok"]:
                        row["status"] = (f"no_face: a face in {faces[0]} of {faces[1]} frames "
                                         f"(at least {self.min_face_coverage:g} needed)")  # fmt: skip
                        self._finish(name, row, {}, item, wrong_rate, faces)
                        continue
                    keep = torch.from_numpy(alignment["keep"])
                    frames = frames[keep]
                    sidecar = None if sidecar is None else sidecar[keep]
                    if faces[0] < faces[1]:
                        rule = "interpolated" if self.no_face == "interpolate" else "dropped"
                        row["note"] = "; ".join(filter(None, [row["note"], f"no face in {faces[1] - faces[0]} "
                                                              f"of {faces[1]} frames ({rule})"]))  # fmt: skip
                tm = frames.shape[0]
                if tm < max(MF.SYNCNET_WINDOW + 1, math.ceil(self.min_coverage * t)):
                    row["status"] = f"too_short: {tm} of {t} frames"
                    self._finish(name, row, {}, item, wrong_rate, faces)
                    continue
                row["frames"] = f"{tm}/{t}"
                n = min(t, tm)
                gi, mi = evenly_spaced(t, n), evenly_spaced(tm, n)
                if own_crop:
                    crops = self._own_crops(frames, alignment, mi)
                    landmarks = None
                    if self._wants_landmarks():
                        if self.landmarks_mode != "cache":
                            landmarks = self._detect_aligned(frames[torch.from_numpy(mi)], alignment["img"][mi])
                        elif sidecar is not None:  # in the video's own pixels
                            landmarks = (transform_points(sidecar[torch.from_numpy(mi)], alignment["img"][mi]),
                                         np.ones(len(mi), bool))  # fmt: skip
                    scores = self._score(crops, gi, landmarks, audio, item, gt)
                    self._finish(name, row, scores, item, wrong_rate, faces)
                    continue
                if sidecar is not None:
                    sidecar = sidecar.clone()
                    sidecar[..., 0] *= w / frames.shape[-1]
                    sidecar[..., 1] *= h / frames.shape[-2]
                    sidecar[..., 2] *= w / frames.shape[-1]
                frames = _resize_frames(frames, h, w)
                frames = {"aligned": frames[torch.from_numpy(mi)], "all": frames}
                sidecar = None if sidecar is None else sidecar[torch.from_numpy(mi)]
                # Sync and emotion see the method's own timing: frame k cut with the clip's frame-k crop.
                own = np.minimum(np.arange(tm), t - 1)
            aligned = frames["aligned"] if isinstance(frames, dict) else frames
            every = frames["all"] if isinstance(frames, dict) else frames
            crops = {"img": self._cut(aligned, matrices[gi], self.image_size),
                     "sync": self._cut(every, matrices[own], self.sync_size)}  # fmt: skip
            crops["emo"] = crops["sync"] if self.emotion_size == self.sync_size else self._cut(
                every, matrices[own], self.emotion_size)  # fmt: skip
            landmarks = None
            if self._wants_landmarks():
                if self.landmarks_mode != "cache":
                    landmarks = self._detect(crops["img"])
                elif sidecar is not None:
                    landmarks = (transform_points(sidecar, matrices[gi]), np.ones(len(gi), bool))
            scores = self._score(crops, gi, landmarks, audio, item, gt)
            self._finish(name, row, scores, item, wrong_rate)
        self._clip_done()

    def _score(self, crops: dict[str, Tensor], gi: np.ndarray, landmarks: tuple[np.ndarray, np.ndarray] | None,
               audio: Tensor | None, item: dict[str, Any], gt: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
        """Every enabled metric of one row's crops against the clip's ground truth.

        Args:
            crops: ``img (n, 3, S, S)`` at the ground-truth frames ``gi (n,)``; ``sync``, ``emo`` at
                the row's own timing.
            landmarks: ``(n, 68, 3)`` crop-pixel landmarks at ``gi`` and their found flags ``(n,)``.
        """
        scores: dict[str, Any] = {}
        img, ref = crops["img"], gt["img"][torch.from_numpy(gi)]
        if self.enabled("psnr"):
            scores["psnr"] = float(MF.psnr(img[None], ref[None])[0])
        if self.enabled("ssim"):
            scores["ssim"] = float(MF.ssim(img[None], ref[None])[0])
        if self.enabled("lpips"):
            with torch.no_grad():
                scores["lpips"] = float(MF.lpips_per_frame(self.lpips, img[None], ref[None]).mean())
        if self.enabled("fid"):
            scores["features"] = self._fid_features(img.to(self.device))
        if self.enabled("lse"):
            wav = item["waveform"] if audio is None else audio
            try:
                out = MF.sync_scores(self.syncnet, crops["sync"][None].to(self.device), wav[None],
                                     MF.SYNCNET_SAMPLE_RATE)  # fmt: skip
                scores |= {key: float(value[0]) for key, value in out.items()}
            except ValueError as error:
                scores["lse_note"] = str(error)
        if self.enabled("emotion"):
            with torch.no_grad():
                logits = self.emotion_net(MF.as_videos(crops["emo"][None].to(self.device)))
            logits = MF.reorder_logits(logits, self.emotion_labels)
            scores["emotion_pred"] = EMOTIONS[int(logits.argmax(-1))]
            scores["emotion_acc"] = float(int(logits.argmax(-1)) == int(item["emotion"]))
        if landmarks is None:
            if self._wants_landmarks():
                why = "no landmarks (.npz sidecar) for this video" if self.landmarks_mode == "cache" else "no landmarks"
                scores["landmark_note"] = why
            return scores
        lm, found = landmarks
        keep = found & gt["found"][gi]  # frames with a face in both videos
        if not keep.any():
            scores["landmark_note"] = f"no face found by the {self.landmarks_mode} detector"
            return scores
        if keep.sum() < len(keep):
            scores["landmark_note"] = f"landmarks on {int(keep.sum())} of {len(keep)} frames (no face found)"
        gk = gi[keep]
        lm_m = torch.from_numpy(smooth_tracks(lm, found, self.lmd_smooth)[keep])
        lm_g = torch.from_numpy(smooth_tracks(gt["landmarks"][gi], gt["found"][gi], self.lmd_smooth)[keep])
        if self.enabled("lmd"):
            if self.lmd_normalize == "mean_centred":
                out = mean_centred_landmark_distance(lm_m[None], lm_g[None])
            else:
                out = MF.landmark_distance(lm_m[None], lm_g[None], self.lmd_normalize)
            scores["m_lmd"], scores["f_lmd"] = float(out["m_lmd"][0]), float(out["f_lmd"][0])
        if self.enabled("pose") or self.enabled("gaze"):
            pg = self._pose_gaze(crops["img"][torch.from_numpy(np.flatnonzero(keep))], lm[keep], np.ones(len(gk), bool))
            if self.enabled("pose"):
                err = MF.pose_error(torch.from_numpy(pg["rotation"])[None], torch.from_numpy(gt["rotation"][gk])[None])
                scores["pose"] = float(err["rotation"][0])
            if self.enabled("gaze"):
                scores["gaze"] = float(MF.gaze_error(
                    torch.from_numpy(pg["gaze"])[None], torch.from_numpy(gt["gaze"][gk])[None],
                    torch.from_numpy(gt["gaze_confidence"][gk])[None])[0])  # fmt: skip
        return scores

    def _finish(self, name: str, row: dict[str, Any], scores: dict[str, Any], item: dict[str, Any],
                wrong_rate: bool, faces: tuple[int, int] | None = None) -> None:  # fmt: skip
        features = scores.pop("features", None)
        notes = [scores.pop(k) for k in ("lse_note", "landmark_note") if k in scores]
        if wrong_rate:
            row["status_rate"] = "wrong_rate"
        row["note"] = "; ".join([row["note"], *notes]).strip("; ")
        row["emotion"] = EMOTIONS[int(item["emotion"])]
        row["emotion_pred"] = scores.pop("emotion_pred", "")
        row |= {key: scores.get(key, float("nan")) for key, _, _ in SCALARS}
        if faces is not None:
            row["faces"] = f"{faces[0]}/{faces[1]}"
        self.rows[name].update(scores, row["status"], wrong_rate, int(item["emotion"]), features, faces)
        self._per_clip.append(row)

    def _clip_done(self) -> None:
        self._memo = {}
        if self._heartbeat is not None:
            self._heartbeat.advance()

    def on_test_epoch_start(self) -> None:
        self._per_clip = []
        self._heartbeat = None
        if self.trainer.is_global_zero and self.progress_seconds > 0:
            total = len(self.trainer.datamodule.test_entries)
            world = self.trainer.world_size
            shard = len(range(0, total, world))  # rank 0's share (ShardSampler: clips 0, world, 2 world ...)
            self._heartbeat = _Heartbeat(shard, total, world, self.progress_seconds)
            self._heartbeat.start()

    def on_test_end(self) -> None:
        if getattr(self, "_heartbeat", None) is not None:
            self._heartbeat.stop()
            self._heartbeat = None

    def on_test_epoch_end(self) -> None:
        states = {name: metric.compute() for name, metric in self.rows.items()}  # synced over ranks
        real = self.real_fid.compute() if self.enabled("fid") else None  # same on every rank
        rows = self._per_clip
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered: list[list[dict[str, Any]] | None] = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, rows)
            rows = [r for part in gathered for r in (part or [])]
        rows.sort(key=lambda r: (self.row_names.index(r["method"]), r["clip"]))
        self.gt_counts_all = dict(self.gt_counts)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            counts: list[dict[str, int] | None] = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(counts, self.gt_counts)
            self.gt_counts_all = {k: sum(c[k] for c in counts if c) for k in self.gt_counts}
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None
        self.results = self._table(states, real)
        if self.trainer.is_global_zero:
            from emoface.lightning_modules.benchmark_report import write_outputs

            out = Path(self.out_dir) if self.out_dir else Path(self.trainer.default_root_dir) / "benchmark"
            write_outputs(out, self, rows)

    def _table(self, states: dict[str, dict[str, Tensor]], real: dict[str, Tensor] | None) -> list[dict[str, Any]]:
        table = []
        fids = self._fid_column(states, real)
        expected = len(self.trainer.datamodule.test_entries)
        for name in self.row_names:
            s = states[name]
            entry: dict[str, Any] = {"method": name, "clips": int(s["status"][0]), "expected": expected}
            for status, count in zip(STATUSES[1:], s["status"][1:-1].tolist()):
                entry[status] = int(count)
            entry["wrong_rate"] = int(s["status"][-1])
            for i, (key, _, _) in enumerate(SCALARS):
                count = float(s["counts"][i])
                entry[key] = float(s["sums"][i] / count) if count else float("nan")
                entry[f"{key}_n"] = int(count)
            entry["fid"] = fids[name]
            found, searched = (int(v) for v in s["faces"].tolist())
            entry["face_frames"], entry["face_frames_searched"] = found, searched
            entry["face_coverage"] = found / searched if searched else float("nan")
            for k, emotion in enumerate(EMOTIONS):
                total = float(s["emo_total"][k])
                entry[f"acc_{emotion}"] = float(s["emo_correct"][k] / total) if total else float("nan")
            table.append(entry)
        return table

    def _fid_column(self, states: dict[str, dict[str, Tensor]], real: dict[str, Tensor] | None) -> dict[str, float]:
        """FID of every row: the matrix square roots on rank 0 only, the values broadcast to the other ranks."""
        fids = {name: float("nan") for name in self.row_names}
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        if self.enabled("fid") and (not distributed or torch.distributed.get_rank() == 0):
            for name in self.row_names:
                s = states[name]
                if float(s["fid_count"]) >= 2 and float(real["fid_count"]) >= 2:
                    mu_f, sig_f = gaussian_statistics(s["fid_sum"], s["fid_outer"], float(s["fid_count"]))
                    mu_r, sig_r = gaussian_statistics(real["fid_sum"], real["fid_outer"], float(real["fid_count"]))
                    # A distance is >= 0; the matrix square root's round-off can dip below (-1e-12: "-0.000").
                    fids[name] = max(MF.frechet_distance(mu_f, sig_f, mu_r, sig_r), 0.0)
        if self.enabled("fid") and distributed:
            box = [fids]
            torch.distributed.broadcast_object_list(box, src=0)
            fids = box[0]
        return fids

    def _crop_protocol(self) -> dict[str, Any]:
        points = f"{self.align_points[0]}-{self.align_points[-1]}" if self.align_points == tuple(
            range(self.align_points[0], self.align_points[-1] + 1)) else list(self.align_points)  # fmt: skip
        template = ("EAT's base_68 (163 px frame; 128 crop = its [1:129] cut; 224 crop: points 27-44 centred at 112 "
                    "of a 256 warp, [1:225] cut)" if self.template_name == "eat" else
                    f"emoface's mean face (outer-eye-corner distance {self.template_eye_distance} x side, "
                    "landmark extent centred)")  # fmt: skip
        warp = ("skimage.transform.warp, bilinear, black outside the frame" if self.warp_backend == "skimage"
                else "OpenCV warpAffine, bilinear, replicated border")  # fmt: skip
        rule = {
            "own": (f"every video (ground truth included) aligned by its own face: per frame, landmarks by the "
                    f"{(self.aligner_identity or {}).get('backend', self.align_detector_name)} detector on the "
                    f"video's own frames, a similarity of points {points} onto the template (skimage's "
                    "SimilarityTransform.estimate, template -> frame, inverted)"
                    + (f", smoothed over time (Gaussian, sigma {self.align_smooth:g} frames)" if self.align_smooth > 0
                       else "")
                    + ("; stabilised: each crop registered to the video's median crop on the template's upper face "
                       "(OpenCV ECC, affine -> nearest similarity), then placed by the time average of the landmarks "
                       "detected again on the steady crops" if self.align_stabilise else "")
                    + f"; {warp}" + (", INTER_AREA pre-shrink where the warp shrinks" if self.warp_backend == "opencv"
                                     else "")),
            "ground_truth": (f"per frame, a similarity transform (Umeyama least squares) of the ground truth's "
                             f"landmarks {points} onto the template; {warp}"),
            "box": "syncnet_python crop_video box (cs 0.4, median 13) from the ground truth's landmarks, grey 110 pad",
            "none": "whole frames resized (OpenCV INTER_LINEAR)",
        }[self.crop]  # fmt: skip
        out: dict[str, Any] = {"mode": self.crop, "rule": rule, "template": template, "align_points": points,
                               "image_size": self.image_size, "sync_size": self.sync_size,
                               "emotion_size": self.emotion_size}  # fmt: skip
        if self.crop == "own":
            out["detector"] = self.aligner_identity
            out["no_face"] = {
                "rule": self.no_face,
                "meaning": ("a frame without a face takes the transform interpolated from the nearest frames with one "
                            "(held at the ends); the frame is kept" if self.no_face == "interpolate" else
                            "a frame without a face is dropped (the video is shorter before frame matching)"),
                "min_face_coverage": self.min_face_coverage,
                "below": "the video is not scored (status no_face, counted in its row)"}  # fmt: skip
        else:
            out["shared"] = ("the ground truth's per-frame transform cuts every row (frame k of a method with the "
                             "crop of the ground-truth frame it is aligned to)")  # fmt: skip
        return out

    def protocol(self) -> dict[str, Any]:
        """Every setting that changes a number, package versions and weight-file hashes."""
        dm = self.trainer.datamodule
        packages = {}
        for name in ("emoface", "torch", "torchvision", "torchmetrics", "lightning", "numpy", "scipy",
                     "opencv-python", "av", "lpips", "pytorch-fid", "python_speech_features", "scikit-image"):  # fmt: skip
            try:
                packages[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                packages[name] = None
        clip_ids = [e.clip_id for e in dm.test_entries]
        return {
            "protocol": self.protocol_name,
            "metrics": self.metric_names,
            "unavailable": self.unavailable,
            "clips": {"split": dm.split, "clip_list": dm.clip_list, "count": len(clip_ids),
                      "sha256_of_ids": hashlib.sha256("\n".join(clip_ids).encode()).hexdigest(),
                      "emotions": sorted(dm.emotion_filter) if dm.emotion_filter else None,
                      "levels": sorted(dm.level_filter) if dm.level_filter else None},  # fmt: skip
            "ground_truth": {"cache_dir": str(dm.cache_dir), "crop_size": dm.size},
            "methods": [vars(m) for m in dm.methods],
            "sanity_rows": dm.sanity,
            "rows": [{key: entry[key] for key in ROW_COUNTS} for entry in self.results],
            "row_counts": "clips scored / expected and problems per row, summed over every rank",
            "frames": {"fps": dm.fps,
                       "resize": ("none: each video is warped from its own frames at their own size" if self.crop == "own"
                                  else "OpenCV INTER_AREA (shrink) / INTER_LINEAR to the cache crop size"),
                       "alignment": "both resampled to the shorter length by evenly spaced indices (image, landmark "
                                    "metrics); own timing for LSE and emotion",
                       "too_short": f"< max(6, ceil({self.min_coverage} x clip frames))"},  # fmt: skip
            "face_crop": self._crop_protocol(),
            "fid": {"frames_per_video": self.fid_frames, "network": FID_NETWORK_NAMES[self.fid_network],
                    "dims": self.fid_dims, "real_set": "ground-truth crops",
                    "source_frame_row": "its first frame (the ground truth's own) skipped"},  # fmt: skip
            "lse": {"audio": {n: a for n, a in self.method_audio.items()}, "default_audio": "ground_truth",
                    "vshift": 15, "resize": "OpenCV INTER_LINEAR on uint8 (syncnet_python)"},  # fmt: skip
            "emotion": {"labels": list(self.emotion_labels), "mapping": "by label name to " + ",".join(EMOTIONS),
                        "prediction": "one per video from all its crops"},  # fmt: skip
            "landmarks": {
                "source": ("ground truth: the preprocessed cache's landmarks; methods: .npz sidecar beside the video"
                           if self.landmarks_mode == "cache" else
                           f"detected by {self.landmarks_mode} on every row's image_size crops, ground truth included"),
                "detector": self.detector_identity,
                "units": f"pixels of the {self.image_size} px crop (LMD normalisation: {self.lmd_normalize})",
                "smoothing": (f"both tracks Gaussian-smoothed over time, sigma {self.lmd_smooth:g} frames"
                              if self.lmd_smooth > 0 else "none"),
                "frames": "frames with a face in both videos; source_frame row: its first frame skipped",
                "dims": 2,
                "pose": "Umeyama fit of the rigid points to the mean face (preprocessing.features.estimate_pose)",
                "gaze": "preprocessing.gaze.estimate_gaze on the image crops, ground truth alike"},  # fmt: skip
            "ground_truth_cache": {"enabled": self.gt_cache, "folder": str(self.gt_folder), "key": self.gt_key,
                                   "settings": self.gt_settings(), "this_run": dict(self.gt_counts_all),
                                   "this_run_counts": "summed over ranks"},  # fmt: skip
            "weights": self.weight_files,
            "packages": packages,
            "world_size": self.trainer.world_size,
        }


def column_titles() -> list[tuple[str, str]]:
    """``(key, title with arrow)`` of the table's metric columns, FID after LPIPS."""
    cols = [(k, f"{t} ({UNITS[k]}) {ARROWS[d]}" if k in UNITS else f"{t} {ARROWS[d]}") for k, t, d in SCALARS]
    cols.insert(3, ("fid", f"FID {ARROWS['down']}"))
    return cols


__all__: Sequence[str] = ["Benchmark", "RowScores", "column_titles", "mean_centred_landmark_distance"]
