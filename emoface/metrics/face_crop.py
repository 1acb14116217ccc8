"""The one face crop applied to every method's video before SyncNet (and other face metrics).

It follows syncnet_python's ``run_pipeline.crop_video``: per frame a face box of half-size
``bs = max(w, h) / 2`` around its centre ``(mx, my)`` is smoothed over time with a median
filter (kernel 13; edges repeated rather than zero-padded), the crop spans columns ``mx -+ bs (1 + cs)`` and rows ``my - bs`` to
``my + bs (1 + 2 cs)`` with ``cs = 0.4`` (the mouth and chin sit in the lower half), outside
pixels are grey 110, and the crop is resized to 224 x 224. emoface takes the face box from the
68 landmarks (x, y extent) instead of the S3FD detector, so that every method - and the ground
truth - is cropped by the same rule from landmarks of the same extractor.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import median_filter
from torch import Tensor
from torchvision.ops import roi_align

PAD_VALUE = 110.0
"""Grey level the reference pads frames with (0-255 units)."""


def face_boxes(landmarks: Tensor, smooth: int = 13) -> Tensor:
    """Face box centre and half-size per frame from landmarks, median-smoothed over time.

    Args:
        landmarks: ``(T, 68, D)`` with x, y in pixels.
        smooth: odd median-filter kernel over frames (1: none); the reference uses 13.

    Returns:
        ``(T, 3)`` float32 ``(mx, my, bs)``.
    """
    xy = landmarks[..., :2].detach().double().cpu()
    lo, hi = xy.min(-2).values, xy.max(-2).values
    centre = (lo + hi) / 2
    half = (hi - lo).max(-1).values / 2
    boxes = torch.cat([centre, half[:, None]], -1).numpy()
    if smooth > 1 and boxes.shape[0] > 1:
        # Edge frames repeat (mode "nearest") instead of the reference's zero padding, which would
        # shrink the boxes of the first and last 6 frames.
        boxes = median_filter(boxes, size=(min(smooth, boxes.shape[0]), 1), mode="nearest")
    return torch.from_numpy(np.ascontiguousarray(boxes)).float()


def face_crop(
    frames: Tensor,
    landmarks: Tensor | None = None,
    size: int = 224,
    crop_scale: float = 0.4,
    smooth: int = 13,
    boxes: Tensor | None = None,
) -> Tensor:
    """Crop and resize the face in every frame of one video (syncnet_python's rule).

    Args:
        frames: ``(T, 3, H, W)`` uint8 or [0, 1] RGB.
        landmarks: ``(T, 68, D)`` landmarks in the frames' pixels; ``None`` takes the whole frame
            as the face box (frames that are already face crops, e.g. emoface's 256 px cache).
        size: output side (224 for SyncNet).
        crop_scale: the reference's ``cs`` (0.4).
        smooth: median-filter kernel over frames for the box (13 in the reference).
        boxes: ``(T, 3)`` precomputed :func:`face_boxes` (overrides ``landmarks``), e.g. the ground
            truth's boxes applied to another method's frames so every method is cut alike.

    Returns:
        ``(T, 3, size, size)`` of the input dtype.
    """
    t, _, h, w = frames.shape
    uint8 = frames.dtype == torch.uint8
    x = frames.float() if uint8 else frames.float() * 255.0
    if boxes is not None:
        boxes = boxes.float()
    elif landmarks is None:
        # Whole-frame box, so the reference's rule reproduces a centred, slightly enlarged crop.
        boxes = torch.tensor([[w / 2, h / 2, max(h, w) / 2]], dtype=torch.float32).expand(t, 3)
    else:
        boxes = face_boxes(landmarks, smooth)
    mx, my, bs = boxes.to(x.device).unbind(-1)
    rois = torch.stack(
        [
            torch.arange(t, dtype=torch.float32, device=x.device),
            mx - bs * (1 + crop_scale),
            my - bs,
            mx + bs * (1 + crop_scale),
            my + bs * (1 + 2 * crop_scale),
        ],
        -1,
    )
    # roi_align samples 0 outside the frame; shifting by the pad value fills it with grey 110.
    out = roi_align(x - PAD_VALUE, rois, output_size=size, spatial_scale=1.0, sampling_ratio=2, aligned=True)
    out = (out + PAD_VALUE).clamp(0, 255)
    return out.round().to(torch.uint8) if uint8 else out / 255.0
