"""Landmark backends: where the 68 3D landmarks of each frame come from.

* ``face_alignment`` (real data): the face-alignment package (S3FD detector, 3D-FAN-4 and the
  depth network, ``LandmarksType.THREE_D``), frames batched through the networks, on the GPU
  when there is one. Weights are never downloaded by emoface: they must already be in the torch
  hub cache under face-alignment's own file names (see :func:`face_alignment_weight_files`).
* ``groundtruth`` (mini-MEAD): the generator's landmarks from the clip's sidecar.

A backend returns landmarks in the pixels of the decoded (source) frames plus a per-frame
"face found" flag; gap filling, crop, pose and gaze are done by the pipeline.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from emoface.io.arrays import load_npz
from emoface.preprocessing.features import ClipFailure
from emoface.preprocessing.layout import ClipSpec

BACKENDS = ("face_alignment", "groundtruth")


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


def make_backend(name: str, device: str = "auto", batch_size: int = 16) -> GroundTruthBackend | FaceAlignmentBackend:
    """Instantiate a backend by name (see :data:`BACKENDS`)."""
    if name == "groundtruth":
        return GroundTruthBackend()
    if name == "face_alignment":
        return FaceAlignmentBackend(device=device, batch_size=batch_size)
    raise ValueError(f"unknown backend {name!r}; expected one of {', '.join(BACKENDS)}")
