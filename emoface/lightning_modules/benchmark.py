"""``Benchmark``: the MEAD table, methods x metrics, from a test loop (``emoface test``).

The protocol (recorded in ``protocol.json`` with every result):

* **Frames**: each method's video is decoded at 25 fps (other rates are resampled and counted
  as ``wrong_rate``) and resized to the cache's crop size (OpenCV ``INTER_AREA`` when shrinking).
* **Alignment** for the image and landmark metrics: both videos are resampled to the shorter
  length by evenly spaced indices (EAT's evaluation). LSE uses the method's frames at their own
  timing, because the method was driven by the audio at that timing.
* **One face crop for every method** (``crop: aligned``, EAT's protocol): per ground-truth frame,
  a similarity transform of its landmarks (nose and eyes, 27-47) onto a mean-face template
  (:mod:`emoface.metrics.face_crop`), cut at ``image_size`` (PSNR, SSIM, LPIPS, FID, LMD: 128)
  and ``sync_size`` (SyncNet, emotion: 224). The ground truth's transform of frame k cuts every
  row's frame aligned to it: a reconstruction test keeps the ground truth's head pose, so the
  warp fits every method, identical pixels give identical crops, and no detector failing on a
  bad video can move its crop (EAT aligns each video on its own detections, which also hides a
  misplaced head from PSNR). ``crop: box`` is syncnet_python's box rule; ``none`` whole frames.
* **FID**: ``fid_frames`` evenly spaced crops per video (``None``: all frames), real set = the
  ground-truth clips' crops, pytorch-fid's InceptionV3 and Frechet distance.
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
every row; a clip a method lacks, cannot be decoded or is too short is counted and named in
``report.md`` and the row's clip count says how many clips it covers.
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
    TEMPLATE_EYE_DISTANCE,
    alignment_matrices,
    box_matrices,
    face_boxes,
    rescale_matrices,
    transform_points,
    warp_faces,
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
STATUSES = ("ok", "missing", "unreadable", "too_short")
CROPS = ("aligned", "box", "none")
LANDMARK_SOURCES = ("cache", "dlib", "face_alignment", "auto")
GT_CACHE_VERSION = 1
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

    def update(self, scores: dict[str, float], status: str, wrong_rate: bool = False,
               emotion: int | None = None, features: Tensor | None = None) -> None:  # fmt: skip
        """Add one clip: ``scores`` by :data:`SCALARS` key (absent or NaN: not scored)."""
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

    def compute(self) -> dict[str, Tensor]:
        return {name: getattr(self, name).clone() for name in self._defaults}


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


class Benchmark(L.LightningModule):
    """MEAD benchmark over :class:`emoface.datamodules.method_videos.BenchmarkDataModule` (test loop only).

    Args:
        metrics: metric groups to compute among :data:`METRIC_GROUPS`.
        out_dir: where the table is written (default: ``<trainer.default_root_dir>/benchmark``).
        image_size: face crop side for PSNR, SSIM, LPIPS and FID.
        sync_size: face crop side for SyncNet and the emotion classifier (224 in both references).
        fid_frames: evenly spaced frames per video for FID; ``None``: every frame.
        min_coverage: a method video shorter than this fraction of the clip is ``too_short``.
        lmd_normalize: landmark normalisation of M-LMD / F-LMD (see ``LandmarkDistance``).
        fid_weights, lpips_weights, syncnet_weights, emotion_weights: weight files (``None``: the
            torch hub cache file of each).
        syncnet_args, emotion_args: constructor arguments of non-reference-sized evaluators.
        emotion_labels: class names of the classifier's outputs (default: the file's own).
        lpips_random_backbone: a random LPIPS backbone (plumbing tests only; numbers meaningless).
        fid_inception, syncnet, emotion_net: evaluator networks given directly (Python use).
        fid_dims: feature size of ``fid_inception`` (2048 for pytorch-fid's).
        crop: ``"aligned"`` (the shared similarity-aligned face crop above), ``"box"``
            (syncnet_python's box rule from the ground truth's landmarks) or ``"none"`` (whole
            frames, resized; for caches whose frames are the very crops the evaluators were trained on).
        emotion_size: crop side for the emotion classifier (default: ``sync_size``).
        template_eye_distance: the aligned crop's outer-eye-corner distance as a fraction of its side.
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
        crop: str = "aligned",
        emotion_size: int | None = None,
        template_eye_distance: float = TEMPLATE_EYE_DISTANCE,
        landmarks: str = "cache",
        landmark_detector: Any | None = None,
        gt_cache: bool = True,
        gt_cache_dir: str | None = None,
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
        if crop not in CROPS:
            raise ValueError(f"crop must be one of {CROPS}, got {crop!r}")
        if landmarks not in LANDMARK_SOURCES:
            raise ValueError(f"landmarks must be one of {LANDMARK_SOURCES}, got {landmarks!r}")
        self.crop = crop
        self.emotion_size = emotion_size or sync_size
        self.template_eye_distance = template_eye_distance
        self.landmarks_mode = landmarks
        self.gt_cache, self.gt_cache_dir = gt_cache, gt_cache_dir
        self.gt_counts = {"decoded": 0, "cached": 0}
        self.unavailable: dict[str, str] = {}  # metric group -> why it is n/a
        self.weight_files: dict[str, str] = {}
        self.lpips = self._load("lpips", "lpips_alex", lpips_weights, lambda: self._build_lpips(lpips_weights,
                                lpips_random_backbone))  # fmt: skip
        self.inception = fid_inception or self._load(
            "fid", "fid_inception", fid_weights, lambda: build_fid_inception(fid_weights))
        self.syncnet = syncnet or self._load("lse", "syncnet", syncnet_weights, lambda: self._build_syncnet(
            syncnet_weights, syncnet_args))  # fmt: skip
        self.emotion_net = emotion_net or self._load("emotion", "emotion_fan", emotion_weights,
                                                     lambda: self._build_emotion(emotion_weights, emotion_args))  # fmt: skip
        self.detector, self.detector_identity = landmark_detector, None
        self._own_detector = landmark_detector is None
        if landmarks != "cache" and self._wants_landmarks():
            self._load_detector(landmarks, landmark_detector)
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

    def __getstate__(self) -> dict[str, Any]:
        # A detector built here (dlib, face-alignment) may not pickle: spawned ranks build their own in setup.
        state = dict(super().__getstate__())
        if state.get("_own_detector"):
            state["detector"] = None
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

    def gt_settings(self) -> dict[str, Any]:
        """Every setting the cached ground-truth side depends on (its hash names the cache folder)."""
        dm = self.trainer.datamodule
        inception = None
        if self.enabled("fid"):
            inception = self.weight_files.get("fid_inception") or _module_digest(self.inception)
        return {
            "version": GT_CACHE_VERSION,
            "mead_cache": str(Path(dm.cache_dir).expanduser().resolve()),
            "crop": self.crop, "template_eye_distance": self.template_eye_distance,
            "align_points": list(ALIGN_POINTS), "image_size": self.image_size, "sync_size": self.sync_size,
            "emotion_size": self.emotion_size,
            "landmarks": self.landmarks_mode if self._wants_landmarks() else None,
            "detector": self.detector_identity if self._wants_landmarks() else None,
            "pose": self.enabled("pose") or self.enabled("gaze"), "gaze": self.enabled("gaze"),
            "fid": {"frames": self.fid_frames, "inception": inception, "dims": self.fid_dims} if inception else None,
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
        landmarks, found = self.detector.landmarks_from_chunks([crops.permute(0, 2, 3, 1).numpy()])
        return landmarks.astype(np.float32), found.astype(bool)

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

    def ground_truth(self, item: dict[str, Any]) -> dict[str, Any]:
        """The clip's ground-truth side, from the on-disk cache or computed (and cached) from its frames.

        Returns:
            ``img (T, 3, S, S)``, ``sync``, ``emo`` crops (uint8 tensors), ``matrices (T, 2, 3)`` frame ->
            ``image_size`` crop, ``landmarks (T, 68, 3)`` in crop pixels and ``found (T,)`` (absent
            without landmark metrics), ``rotation``, ``gaze``, ``gaze_confidence`` (with pose/gaze),
            ``fid (k, D)`` float64 (with FID), ``source (3, H, W)`` the clip's first frame, ``shape (H, W)``.
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
        matrices = self._crop_matrices(item["landmarks"], h, w)
        img = self._cut(frames, matrices, self.image_size)
        arrays: dict[str, Any] = {"img": img.numpy(), "matrices": matrices, "source": frames[0].numpy(),
                                  "shape": np.array([h, w])}  # fmt: skip
        arrays["sync"] = self._cut(frames, matrices, self.sync_size).numpy()
        arrays["emo"] = arrays["sync"] if self.emotion_size == self.sync_size else self._cut(
            frames, matrices, self.emotion_size).numpy()  # fmt: skip
        if self._wants_landmarks():
            if self.landmarks_mode == "cache":
                landmarks, found = transform_points(item["landmarks"], matrices), np.ones(len(matrices), bool)
            else:
                landmarks, found = self._detect(img)
            arrays["landmarks"], arrays["found"] = landmarks, found
            if self.enabled("pose") or self.enabled("gaze"):
                arrays |= self._pose_gaze(img, landmarks, found)
        if self.enabled("fid"):
            arrays["fid"] = self._fid_features(img.to(self.device)).cpu().numpy()
        if self.gt_cache:
            tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
            np.savez(tmp, stamp=np.array(stamp), **arrays)
            os.replace(tmp, path)  # atomic: a concurrent rank or a crash never leaves half a file
        return self._gt_tensors(arrays)

    @staticmethod
    def _gt_tensors(arrays: dict[str, Any]) -> dict[str, Any]:
        out = dict(arrays)
        for key in ("img", "sync", "emo", "source"):
            out[key] = torch.from_numpy(np.ascontiguousarray(arrays[key]))
        out["shape"] = tuple(int(v) for v in arrays["shape"])
        return out

    def _fid_features(self, crops: Tensor) -> Tensor:
        count = crops.shape[0] if self.fid_frames is None else min(self.fid_frames, crops.shape[0])
        picked = crops[torch.from_numpy(evenly_spaced(crops.shape[0], count))]
        return MF.inception_features(self.inception, picked).double()

    def test_step(self, item: dict[str, Any], batch_idx: int) -> None:
        gt = self.ground_truth(item)
        t = gt["img"].shape[0]
        h, w = gt["shape"]
        matrices = gt["matrices"]
        if self.enabled("fid"):
            self.real_fid.update({}, "ok", features=torch.from_numpy(gt["fid"]))
        for name in self.row_names:
            row: dict[str, Any] = {"method": name, "clip": item["clip"], "status": "ok", "frames": "", "note": ""}
            wrong_rate = False
            if name == "ground_truth":
                row["frames"] = f"{t}/{t}"
                gi = np.arange(t)
                crops = {"img": gt["img"], "sync": gt["sync"], "emo": gt["emo"]}
                landmarks = (gt["landmarks"], gt["found"]) if "landmarks" in gt else None
                scores = self._score(crops, gi, landmarks, None, item, gt)
                self._finish(name, row, scores, item, wrong_rate)
                continue
            if name == "source_frame":
                # Frame 0 is the ground truth's own frame: image and landmark metrics skip it
                # (PSNR would be inf there); sync and emotion see the whole still clip.
                gi = np.arange(1, t)
                frames, own, audio = gt["source"][None], np.arange(t), None
                sidecar = item["landmarks"][:1].expand(len(gi), -1, -1)
                row["frames"] = f"{t}/{t}"
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
                tm = frames.shape[0]
                if tm < max(MF.SYNCNET_WINDOW + 1, math.ceil(self.min_coverage * t)):
                    row["status"] = f"too_short: {tm} of {t} frames"
                    self._finish(name, row, {}, item, wrong_rate)
                    continue
                if sidecar is not None:
                    sidecar = sidecar.clone()
                    sidecar[..., 0] *= w / frames.shape[-1]
                    sidecar[..., 1] *= h / frames.shape[-2]
                    sidecar[..., 2] *= w / frames.shape[-1]
                frames = _resize_frames(frames, h, w)
                row["frames"] = f"{tm}/{t}"
                n = min(t, tm)
                gi, mi = evenly_spaced(t, n), evenly_spaced(tm, n)
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
        lm_m, gk = torch.from_numpy(lm[keep]), gi[keep]
        lm_g = torch.from_numpy(np.ascontiguousarray(gt["landmarks"][gk]))
        if self.enabled("lmd"):
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
                wrong_rate: bool) -> None:  # fmt: skip
        features = scores.pop("features", None)
        notes = [scores.pop(k) for k in ("lse_note", "landmark_note") if k in scores]
        if wrong_rate:
            row["status_rate"] = "wrong_rate"
        row["note"] = "; ".join([row["note"], *notes]).strip("; ")
        row["emotion"] = EMOTIONS[int(item["emotion"])]
        row["emotion_pred"] = scores.pop("emotion_pred", "")
        row |= {key: scores.get(key, float("nan")) for key, _, _ in SCALARS}
        self.rows[name].update(scores, row["status"], wrong_rate, int(item["emotion"]), features)
        self._per_clip.append(row)

    def on_test_epoch_start(self) -> None:
        self._per_clip = []

    def on_test_epoch_end(self) -> None:
        states = {name: metric.compute() for name, metric in self.rows.items()}  # synced over ranks
        real = self.real_fid.compute() if self.enabled("fid") else None  # same on every rank
        rows = self._per_clip
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered: list[list[dict[str, Any]] | None] = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, rows)
            rows = [r for part in gathered for r in (part or [])]
        rows.sort(key=lambda r: (self.row_names.index(r["method"]), r["clip"]))
        self.results = self._table(states, real)
        if self.trainer.is_global_zero:
            from emoface.lightning_modules.benchmark_report import write_outputs

            out = Path(self.out_dir) if self.out_dir else Path(self.trainer.default_root_dir) / "benchmark"
            write_outputs(out, self, rows)

    def _table(self, states: dict[str, dict[str, Tensor]], real: dict[str, Tensor] | None) -> list[dict[str, Any]]:
        table = []
        for name in self.row_names:
            s = states[name]
            entry: dict[str, Any] = {"method": name, "clips": int(s["status"][0])}
            for status, count in zip(STATUSES[1:], s["status"][1:-1].tolist()):
                entry[status] = int(count)
            entry["wrong_rate"] = int(s["status"][-1])
            for i, (key, _, _) in enumerate(SCALARS):
                count = float(s["counts"][i])
                entry[key] = float(s["sums"][i] / count) if count else float("nan")
                entry[f"{key}_n"] = int(count)
            entry["fid"] = float("nan")
            if self.enabled("fid") and float(s["fid_count"]) >= 2 and float(real["fid_count"]) >= 2:
                mu_f, sig_f = gaussian_statistics(s["fid_sum"], s["fid_outer"], float(s["fid_count"]))
                mu_r, sig_r = gaussian_statistics(real["fid_sum"], real["fid_outer"], float(real["fid_count"]))
                # A distance is >= 0; the matrix square root's round-off can dip below (-1e-12: "-0.000").
                entry["fid"] = max(MF.frechet_distance(mu_f, sig_f, mu_r, sig_r), 0.0)
            for k, emotion in enumerate(EMOTIONS):
                total = float(s["emo_total"][k])
                entry[f"acc_{emotion}"] = float(s["emo_correct"][k] / total) if total else float("nan")
            table.append(entry)
        return table

    def _crop_protocol(self) -> dict[str, Any]:
        rule = {
            "aligned": ("per frame, a similarity transform (Umeyama least squares) of the ground truth's landmarks "
                        f"{ALIGN_POINTS[0]}-{ALIGN_POINTS[-1]} (nose, both eyes) onto the mean-face template "
                        f"(outer-eye-corner distance {self.template_eye_distance} x side, landmark extent centred); "
                        "OpenCV warpAffine, bilinear, replicated border"),
            "box": "syncnet_python crop_video box (cs 0.4, median 13) from the ground truth's landmarks, grey 110 pad",
            "none": "whole frames resized (OpenCV INTER_LINEAR)",
        }[self.crop]  # fmt: skip
        return {"mode": self.crop, "rule": rule,
                "shared": "the ground truth's per-frame transform cuts every row (frame k of a method with the "
                          "crop of the ground-truth frame it is aligned to)",
                "image_size": self.image_size, "sync_size": self.sync_size, "emotion_size": self.emotion_size}  # fmt: skip

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
            "metrics": self.metric_names,
            "unavailable": self.unavailable,
            "clips": {"split": dm.split, "clip_list": dm.clip_list, "count": len(clip_ids),
                      "sha256_of_ids": hashlib.sha256("\n".join(clip_ids).encode()).hexdigest(),
                      "emotions": sorted(dm.emotion_filter) if dm.emotion_filter else None,
                      "levels": sorted(dm.level_filter) if dm.level_filter else None},  # fmt: skip
            "ground_truth": {"cache_dir": str(dm.cache_dir), "crop_size": dm.size},
            "methods": [vars(m) for m in dm.methods],
            "sanity_rows": dm.sanity,
            "frames": {"fps": dm.fps, "resize": "OpenCV INTER_AREA (shrink) / INTER_LINEAR to the cache crop size",
                       "alignment": "both resampled to the shorter length by evenly spaced indices (image, landmark "
                                    "metrics); own timing for LSE and emotion",
                       "too_short": f"< max(6, ceil({self.min_coverage} x clip frames))"},  # fmt: skip
            "face_crop": self._crop_protocol(),
            "fid": {"frames_per_video": self.fid_frames, "network": "pytorch-fid InceptionV3 pool3",
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
                "frames": "frames with a face in both videos; source_frame row: its first frame skipped",
                "dims": 2,
                "pose": "Umeyama fit of the rigid points to the mean face (preprocessing.features.estimate_pose)",
                "gaze": "preprocessing.gaze.estimate_gaze on the image crops, ground truth alike"},  # fmt: skip
            "ground_truth_cache": {"enabled": self.gt_cache, "folder": str(self.gt_folder), "key": self.gt_key,
                                   "settings": self.gt_settings(), "this_run": dict(self.gt_counts)},  # fmt: skip
            "weights": self.weight_files,
            "packages": packages,
            "world_size": self.trainer.world_size,
        }


def column_titles() -> list[tuple[str, str]]:
    """``(key, title with arrow)`` of the table's metric columns, FID after LPIPS."""
    cols = [(k, f"{t} {ARROWS[d]}") for k, t, d in SCALARS]
    cols.insert(3, ("fid", f"FID {ARROWS['down']}"))
    return cols


__all__: Sequence[str] = ["Benchmark", "RowScores", "column_titles"]
