"""Free head motion in mini-MEAD (issue 25): poses in range and true in the sidecars, its own cache,
a crop that keeps the moving face whole, and the default data unchanged."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from emoface.cli import main
from emoface.datamodules import mini_mead as mm
from emoface.geometry.rotations import euler_to_matrix
from emoface.io.arrays import load_npz
from emoface.preprocessing.features import (
    CropBox,
    CropTrack,
    crop_frames,
    crop_frames_tracked,
    crop_padding,
    estimate_pose,
    landmarks_to_crop,
    stable_crop_box,
    tracking_crop_boxes,
)
from emoface.preprocessing.manifest import read_config, read_manifest
from emoface.preprocessing.pipeline import PreprocessOptions, preprocess
from emoface.preprocessing.store import ClipFile

# sha256 of render_clip's frames, waveform and sidecar arrays (sorted keys) for three clips of
# the default mini-MEAD (3 speakers, 1 s, 64 px, seed 0), computed before the free-motion option
# existed (generator version 2, commit 9051d85): the default data stage 1 is calibrated on.
DEFAULT_CLIP_SHA256 = {
    ("M005", "happy", 3): "2d993956c42f1eb6cb10dfc984b1f0ed08387a34517cc2e03adfff8e025787ef",
    ("W011", "neutral", 1): "e752b28bcb3149e8e52a1d45282a105165556973196c0c9ac48e629920bdc6aa",
    ("M007", "surprised", 2): "87ab39d0a9a0fe83b19063cc58082cf9c45db3f26c18cae3ec48daf4f67b4471",
}
FREE_CLIPS = [("M005", "happy", 3), ("W011", "neutral", 1), ("M007", "surprised", 2), ("W014", "sad", 2),
              ("M009", "angry", 1), ("W016", "fear", 3)]  # fmt: skip


def _digest(clip: mm.RenderedClip) -> str:
    digest = hashlib.sha256()
    digest.update(clip.frames.tobytes())
    digest.update(clip.waveform.tobytes())
    for key in sorted(clip.truth):
        digest.update(key.encode())
        digest.update(np.asarray(clip.truth[key]).tobytes())
    return digest.hexdigest()


def _render(actor: str, emotion: str, level: int, free_motion: bool, size: int = 64, seconds: float = 1.0) -> mm.RenderedClip:
    config = mm.MiniMEADConfig(speakers=3, clips=1, seconds=seconds, size=size, seed=0, free_motion=free_motion)
    return mm.render_clip(mm.ClipJob("unused", actor, emotion, level, 1, config))


def test_default_data_is_unchanged() -> None:
    for (actor, emotion, level), expected in DEFAULT_CLIP_SHA256.items():
        assert _digest(_render(actor, emotion, level, free_motion=False)) == expected, (actor, emotion, level)
    assert "free_motion" not in mm.MiniMEADConfig().record()


def test_free_motion_poses_are_in_range_and_the_sidecar_pose_is_the_rendered_pose() -> None:
    yaw_spread, within = [], []
    for actor, emotion, level in FREE_CLIPS:
        free = _render(actor, emotion, level, free_motion=True, seconds=2.0)
        default = _render(actor, emotion, level, free_motion=False, seconds=2.0)
        truth, size = free.truth, 64
        euler = truth["euler"]  # (T, 3)
        assert np.all(np.abs(euler) < np.array(mm.FREE_ROTATION_LIMITS)), (actor, emotion, euler.min(0), euler.max(0))
        base = mm.FREE_HEAD_SCALE * size
        assert np.all(np.abs(truth["scale"] / base - 1.0) < mm.FREE_SCALE_LIMIT + 1e-6)
        shift = (truth["translation"][:, :2] - np.array([size / 2, size * 0.47])) / truth["scale"][:, None]  # canonical
        assert np.all(np.abs(shift) < mm.FREE_SHIFT_LIMIT * mm.FACE_EXTENT + 1e-5)
        yaw_spread.append(euler[:, 0])
        within.append(euler.std(0))
        # The sidecar's pose is the one drawn: it maps the canonical shape onto the drawn landmarks ...
        rotation = euler_to_matrix(torch.from_numpy(euler.astype(np.float64))).numpy()
        np.testing.assert_allclose(truth["rotation"], rotation, atol=1e-5)
        posed = truth["scale"][:, None, None] * np.einsum("tij,tnj->tni", rotation, truth["normalized_landmarks"])
        np.testing.assert_allclose(posed + truth["translation"][:, None], truth["landmarks"], atol=2e-3)
        # ... an estimate from the landmarks finds it ...
        estimate = estimate_pose(truth["landmarks"])["euler"]
        assert np.abs(estimate - euler).mean() < 2.5, np.abs(estimate - euler).mean(0)
        # ... and the face in the image is where the landmarks say (skin differs from the background).
        # (The background is a vertical gradient: each row's own colour is at its left edge.)
        differs = np.abs(free.frames.astype(int) - free.frames[:, :, :1].astype(int)).sum(-1) > 30  # (T, H, W)
        forehead = truth["scale"][:, None, None] * np.einsum("tij,nj->tni", rotation, mm._FOREHEAD) + truth["translation"][:, None]
        for t in (0, len(euler) // 2, len(euler) - 1):
            drawn = np.concatenate([truth["landmarks"][t], forehead[t]])[:, :2]  # the head's outline points
            top, bottom = drawn[:, 1].min(), drawn[:, 1].max()
            columns = np.flatnonzero(differs[t, int(top) + 1 : int(bottom)].any(0))
            assert abs(columns.min() - drawn[:, 0].min()) < 3 and abs(columns.max() - drawn[:, 0].max()) < 3
        # The speech, mouth, blinks and gaze are the default clip's: only the head moves differently.
        np.testing.assert_array_equal(free.waveform, default.waveform)
        for key in ("normalized_landmarks", "gaze", "mouth_open", "blink", "speech_stress"):
            np.testing.assert_array_equal(truth[key], default.truth[key], err_msg=key)
        assert np.abs(euler - default.truth["euler"]).max() > 5.0
    yaws = np.concatenate(yaw_spread)
    assert yaws.max() - yaws.min() > 30.0  # free talking turns, not MEAD's frontal few degrees
    assert np.mean(within, 0)[0] > 4.0  # and it moves within a clip (the renderer's pairs)


def test_free_motion_has_its_own_cache_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from emoface.datamodules import MEADDataModule

    monkeypatch.setenv("EMOFACE_CACHE", str(tmp_path))
    default = MEADDataModule(mini_mead_speakers=24, mini_mead_clips=1, size=64)
    free = MEADDataModule(mini_mead_speakers=24, mini_mead_clips=1, size=64, mini_mead_free_motion=True)
    assert default.cache_dir == tmp_path / "mini-mead" / f"v{mm.GENERATOR_VERSION}-s24-c1-t2-64" / "cache"  # as before
    assert free.raw_root != default.raw_root and free.cache_dir.parent != default.cache_dir.parent
    assert free.cache_dir.name == "cache-track" and free._crop() == "track" and free._frame_size() == 86
    assert free.cache_dir.parent.name.endswith(f"-free{mm.FREE_MOTION_VERSION}")  # a changed motion is never reused
    clip_crop = MEADDataModule(mini_mead_speakers=24, mini_mead_clips=1, size=64, mini_mead_free_motion=True, crop="clip")
    assert clip_crop.raw_root == free.raw_root and clip_crop.cache_dir != free.cache_dir
    with pytest.raises(ValueError, match="crop"):
        MEADDataModule(crop="union")


def test_tracked_crop_matches_the_clip_crop_for_a_still_integer_box() -> None:
    """Same geometry as :func:`crop_frames` (its half-pixel convention, its black borders), so the
    landmarks map into the tracked crops exactly as into the clip crops."""
    yy, xx = np.mgrid[0:40, 0:50].astype(float)
    image = np.stack([5.0 * xx, 6.0 * yy, 120 + 100 * np.sin(xx / 6.0) * np.cos(yy / 5.0)], -1)  # smooth, steep
    frames = np.repeat(np.clip(image, 0, 255).astype(np.uint8)[None], 3, 0)
    for side in (24, 80):  # enlarging; shrinking with a box past the frame's edge
        box = CropBox(x0=-3, y0=5, side=side, size=64)
        track = CropTrack(np.full(3, -3.0), np.full(3, 5.0), float(side), 64)
        expected, got = crop_frames(frames, box).astype(int), crop_frames_tracked(frames, track).astype(int)
        inner = np.abs(expected - got)[:, 3:-3, 3:-3]  # the outermost pixels differ: resize repeats the box's edge
        assert inner.mean() < 1.0 and inner.max() <= 8, (side, inner.mean(), inner.max())
        assert (got[:, :, :2] == 0).all()  # black left of the frame, as crop_frames
    moved = crop_frames_tracked(frames, CropTrack(np.full(3, 2.5), np.full(3, 5.0), 24.0, 24))  # 1:1, half a pixel
    assert np.abs(moved[0, 5:-5, 5:-5, 0].astype(float) - (5.0 * (np.arange(5, 19) + 2.5))[None]).max() <= 1.0


@pytest.fixture(scope="module")
def free_motion_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A free-motion mini-MEAD: 2 actors, 1.2 s clips, drawn at 86 px for 64 px crops."""
    out = tmp_path_factory.mktemp("free-motion")
    assert main(["mini-mead", str(out / "raw"), "--speakers", "2", "--clips", "1", "--seconds", "1.2", "--size", "86",
                 "--workers", "1", "--free-motion"]) == 0  # fmt: skip
    return out / "raw"


