"""FID equals pytorch-fid (frechet distance on the same features, and its folder-based score)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from metrics_support import FID_FILE, talking_videos, write_fid_inception_weights
from PIL import Image

from emoface.metrics import FID, build_fid_inception
from emoface.metrics import functional as MF


@pytest.fixture(scope="module")
def torch_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("torch_home")
    write_fid_inception_weights(home)
    return home


@pytest.fixture(scope="module")
def inception(torch_home: Path) -> torch.nn.Module:
    return build_fid_inception(torch_home / "hub" / "checkpoints" / FID_FILE)


def _sets(frames: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    real, _ = talking_videos(2, frames, 64, seed=1)
    fake, _ = talking_videos(2, frames, 64, seed=2)
    fake[:, :, 1] = (fake[:, :, 1].int() * 3 // 4).to(torch.uint8)  # a colour shift: a different set
    return real, fake


def _write_pngs(videos: torch.Tensor, folder: Path) -> None:
    folder.mkdir()
    for i, frame in enumerate(videos.flatten(0, 1)):
        Image.fromarray(frame.permute(1, 2, 0).numpy()).save(folder / f"{i:03d}.png")


def test_fid_statistics_equal_pytorch_fid_folder_pipeline(
    torch_home: Path, inception: torch.nn.Module, tmp_path: Path, monkeypatch
) -> None:
    """Our accumulated statistics equal pytorch-fid's on the same images (PNG folder, its model).

    FID is a function of these statistics only and ``compute()`` hands them to pytorch-fid's
    ``calculate_frechet_distance``; the end-to-end score equality (two 2048 x 2048 ``sqrtm``,
    about a minute on 2 CPU cores) is the slow test below.
    """
    from pytorch_fid.fid_score import compute_statistics_of_path
    from pytorch_fid.inception import InceptionV3

    real, _ = _sets(frames=2)
    metric = FID(inception=inception)
    metric.update(real[:1], real=True)
    metric.update(real[1:], real=True)
    mu, sigma = metric.real_statistics()

    _write_pngs(real, tmp_path / "real")
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    ref_model = InceptionV3([3]).eval()  # pytorch-fid loads the stand-in file from the hub cache
    ref_mu, ref_sigma = compute_statistics_of_path(str(tmp_path / "real"), ref_model, 4, 2048, "cpu", 0)
    assert np.abs(ref_sigma).max() > 0  # stand-in weights still give informative features
    np.testing.assert_allclose(mu, ref_mu, atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(sigma, ref_sigma, atol=1e-5, rtol=1e-4)

    # Real statistics saved once and reloaded; pytorch-fid reads the same file.
    stats = tmp_path / "real_stats.npz"
    metric.save_real_statistics(stats)
    reloaded = FID(inception=inception, real_statistics=stats)
    np.testing.assert_array_equal(reloaded.real_statistics()[1], sigma)
    file_mu, file_sigma = compute_statistics_of_path(str(stats), ref_model, 4, 2048, "cpu", 0)
    np.testing.assert_array_equal(file_mu, mu)
    np.testing.assert_array_equal(file_sigma, sigma)

    keep = FID(inception=inception, reset_real_features=False)
    keep.update(real, real=True)
    keep.reset()
    assert keep.real_count.item() == real.shape[0] * real.shape[1]


def test_frechet_distance_equals_pytorch_fid_formula() -> None:
    from pytorch_fid.fid_score import calculate_frechet_distance

    rng = np.random.default_rng(0)
    for n in (12, 200):  # rank-deficient and full-rank covariances
        a, b = rng.normal(size=(n, 64)), rng.normal(size=(n, 64)) * 1.3 + 0.2
        stats_a, stats_b = MF.feature_statistics(a), MF.feature_statistics(b)
        ref = calculate_frechet_distance(*stats_a, *stats_b)
        assert MF.frechet_distance(*stats_a, *stats_b) == pytest.approx(ref, abs=1e-8)


@pytest.mark.slow
def test_fid_equals_pytorch_fid_end_to_end(
    torch_home: Path, inception: torch.nn.Module, tmp_path: Path, monkeypatch
) -> None:
    from pytorch_fid.fid_score import calculate_fid_given_paths

    real, fake = _sets(frames=4)
    metric = FID(inception=inception)
    metric.update(real, real=True)
    metric.update(fake[:1], real=False)
    metric.update(fake[1:], real=False)
    ours = metric.compute().item()
    _write_pngs(real, tmp_path / "real")
    _write_pngs(fake, tmp_path / "fake")
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    folder = calculate_fid_given_paths(
        [str(tmp_path / "fake"), str(tmp_path / "real")], batch_size=4, device="cpu", dims=2048, num_workers=0
    )
    assert ours == pytest.approx(folder, abs=1e-3)
