"""``Benchmark``: the MEAD table, methods x metrics, from a test loop (``emoface test``).

The protocol (recorded in ``protocol.json`` with every result):

* **Frames**: each method's video is decoded at 25 fps (other rates are resampled and counted
  as ``wrong_rate``) and resized to the cache's crop size (OpenCV ``INTER_AREA`` when shrinking).
* **Alignment** for the image and landmark metrics: both videos are resampled to the shorter
  length by evenly spaced indices (EAT's evaluation). LSE uses the method's frames at their own
  timing, because the method was driven by the audio at that timing.
* **One face crop for every method**: syncnet_python's box rule (:func:`emoface.metrics.face_crop`)
  from the ground-truth clip's landmarks, applied to the ground truth and to every method's
  aligned frames, at ``image_size`` (PSNR, SSIM, LPIPS, FID) and ``sync_size`` (SyncNet, emotion).
  A reconstruction test keeps the ground truth's head pose, so its boxes fit every method and no
  detector can make methods disagree on where the face is.
* **FID**: ``fid_frames`` evenly spaced crops per video (``None``: all frames), real set = the
  ground-truth clips' crops, pytorch-fid's InceptionV3 and Frechet distance.
* **LSE**: the ground-truth audio (default) or the method's own track (``audio: own``).
* **Emotion accuracy**: one prediction per video (all its crops); the target is the emotion of
  the clip the file name names; classifier outputs are mapped to EMOTIONS by label name.
* **M-LMD / F-LMD, pose and gaze error**: need the method's landmarks (an ``.npz`` sidecar with
  ``landmarks`` beside each video); pose is the Umeyama fit and gaze the image estimate of the
  preprocessing, both computed alike for the ground truth and the method.

A metric whose evaluator cannot be loaded (missing weight file) is ``n/a`` with the reason in
every row; a clip a method lacks, cannot be decoded or is too short is counted and named in
``report.md`` and the row's clip count says how many clips it covers.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor, nn
from torchmetrics import Metric

from emoface.datamodules.method_videos import evenly_spaced
from emoface.emotions import EMOTIONS
from emoface.metrics import build_fid_inception
from emoface.metrics import functional as MF
from emoface.metrics.face_crop import face_boxes, face_crop

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
        crop: ``"landmarks"`` (the shared face crop above) or ``"none"`` (whole frames, resized;
            for caches whose frames are the very crops the evaluators were trained on).
        emotion_size: crop side for the emotion classifier (default: ``sync_size``).
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
        crop: str = "landmarks",
        emotion_size: int | None = None,
    ) -> None:
        super().__init__()
        unknown = [m for m in metrics if m not in METRIC_GROUPS]
        if unknown:
            raise ValueError(f"unknown metrics {unknown}; choose from {list(METRIC_GROUPS)}")
        self.save_hyperparameters(ignore=["fid_inception", "syncnet", "emotion_net"])
        self.metric_names = list(metrics)
        self.out_dir = out_dir
        self.image_size, self.sync_size = image_size, sync_size
        self.fid_frames, self.min_coverage, self.lmd_normalize = fid_frames, min_coverage, lmd_normalize
        self.fid_dims = fid_dims
        if crop not in ("landmarks", "none"):
            raise ValueError(f"crop must be 'landmarks' or 'none', got {crop!r}")
        self.crop = crop
        self.emotion_size = emotion_size or sync_size
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

    def _crop(self, frames: Tensor, boxes: Tensor, size: int) -> Tensor:
        """``(T, 3, H, W)`` uint8 -> ``(T, 3, size, size)`` face crops cut with ``boxes (T, 3)``."""
        if self.crop == "none":
            return frames if frames.shape[-1] == size else MF.reference_resize(frames, size)
        return face_crop(frames, size=size, boxes=boxes)

    def _fid_features(self, crops: Tensor) -> Tensor:
        count = crops.shape[0] if self.fid_frames is None else min(self.fid_frames, crops.shape[0])
        picked = crops[torch.from_numpy(evenly_spaced(crops.shape[0], count))]
        return MF.inception_features(self.inception, picked).double()

    def test_step(self, item: dict[str, Any], batch_idx: int) -> None:
        from emoface.preprocessing.features import estimate_pose

        gt = item["frames"]  # (T, 3, H, W) uint8
        lm = item["landmarks"]  # (T, 68, 3)
        t, h, w = gt.shape[0], gt.shape[-2], gt.shape[-1]
        boxes = face_boxes(lm)  # (T, 3): the one crop every row is cut with
        gt_img = self._crop(gt, boxes, self.image_size)
        gt_sync = self._crop(gt, boxes, self.sync_size)
        if self.enabled("fid"):
            self.real_fid.update({}, "ok", features=self._fid_features(gt_img.to(self.device)))
        gt_pose = estimate_pose(lm.numpy()) if self.enabled("pose") or self.enabled("gaze") else None
        for name in self.row_names:
            row: dict[str, Any] = {"method": name, "clip": item["clip"], "status": "ok", "frames": "", "note": ""}
            wrong_rate = False
            if name == "ground_truth":
                frames, landmarks, audio = gt, lm, None
            elif name == "source_frame":
                frames, landmarks, audio = gt[:1].expand(t, -1, -1, -1), lm[:1].expand(t, -1, -1), None
            else:
                video = item["methods"][name]
                row["path"] = video.get("path", "")
                if video["status"] != "ok":
                    row["status"] = video["status"]
                    self._finish(name, row, {}, item, wrong_rate)
                    continue
                frames, landmarks = video["frames"], video["landmarks"]
                audio = video["audio"] if self.method_audio[name] == "own" else None
                fps = video["source_fps"]
                if fps is not None and abs(fps - self.trainer.datamodule.fps) > 0.01:
                    wrong_rate = True
                    row["note"] = f"resampled from {fps:g} fps"
                if frames.shape[0] < max(MF.SYNCNET_WINDOW + 1, math.ceil(self.min_coverage * t)):
                    row["status"] = f"too_short: {frames.shape[0]} of {t} frames"
                    self._finish(name, row, {}, item, wrong_rate)
                    continue
                if landmarks is not None:
                    landmarks = landmarks.clone()
                    landmarks[..., 0] *= w / frames.shape[-1]
                    landmarks[..., 1] *= h / frames.shape[-2]
                    landmarks[..., 2] *= w / frames.shape[-1]
                frames = _resize_frames(frames, h, w)
            row["frames"] = f"{frames.shape[0]}/{t}"
            scores = self._score(frames, landmarks, audio, item, boxes, gt_img, gt_sync, gt_pose)
            self._finish(name, row, scores, item, wrong_rate)

    def _score(self, frames: Tensor, landmarks: Tensor | None, audio: Tensor | None, item: dict[str, Any],
               boxes: Tensor, gt_img: Tensor, gt_sync: Tensor, gt_pose: dict | None) -> dict[str, Any]:  # fmt: skip
        """Every enabled metric of one video against its clip; ``features`` holds FID features."""
        t, tm = gt_img.shape[0], frames.shape[0]
        n = min(t, tm)
        gi, mi = torch.from_numpy(evenly_spaced(t, n)), torch.from_numpy(evenly_spaced(tm, n))
        scores: dict[str, Any] = {}
        img = self._crop(frames[mi], boxes[gi], self.image_size)
        ref = gt_img[gi]
        if self.enabled("psnr"):
            scores["psnr"] = float(MF.psnr(img[None], ref[None])[0])
        if self.enabled("ssim"):
            scores["ssim"] = float(MF.ssim(img[None], ref[None])[0])
        if self.enabled("lpips"):
            with torch.no_grad():
                scores["lpips"] = float(MF.lpips_per_frame(self.lpips, img[None], ref[None]).mean())
        if self.enabled("fid"):
            scores["features"] = self._fid_features(img.to(self.device))
        # Sync and emotion see the method's own timing: frame k cut with the box of clip frame k.
        own_boxes = boxes[torch.arange(tm).clamp(max=t - 1)]
        sync = self._crop(frames, own_boxes, self.sync_size) if tm != t or not torch.equal(
            frames, item["frames"]) else gt_sync  # fmt: skip
        if self.enabled("lse"):
            wav = item["waveform"] if audio is None else audio
            try:
                out = MF.sync_scores(self.syncnet, sync[None].to(self.device), wav[None], MF.SYNCNET_SAMPLE_RATE)
                scores |= {key: float(value[0]) for key, value in out.items()}
            except ValueError as error:
                scores["lse_note"] = str(error)
        if self.enabled("emotion"):
            faces = sync if self.emotion_size == self.sync_size else self._crop(frames, own_boxes, self.emotion_size)
            with torch.no_grad():
                logits = self.emotion_net(MF.as_videos(faces[None].to(self.device)))
            logits = MF.reorder_logits(logits, self.emotion_labels)
            scores["emotion_pred"] = EMOTIONS[int(logits.argmax(-1))]
            scores["emotion_acc"] = float(int(logits.argmax(-1)) == int(item["emotion"]))
        if landmarks is not None:
            lm_m, lm_g = landmarks[mi], item["landmarks"][gi]
            if self.enabled("lmd"):
                out = MF.landmark_distance(lm_m[None], lm_g[None], self.lmd_normalize)
                scores["m_lmd"], scores["f_lmd"] = float(out["m_lmd"][0]), float(out["f_lmd"][0])
            if gt_pose is not None:
                from emoface.preprocessing.features import estimate_pose
                from emoface.preprocessing.gaze import estimate_gaze

                pose = estimate_pose(lm_m.numpy())
                gidx = gi.numpy()
                if self.enabled("pose"):
                    err = MF.pose_error(torch.from_numpy(pose["rotation"])[None],
                                        torch.from_numpy(gt_pose["rotation"][gidx])[None])  # fmt: skip
                    scores["pose"] = float(err["rotation"][0])
                if self.enabled("gaze"):
                    picked = frames[mi].permute(0, 2, 3, 1).numpy()
                    gaze = estimate_gaze(picked, lm_m.numpy(), pose["rotation"], pose["translation"], pose["scale"])
                    scores["gaze"] = float(MF.gaze_error(
                        torch.from_numpy(gaze["gaze"])[None], item["gaze"][gi][None],
                        item["gaze_confidence"][gi][None])[0])  # fmt: skip
        elif any(self.enabled(g) for g in ("lmd", "pose", "gaze")):
            scores["landmark_note"] = "no landmarks (.npz sidecar) for this video"
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
        real = self.real_fid.compute()
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

    def _table(self, states: dict[str, dict[str, Tensor]], real: dict[str, Tensor]) -> list[dict[str, Any]]:
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
                entry["fid"] = MF.frechet_distance(mu_f, sig_f, mu_r, sig_r)
            for k, emotion in enumerate(EMOTIONS):
                total = float(s["emo_total"][k])
                entry[f"acc_{emotion}"] = float(s["emo_correct"][k] / total) if total else float("nan")
            table.append(entry)
        return table

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
            "face_crop": {"mode": self.crop, "rule": "syncnet_python crop_video box (cs 0.4, median 13) from the ground-truth "
                                  "landmarks, shared by every method", "image_size": self.image_size,
                          "sync_size": self.sync_size, "emotion_size": self.emotion_size},  # fmt: skip
            "fid": {"frames_per_video": self.fid_frames, "network": "pytorch-fid InceptionV3 pool3",
                    "dims": self.fid_dims, "real_set": "ground-truth crops"},  # fmt: skip
            "lse": {"audio": {n: a for n, a in self.method_audio.items()}, "default_audio": "ground_truth",
                    "vshift": 15, "resize": "OpenCV INTER_LINEAR on uint8 (syncnet_python)"},  # fmt: skip
            "emotion": {"labels": list(self.emotion_labels), "mapping": "by label name to " + ",".join(EMOTIONS),
                        "prediction": "one per video from all its crops"},  # fmt: skip
            "landmarks": {"source": "method: .npz sidecar beside the video; ground truth: the cache",
                          "lmd_normalize": self.lmd_normalize, "dims": 2,
                          "pose": "Umeyama fit of the rigid points (preprocessing.features.estimate_pose)",
                          "gaze": "preprocessing.gaze.estimate_gaze on the frames"},  # fmt: skip
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