def _face_extent(landmarks: np.ndarray) -> np.ndarray:
    xy = landmarks[..., :2]
    return (xy.max(1) - xy.min(1)).max(1)  # (T,)


def test_the_tracking_crop_keeps_the_moving_face_whole_and_steady(free_motion_tree: Path, tmp_path: Path) -> None:
    meta = json.loads((free_motion_tree / "mini_mead.json").read_text())
    assert meta["config"]["free_motion"] is True and meta["free_motion_version"] == mm.FREE_MOTION_VERSION
    cache = tmp_path / "cache"
    summary = preprocess(free_motion_tree, cache, PreprocessOptions(backend="groundtruth", size=64), progress=False)
    assert summary.failed == 0 and summary.ok_total == 44
    assert read_config(cache)["crop"] == "track" and read_config(cache)["crop_smoothing"] == 1.0  # auto: tracked
    steadiness, sizes = [], []
    for row in read_manifest(cache, status="ok"):
        clip = ClipFile(cache / row["file"])
        boxes, landmarks = np.asarray(clip["crop_box"]), np.asarray(clip["landmarks"])
        num = clip.num_frames
        assert boxes.shape == (num, 4) and np.all(boxes[:, 2] == boxes[0, 2])  # one side per clip
        track = CropTrack(boxes[:, 0].astype(float), boxes[:, 1].astype(float), float(boxes[0, 2]), 64)
        assert crop_padding(track, (86, 86)).max() == 0.0  # never past the frame's edge: no black border
        assert landmarks[..., :2].min() >= 0.0 and landmarks[..., :2].max() < 64.0  # the face is whole in every frame
        truth = load_npz(free_motion_tree / row["source"].replace("/video/front/", "/groundtruth/").replace(".mp4", ".npz"))
        np.testing.assert_allclose(landmarks[..., 0], (truth["landmarks"][:num, :, 0] - boxes[:, :1]) * 64 / boxes[:, 2:3], atol=1e-3)
        extent = _face_extent(landmarks)
        steadiness.append(extent.std() / extent.mean())
        sizes.append(extent.mean())
        frames = clip.frames(0, num)
        assert frames[:, :2].mean() > 10 and frames[:, -2:].mean() > 10  # the background, not black
    assert np.mean(steadiness) < 0.1  # the face keeps its size within a clip (the head's own zoom is +-10%) ...
    assert np.all(np.abs(np.array(sizes) / (64 / 1.6) - 1.0) < 0.12)  # ... and across clips: 1 / crop_scale of the crop


