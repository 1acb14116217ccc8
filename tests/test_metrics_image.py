"""PSNR / SSIM equal scikit-image; LPIPS equals the lpips package; missing backbone weights are clear."""

from __future__ import annotations

import lpips
import numpy as np
import pytest
import torch
from metrics_support import write_alexnet_weights
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from emoface.metrics import LPIPS, PSNR, SSIM
from emoface.metrics import functional as MF


def _pair(dtype: torch.dtype, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, 256, (3, 4, 3, 33, 41), generator=g)
    preds = (target + torch.randint(-30, 31, target.shape, generator=g)).clamp(0, 255)
    if dtype == torch.uint8:
        return preds.to(torch.uint8), target.to(torch.uint8)
    return preds.to(dtype) / 255.0, target.to(dtype) / 255.0


def _skimage_per_frame(
    preds: torch.Tensor, target: torch.Tensor, data_range: float
) -> tuple[np.ndarray, ...]:
    b, t = target.shape[:2]
    psnr = np.zeros((b, t))
    ssim = np.zeros((b, t))
    for i in range(b):
        for j in range(t):
            x = target[i, j].permute(1, 2, 0).numpy()
            y = preds[i, j].permute(1, 2, 0).numpy()
            psnr[i, j] = peak_signal_noise_ratio(x, y, data_range=data_range)
            ssim[i, j] = structural_similarity(x, y, channel_axis=-1, data_range=data_range)
    return psnr, ssim


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float64, torch.float32])
def test_psnr_ssim_equal_scikit_image(dtype: torch.dtype) -> None:
    preds, target = _pair(dtype)
    data_range = 255.0 if dtype == torch.uint8 else 1.0
    ref_psnr, ref_ssim = _skimage_per_frame(preds, target, data_range)
    np.testing.assert_allclose(MF.psnr_per_frame(preds, target).numpy(), ref_psnr, atol=1e-4, rtol=0)
    np.testing.assert_allclose(MF.ssim_per_frame(preds, target).numpy(), ref_ssim, atol=1e-4, rtol=0)

    # The metric: mean over frames per video, then over videos; two updates == one.
    psnr, ssim = PSNR(), SSIM()
    psnr.update(preds[:1], target[:1])
    psnr.update(preds[1:], target[1:])
    ssim.update(preds, target)
    assert psnr.compute().item() == pytest.approx(ref_psnr.mean(1).mean(), abs=1e-4)
    assert ssim.compute().item() == pytest.approx(ref_ssim.mean(1).mean(), abs=1e-4)


def test_video_averaging_is_per_video_then_over_videos() -> None:
    # Two videos with different lengths in separate updates: the mean of the video means.
    preds, target = _pair(torch.uint8, seed=1)
    psnr = PSNR()
    psnr.update(preds[0, :1], target[0, :1])
    psnr.update(preds[1:2], target[1:2])
    per_frame = MF.psnr_per_frame(preds, target)
    expected = (per_frame[0, :1].mean() + per_frame[1].mean()) / 2
    assert psnr.compute().item() == pytest.approx(expected.item(), abs=1e-10)


def test_explicit_data_range() -> None:
    preds, target = _pair(torch.float64)
    ref = peak_signal_noise_ratio(target[0, 0].numpy() * 2, preds[0, 0].numpy() * 2, data_range=2.0)
    got = MF.psnr_per_frame(preds[:1, :1] * 2, target[:1, :1] * 2, data_range=2.0)
    assert got.item() == pytest.approx(ref, abs=1e-6)


def test_lpips_equals_lpips_package_with_hub_backbone(tmp_path, monkeypatch) -> None:
    write_alexnet_weights(tmp_path)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    preds, target = _pair(torch.uint8, seed=2)
    metric = LPIPS()  # reads the backbone from $TORCH_HOME/hub/checkpoints
    metric.update(preds, target)
    # The lpips package itself, loading the same torchvision file from the hub cache.
    ref_model = lpips.LPIPS(net="alex", pretrained=True, pnet_rand=False, verbose=False).eval()
    with torch.no_grad():
        x = preds.flatten(0, 1).float() / 127.5 - 1
        y = target.flatten(0, 1).float() / 127.5 - 1
        ref = ref_model(x, y).view(3, 4).mean(1).mean()
    assert metric.compute().item() == pytest.approx(ref.item(), abs=1e-6)
    # normalize=True (inputs in [0, 1]) is the same thing
    with torch.no_grad():
        ref01 = ref_model(
            preds.flatten(0, 1).float() / 255, target.flatten(0, 1).float() / 255, normalize=True
        )
    per_frame = MF.lpips_per_frame(metric.model, preds, target)
    torch.testing.assert_close(per_frame.flatten(), ref01.flatten(), atol=1e-6, rtol=1e-5)
