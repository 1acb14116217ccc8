"""Every metric over a dataset split across 2 CPU ranks (gloo, Lightning ddp_spawn) equals 1 process."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from metrics_support import talking_videos
from torch.utils.data import Dataset

from emoface.metrics import (
    FID,
    LPIPS,
    PSNR,
    SSIM,
    EmotionAccuracy,
    FrechetMotionDistance,
    GazeError,
    LandmarkDistance,
    MotionEnergyCorrelation,
    MotionStatistics,
    PoseError,
    SyncScore,
)
from emoface.networks.emotion_fan import EmotionFAN
from emoface.networks.syncnet import SyncNet

N_VIDEOS = 6  # divisible by the 2 ranks, so the distributed sampler adds no duplicates


class _Clips(Dataset):
    def __init__(self) -> None:
        self.real, self.audio = talking_videos(N_VIDEOS, 7, 64, seed=10)
        fake, _ = talking_videos(N_VIDEOS, 7, 64, seed=11)
        self.fake = fake
        g = torch.Generator().manual_seed(12)
        self.lm = torch.rand(N_VIDEOS, 7, 68, 3, generator=g) * 64
        self.lm_fake = self.lm + torch.randn(self.lm.shape, generator=g)
        self.gaze = torch.randn(N_VIDEOS, 7, 2, 2, generator=g) * 10
        self.gaze_fake = self.gaze + torch.randn(self.gaze.shape, generator=g) * 3
        self.pose = torch.randn(N_VIDEOS, 7, 3, generator=g) * 20
        self.pose_fake = self.pose + torch.randn(self.pose.shape, generator=g) * 2
        self.emotion = torch.arange(N_VIDEOS) % 8
        self.energy = torch.rand(N_VIDEOS, 7, generator=g)

    def __len__(self) -> int:
        return N_VIDEOS

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {
            "real": self.real[i], "fake": self.fake[i], "audio": self.audio[i],
            "lm": self.lm[i], "lm_fake": self.lm_fake[i], "gaze": self.gaze[i], "gaze_fake": self.gaze_fake[i],
            "pose": self.pose[i], "pose_fake": self.pose_fake[i], "emotion": self.emotion[i],
            "energy": self.energy[i],
        }  # fmt: skip


class _TinyFeatures(torch.nn.Module):
    """Stands in for InceptionV3 (same output contract: a list holding ``(N, 2048, 1, 1)``).

    What DDP can break is the reduction of FID's states, not the feature network, and the real
    Inception costs ~1 s per frame on this CPU; the Inception itself is tested in test_metrics_fid.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 2048, kernel_size=8, stride=8)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [torch.nn.functional.adaptive_avg_pool2d(torch.tanh(self.conv(x)), 1)]


def _metrics(inception: torch.nn.Module) -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    syncnet = SyncNet(
        embed_dim=32, audio_channels=(8,) * 5 + (16,), lip_channels=(8,) * 5 + (16,), image_size=64
    ).eval()
    fan = EmotionFAN(layers=(1, 1, 1, 1), base_width=8, image_size=32).eval()
    return {
        "psnr": PSNR(),
        "ssim": SSIM(),
        "lpips": LPIPS(random_backbone=True),
        "fid": FID(inception=inception),
        "sync": SyncScore(net=syncnet),
        "emotion": EmotionAccuracy(net=fan),
        "lmd": LandmarkDistance(),
        "gaze": GazeError(),
        "pose": PoseError(with_translation=False),
        "motion": MotionStatistics(),
        "motion_fd": FrechetMotionDistance(),
        "motion_energy": MotionEnergyCorrelation(),
    }


def _update(metrics: dict, batch: dict) -> None:
    metrics["psnr"].update(batch["fake"], batch["real"])
    metrics["ssim"].update(batch["fake"], batch["real"])
    metrics["lpips"].update(batch["fake"], batch["real"])
    metrics["fid"].update(batch["real"], real=True)
    metrics["fid"].update(batch["fake"], real=False)
    metrics["sync"].update(batch["fake"], batch["audio"])
    metrics["emotion"].update(batch["fake"], batch["emotion"])
    metrics["lmd"].update(batch["lm_fake"], batch["lm"])
    metrics["gaze"].update(batch["gaze_fake"], batch["gaze"])
    metrics["pose"].update(batch["pose_fake"], batch["pose"])
    metrics["motion"].update(batch["pose_fake"], batch["gaze_fake"], batch["pose"], batch["gaze"], batch["emotion"])
    metrics["motion_fd"].update(batch["pose_fake"], batch["gaze_fake"], batch["pose"], batch["gaze"])
    metrics["motion_energy"].update(batch["pose_fake"], batch["pose"], batch["energy"])


def _flatten(metrics: dict) -> dict[str, float]:
    """Scalar results; FID is represented by its synced statistics (see the note in the test)."""
    out: dict[str, float] = {}
    for name, metric in metrics.items():
        if name == "fid":
            with metric.sync_context():  # all-reduce of the sums, as compute() does
                mu, sigma = metric.real_statistics()
                mu_f, sigma_f = metric.fake_statistics()
            out |= {"fid_mu_real": float(mu.sum()), "fid_sigma_real": float(abs(sigma).sum()),
                    "fid_mu_fake": float(mu_f.sum()), "fid_sigma_fake": float(abs(sigma_f).sum())}  # fmt: skip
            continue
        value = metric.compute()
        if isinstance(value, dict):
            for key, v in value.items():
                out[f"{name}_{key}"] = float(torch.nan_to_num(v, nan=-1.0).sum())
        else:
            out[name] = float(value)
    return out


class _System(L.LightningModule):
    def __init__(self, inception: torch.nn.Module) -> None:
        super().__init__()
        self.metrics = torch.nn.ModuleDict(_metrics(inception))

    def test_step(self, batch: dict, batch_idx: int) -> None:
        _update(self.metrics, batch)

    def on_test_epoch_end(self) -> None:
        for key, value in _flatten(self.metrics).items():
            self.log(key, value, rank_zero_only=True)


def test_metrics_equal_single_process_under_ddp(tmp_path) -> None:
    """2 CPU ranks with gloo, each metric in a LightningModule's test_step.

    FID's ``compute()`` is a deterministic function (pytorch-fid's) of the synced statistics and
    costs a 2048 x 2048 ``sqrtm`` per call (~30 s here), so the statistics are compared instead;
    its feature network is a small stand-in (see ``_TinyFeatures``).
    """
    torch.manual_seed(0)
    inception = _TinyFeatures().eval()
    data = _Clips()
    single = _metrics(inception)
    loader = torch.utils.data.DataLoader(data, batch_size=N_VIDEOS)
    for batch in loader:
        _update(single, batch)
    expected = _flatten(single)

    system = _System(inception)
    trainer = L.Trainer(
        accelerator="cpu", devices=2, strategy="ddp_spawn", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.test(system, torch.utils.data.DataLoader(data, batch_size=2), verbose=False)
    got = {k: float(v) for k, v in trainer.callback_metrics.items()}
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-5, abs=1e-5), key