def test_crop_option_is_checked_and_recorded(free_motion_tree: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="crop"):
        preprocess(free_motion_tree, tmp_path / "a", PreprocessOptions(backend="groundtruth", size=32, crop="union"),
                   progress=False)  # fmt: skip
    with pytest.raises(ValueError, match="crop_smoothing"):
        preprocess(free_motion_tree, tmp_path / "a", PreprocessOptions(backend="groundtruth", size=32, crop_smoothing=-1),
                   progress=False)  # fmt: skip
    cache = tmp_path / "b"
    assert main(["preprocess", "--root", str(free_motion_tree), "--out", str(cache), "--backend", "groundtruth", "--size", "32",
                 "--crop", "clip", "--actors", "M005", "--emotions", "neutral", "--no-progress"]) == 0  # fmt: skip
    assert "crop" not in read_config(cache) and "crop_smoothing" not in read_config(cache)  # as caches made before
    assert np.asarray(ClipFile(next(cache.rglob("*.npz")))["crop_box"]).shape == (4,)  # the one box of the clip crop
    with pytest.raises(ValueError, match="other settings"):
        preprocess(free_motion_tree, cache, PreprocessOptions(backend="groundtruth", size=32, crop="track"),
                   actors=["M005"], emotions=["neutral"], progress=False)  # fmt: skip
    assert tracking_crop_boxes(np.zeros((1, 68, 3)), 32).side == 8.0  # a degenerate face still gives a box


def test_with_the_head_at_the_default_size_the_union_crop_pads_and_the_tracking_crop_less(free_motion_tree: Path) -> None:
    """The issue-25 probe's setting (free motion, head at the default size, 64 px frames): the
    per-clip union box runs past the frame on most clips; the tracking crop keeps the face whole
    and at one size, moving inside the frame where it can."""
    union_padded, union_border, track_border = [], [], []
    ratio = (mm.HEAD_SCALE * 64) / (mm.FREE_HEAD_SCALE * 86)
    for sidecar in sorted(free_motion_tree.glob("*/groundtruth/*/level_*/*.npz")):
        landmarks = load_npz(sidecar)["landmarks"].astype(np.float64)
        landmarks = (landmarks - np.array([43.0, 0.47 * 86, 0.0])) * ratio + np.array([32.0, 0.47 * 64, 0.0])  # as drawn at 64 px
        union = stable_crop_box(landmarks, 64)
        track = tracking_crop_boxes(landmarks, 64, smoothing=PreprocessOptions().crop_smoothing * 25, frame_size=(64, 64))
        union_padded.append(crop_padding(union, (64, 64))[0] > 0)
        union_border.append(crop_padding(union, (64, 64))[0])
        track_border.append(crop_padding(track, (64, 64)).mean())
        crop = landmarks_to_crop(landmarks, track)[..., :2]
        assert crop.min() >= 0 and crop.max() < 64  # whole in every frame
        assert union.side > track.side  # the union box is larger: the face is smaller in it
    assert np.mean(union_padded) > 0.8
    assert np.mean(track_border) < 0.5 * np.mean(union_border)  # black border: a fraction of the union box's
