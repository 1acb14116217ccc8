"""SyncNet loads the reference parameter names; LSE-C/D equal a straightforward reference loop."""

from __future__ import annotations

import numpy as np
import pytest
import python_speech_features
import torch
import torch.nn.functional as F
from metrics_support import SYNCNET_FILE, hub_dir, reference_syncnet_state_dict, talking_videos

from emoface.metrics import SyncScore, face_crop
from emoface.metrics import functional as MF
from emoface.networks.syncnet import SyncNet


def _tiny_net(seed: int = 0) -> SyncNet:
    torch.manual_seed(seed)
    net = SyncNet(
        embed_dim=64,
        audio_channels=(8, 16, 16, 16, 16, 32),
        lip_channels=(8, 16, 16, 16, 16, 32),
        image_size=64,
    )
    for module in net.modules():  # non-trivial BatchNorm statistics
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.normal_(0, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return net.eval()


def _reference_scores(net: SyncNet, frames: torch.Tensor, wav: torch.Tensor, vshift: int = 15) -> tuple:
    """syncnet_python's SyncNetInstance.evaluate, written out the way the reference does it."""
    audio = np.round(wav.numpy() * 32768).clip(-32768, 32767).astype(np.int16)  # what wavfile.read gives
    mfcc = np.stack([np.array(i) for i in zip(*python_speech_features.mfcc(audio, 16000))])
    cct = torch.from_numpy(mfcc[None, None].astype(float)).float()
    im = frames.numpy()[:, ::-1].astype(float)  # RGB -> BGR, 0-255
    imtv = torch.from_numpy(np.ascontiguousarray(im.transpose(1, 0, 2, 3)[None])).float()  # (1, 3, T, H, W)
    min_length = min(frames.shape[0], len(audio) // 640)
    lastframe = min_length - 5
    im_feat, cc_feat = [], []
    with torch.no_grad():
        for v in range(lastframe):
            im_feat.append(net.forward_lip(imtv[:, :, v : v + 5]))
            cc_feat.append(net.forward_aud(cct[:, :, :, v * 4 : v * 4 + 20]))
    im_feat, cc_feat = torch.cat(im_feat), torch.cat(cc_feat)
    win = vshift * 2 + 1
    feat2p = F.pad(cc_feat, (0, 0, vshift, vshift))
    dists = [
        F.pairwise_distance(im_feat[[i], :].repeat(win, 1), feat2p[i : i + win, :])
        for i in range(len(im_feat))
    ]
    mdist = torch.mean(torch.stack(dists, 1), 1)
    minval, minidx = torch.min(mdist, 0)
    return (torch.median(mdist) - minval).item(), minval.item(), float(vshift - minidx)


def test_reference_state_dict_loads_unchanged(tmp_path, monkeypatch) -> None:
    state = reference_syncnet_state_dict()
    torch.save(state, hub_dir(tmp_path) / SYNCNET_FILE)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    net = SyncNet.from_pretrained()  # strict load of the reference names and shapes
    assert set(net.state_dict()) == set(state)
    for name, value in state.items():
        assert torch.equal(net.state_dict()[name], value), name
    assert net.forward_aud(torch.randn(2, 1, 13, 20)).shape == (2, 1024)
    metric = SyncScore()  # default: the hub-cache syncnet_v2.model
    assert not metric.net.training
    videos, audio = talking_videos(1, 7, 224, seed=3)
    metric.update(videos, audio)
    out = metric.compute()
    assert set(out) == {"lse_c", "lse_d", "offset"}
    assert torch.isfinite(out["lse_d"]) and out["lse_c"] >= 0


def test_lse_equals_reference_loop_and_ignores_batching() -> None:
    net = _tiny_net()
    videos, audio = talking_videos(3, 24, 64, seed=4)
    audio[1, -700:] = 0.0
    ours = MF.sync_scores(net, videos, audio, batch_size=7)
    for i in range(3):
        lse_c, lse_d, offset = _reference_scores(net, videos[i], audio[i])
        assert ours["lse_c"][i].item() == pytest.approx(lse_c, abs=1e-4)
        assert ours["lse_d"][i].item() == pytest.approx(lse_d, abs=1e-4)
        assert ours["offset"][i].item() == offset
    # Window batch size and video batching do not change anything.
    other = MF.sync_scores(net, videos, audio, batch_size=100)
    for key in ours:
        torch.testing.assert_close(other[key], ours[key], atol=1e-5, rtol=0)
    metric_a, metric_b = SyncScore(net=net, batch_size=3), SyncScore(net=net, batch_size=50)
    metric_a.update(videos, audio)
    for i in range(3):
        metric_b.update(videos[i : i + 1], audio[i : i + 1])
    for key, value in metric_a.compute().items():
        assert value.item() == pytest.approx(metric_b.compute()[key].item(), abs=1e-5)
        assert value.item() == pytest.approx(ours[key].mean().item(), abs=1e-5)


def test_float_frames_resampled_audio_and_lengths() -> None:
    net = _tiny_net(1)
    videos, audio = talking_videos(2, 20, 64, seed=5)
    base = MF.sync_scores(net, videos, audio)
    # [0, 1] floats give the same scores as uint8
    as_float = MF.sync_scores(net, videos.float() / 255, audio)
    torch.testing.assert_close(as_float["lse_d"], base["lse_d"], atol=1e-3, rtol=0)
    # lengths cut padded videos: equal to the unpadded call
    padded = torch.cat([videos, torch.zeros_like(videos[:, :5])], 1)
    wav_padded = torch.cat([audio, torch.zeros(2, 5 * 640)], 1)
    cut = MF.sync_scores(net, padded, wav_padded, lengths=[20, 20])
    torch.testing.assert_close(cut["lse_c"], base["lse_c"], atol=1e-5, rtol=0)
    # audio at another rate is resampled to 16 kHz
    assert (
        MF.syncnet_mfcc(torch.zeros(48000) + 0.01, 48000).shape
        == MF.syncnet_mfcc(torch.zeros(16000) + 0.01).shape
    )
    with pytest.raises(ValueError, match="at least 6 frames"):
        MF.sync_scores(net, videos[:, :5], audio[:, : 5 * 640])


def test_offset_distances_vectorised_equals_loop() -> None:
    g = torch.Generator().manual_seed(0)
    v, a = torch.randn(9, 16, generator=g), torch.randn(9, 16, generator=g)
    d = MF.offset_distances(v, a, vshift=3)
    padded = F.pad(a, (0, 0, 3, 3))
    for i in range(9):
        torch.testing.assert_close(d[i], F.pairwise_distance(v[[i]].repeat(7, 1), padded[i : i + 7]))


def test_face_crop_follows_reference_rule() -> None:
    frames = torch.zeros(4, 3, 100, 100, dtype=torch.uint8)
    frames[:, :, 30:70, 30:70] = 200
    landmarks = torch.zeros(4, 68, 2)
    landmarks[:, :, 0] = torch.linspace(30, 70, 68)
    landmarks[:, :, 1] = torch.linspace(30, 70, 68)
    crop = face_crop(frames, landmarks, size=56)
    assert crop.shape == (4, 3, 56, 56) and crop.dtype == torch.uint8
    # box: bs = 20, columns 50 -+ 28, rows 30 .. 86 -> the bright square fills the top-centre
    assert crop[0, 0, 5, 28].item() == 200
    assert crop[0, 0, 50, 28].item() == 0  # below the square, inside the frame
    whole = face_crop(frames, None, size=56)
    assert whole[0, 0, 0, 0].item() == 110  # outside the frame: the reference's grey padding


def test_non_native_input_is_resized_like_the_reference() -> None:
    """256 px crops score exactly as crops resized by hand with OpenCV and fed at 224 (the reference)."""
    import cv2

    net = SyncNet()
    net.load_state_dict(reference_syncnet_state_dict(seed=2))
    net.eval()
    videos, audio = talking_videos(1, 8, 256, seed=6)
    by_hand = torch.from_numpy(
        np.stack([cv2.resize(f, (224, 224)) for f in videos[0].permute(0, 2, 3, 1).numpy()])
    ).permute(0, 3, 1, 2)[None]
    ours = MF.sync_scores(net, videos, audio)
    reference = MF.sync_scores(net, by_hand, audio)
    for key in ours:
        assert ours[key].item() == pytest.approx(reference[key].item(), abs=1e-6), key
    torch.testing.assert_close(MF.reference_resize(videos[0], 224), by_hand[0], atol=0, rtol=0)
    # The antialiased float resize the metric used before is not the reference's.
    smooth = F.interpolate(videos[0].float(), size=(224, 224), mode="bilinear", antialias=True)
    assert not torch.equal(smooth.round().to(torch.uint8), by_hand[0])
