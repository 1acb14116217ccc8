"""`emoface preprocess`: cache contents, ground-truth checks, robustness, idempotence, resumability."""

from __future__ import annotations

import csv
import mmap
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import python_speech_features as psf
import torch

from emoface.cli import main
from emoface.geometry.alignment import apply_similarity
from emoface.geometry.rotations import euler_to_matrix, geodesic_angle
from emoface.io import read_audio
from emoface.io.arrays import load_npz
from emoface.preprocessing.features import ClipFailure, drop_stray_faces, estimate_pose, fill_gaps
from emoface.preprocessing.manifest import COLUMNS, read_manifest
from emoface.preprocessing.store import ClipFile


def _truth(raw: Path, clip_id: str) -> dict[str, np.ndarray]:
    actor, emotion, level, name = clip_id.split("/")
    return load_npz(raw / actor / "groundtruth" / emotion / level / f"{name}.npz")


def _cache_files(cache: Path) -> dict[str, bytes]:
    return {p.relative_to(cache).as_posix(): p.read_bytes() for p in sorted(cache.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------------------------
# Cache contents
# ----------------------------------------------------------------------------------------------
def test_cache_arrays_follow_the_documented_format(mini_mead_128: Path, mead_cache_128: Path) -> None:
    rows = read_manifest(mead_cache_128)
    assert len(rows) == 66 and all(row["status"] == "ok" for row in rows)
    assert tuple(rows[0].keys()) == COLUMNS
    row = rows[0]
    clip = ClipFile(mead_cache_128 / row["file"])
    num = int(row["frames"])
    assert num == 25 and clip.num_frames == num
    shapes = {
        "landmarks": (num, 68, 3), "normalized_landmarks": (num, 68, 3), "rotation": (num, 3, 3),
        "euler": (num, 3), "translation": (num, 3), "scale": (num,), "gaze": (num, 2, 2),
        "gaze_confidence": (num, 2), "audio": (4 * num, 39), "waveform": (640 * num,),
        "frames_offsets": (num + 1,), "face_found": (num,),
    }  # fmt: skip
    for key, shape in shapes.items():
        assert clip[key].shape == shape, key
    # stored uncompressed: a read-only view of the clip file's one memory map (windows read only their rows)
    assert isinstance(clip["landmarks"].base, mmap.mmap) and not clip["landmarks"].flags.writeable
    frames = clip.frames(3, 7)
    assert frames.shape == (4, 128, 128, 3) and frames.dtype == np.uint8

    # Audio features are exactly python_speech_features' MFCC + log-fbank of the trimmed audio.
    actor, emotion, level, name = row["clip"].split("/")
    wave = read_audio(mini_mead_128 / actor / "audio" / emotion / level / f"{name}.m4a")[: 640 * num]
    mfcc, fbank = psf.mfcc(wave, 16000), psf.logfbank(wave, 16000)
    assert len(mfcc) == 4 * num - 1
    np.testing.assert_allclose(clip["audio"][: 4 * num - 1, :13], mfcc, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(clip["audio"][: 4 * num - 1, 13:], fbank, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(np.asarray(clip["waveform"]) / 32767.0, wave, atol=1e-4)

    # Crop landmarks are the ground truth moved into the crop box.
    truth = _truth(mini_mead_128, row["clip"])
    x0, y0, side, size = clip["crop_box"]
    expected = (truth["landmarks"][:num] - np.array([x0, y0, 0.0])) * (size / side)
    np.testing.assert_allclose(clip["landmarks"], expected, atol=1e-3)
    # The face sits inside the crop.
    assert clip["landmarks"][..., :2].min() > 0 and clip["landmarks"][..., :2].max() < 128


def test_clip_files_reopen_without_reparsing_and_see_a_rewritten_file(tmp_path: Path) -> None:
    """Reopening a clip file reuses its parsed layout; a file rewritten in place (save_npz renames a
    new file over it) is parsed again, and deflated members are still read."""
    from emoface.io.arrays import save_npz
    from emoface.preprocessing import store

    path = tmp_path / "clip.npz"
    save_npz(path, {"landmarks": np.arange(2 * 68 * 3, dtype=np.float32).reshape(2, 68, 3), "fps": np.int64(25)},
             compress=False)  # fmt: skip
    first = ClipFile(path)
    parsed = store._member_layout.cache_info().misses
    again = ClipFile(path)
    assert store._member_layout.cache_info().misses == parsed  # the layout came from the memo
    np.testing.assert_array_equal(again["landmarks"], first["landmarks"])
    assert int(again["fps"]) == 25 and isinstance(again["landmarks"].base, mmap.mmap)

    # Same shapes and size, new values: a new file version, so its layout is parsed again.
    save_npz(path, {"landmarks": -np.ones((2, 68, 3), dtype=np.float32), "fps": np.int64(30)}, compress=False)
    rewritten = ClipFile(path)
    assert store._member_layout.cache_info().misses == parsed + 1
    assert rewritten.num_frames == 2 and float(rewritten["landmarks"].max()) == -1.0 and int(rewritten["fps"]) == 30

    save_npz(path, {"landmarks": np.zeros((3, 68, 3), dtype=np.float32)}, compress=True)  # deflated members
    deflated = ClipFile(path)
    assert deflated.num_frames == 3 and deflated["landmarks"].shape == (3, 68, 3)


# ----------------------------------------------------------------------------------------------
# Checks against ground truth (issue item 5)
# ----------------------------------------------------------------------------------------------
def test_pose_matches_the_generator(mini_mead_128: Path, mead_cache_128: Path) -> None:
    errors = []
    for row in read_manifest(mead_cache_128, status="ok"):
        clip = ClipFile(mead_cache_128 / row["file"])
        truth = _truth(mini_mead_128, row["clip"])
        num = clip.num_frames
        errors.append(geodesic_angle(torch.from_numpy(np.array(clip["rotation"])), torch.from_numpy(truth["rotation"][:num])))
    error = torch.cat(errors)
    assert error.mean() < 1.0, f"mean rotation error {error.mean():.3f} deg"
    assert error.max() < 5.0


def test_gaze_from_images_tracks_the_generator(mini_mead_128: Path, mead_cache_128: Path) -> None:
    estimated, truth, blinking, confidence = [], [], [], []
    for row in read_manifest(mead_cache_128, status="ok"):
        clip = ClipFile(mead_cache_128 / row["file"])
        estimated.append(np.array(clip["gaze"]))
        sidecar = _truth(mini_mead_128, row["clip"])
        truth.append(sidecar["gaze"][: clip.num_frames])
        blinking.append(sidecar["blink"][: clip.num_frames] > 0.3)
        confidence.append(np.asarray(clip["gaze_confidence"]))
        assert (np.asarray(clip["gaze_confidence"]) >= 0).all() and (np.asarray(clip["gaze_confidence"]) <= 1).all()
    # A closing lid hides the iris (mini-MEAD blinks): its gaze is not in the image, and the
    # estimator says so (closed eyes get confidence 0); compare the frames with open eyes.
    closed, conf = np.concatenate(blinking), np.concatenate(confidence)
    assert conf[closed].mean() < conf[~closed].mean()
    est, gt = np.concatenate(estimated)[~closed], np.concatenate(truth)[~closed]  # (N, 2 eyes, (yaw, pitch))
    for eye in range(2):
        for k, angle in enumerate(("yaw", "pitch")):
            corr = np.corrcoef(est[:, eye, k], gt[:, eye, k])[0, 1]
            assert corr > 0.8, f"eye {eye} {angle}: correlation {corr:.3f}"
        # Degrees, not an arbitrary unit: the yaw slope is close to 1.
        slope = np.polyfit(gt[:, eye, 0], est[:, eye, 0], 1)[0]
        assert 0.7 < slope < 1.3


def test_normalized_landmarks_are_pose_invariant(mini_mead_128: Path) -> None:
    truth = _truth(mini_mead_128, "M005/happy/level_3/001")
    expression = torch.from_numpy(truth["normalized_landmarks"][10]).double()  # (68, 3) one expression
    poses = torch.tensor([[0.0, 0.0, 0.0], [25.0, -10.0, 5.0], [-30.0, 15.0, -8.0], [10.0, 20.0, 12.0]])
    rotation = euler_to_matrix(poses.double())
    scale = torch.tensor([50.0, 80.0, 35.0, 120.0], dtype=torch.float64)
    translation = torch.tensor([[64.0, 60.0, 0.0], [20.0, 90.0, 5.0], [100.0, 30.0, -3.0], [0.0, 0.0, 0.0]]).double()
    landmarks = apply_similarity(expression.expand(4, 68, 3), rotation, translation, scale)  # (4, 68, 3)
    result = estimate_pose(landmarks.numpy())
    normalized = result["normalized_landmarks"]
    np.testing.assert_allclose(normalized, np.broadcast_to(normalized[0], normalized.shape), atol=1e-4)
    # ... and they are close to the generator's canonical face (pose fitted on the rigid points only).
    assert np.abs(normalized[0] - expression.numpy()).mean() < 0.03
    relative = geodesic_angle(torch.from_numpy(result["rotation"]).double()[1:], rotation[1:]) - geodesic_angle(
        torch.from_numpy(result["rotation"]).double()[:1], rotation[:1]
    )
    assert relative.abs().max() < 1e-3  # pose differences are recovered exactly


def test_stray_faces_are_dropped() -> None:
    rng = np.random.default_rng(0)
    face = rng.uniform(0, 100, (68, 3)).astype(np.float32)  # about 100 px wide
    landmarks = np.stack([face + [2.0 * t, 0, 0] for t in range(10)])  # drifting 2 px per frame
    landmarks[3] = face + [0, 300, 0]  # a false detection far below
    landmarks[6] = face * 0.5 + [60, 40, 0]  # a smaller detection overlapping the face: kept
    found = np.ones(10, dtype=bool)
    found[8] = False
    kept = drop_stray_faces(landmarks, found)
    assert kept.tolist() == [True, True, True, False, True, True, True, True, False, True]
    assert drop_stray_faces(landmarks, found, max_jump=5.0).tolist() == found.tolist()
    assert not drop_stray_faces(landmarks, np.zeros(10, dtype=bool)).any()


def test_gaps_are_interpolated_and_long_gaps_fail() -> None:
    landmarks = np.zeros((20, 68, 3), dtype=np.float32)
    landmarks[:, 0, 0] = np.arange(20)
    found = np.ones(20, dtype=bool)
    found[5:8] = False
    landmarks[5:8] = 0.0
    filled = fill_gaps(landmarks, found, max_gap=4, max_missing=0.5)
    np.testing.assert_allclose(filled[5:8, 0, 0], [5.0, 6.0, 7.0])
    found[5:12] = False
    with pytest.raises(ClipFailure, match="consecutive"):
        fill_gaps(landmarks, found, max_gap=4, max_missing=0.5)
    with pytest.raises(ClipFailure, match="no face"):
        fill_gaps(landmarks, np.zeros(20, dtype=bool), max_gap=4, max_missing=0.5)


# ----------------------------------------------------------------------------------------------
# "Done when": planted failures, idempotence, resumability
# ----------------------------------------------------------------------------------------------
@pytest.fixture()
def damaged_tree(mini_mead_small: Path, tmp_path: Path) -> Path:
    """mini-MEAD with a truncated mp4, a clip without audio and an empty folder."""
    raw = tmp_path / "raw"
    shutil.copytree(mini_mead_small, raw)
    video = raw / "M005/video/front/angry/level_2/001.mp4"
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    (raw / "M007/audio/sad/level_1/001.m4a").unlink()
    (raw / "W011/video/front/happy/level_3").mkdir(exist_ok=True)
    for clip in (raw / "W011/video/front/happy/level_3").iterdir():
        clip.unlink()
    return raw


def test_planted_failures_are_reported_and_the_rest_is_usable(
    damaged_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    args = ["preprocess", "--root", str(damaged_tree), "--out", str(cache), "--backend", "groundtruth", "--size", "64"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "done 63, skipped 0" in out and "failed 3" in out
    rows = read_manifest(cache)
    failed = {row["clip"]: row["reason"] for row in rows if row["status"] == "failed"}
    assert failed == {
        "M005/angry/level_2/001": "video: corrupt or truncated",
        "M007/sad/level_1/001": "no audio: missing",
        "W011/video/front/happy/level_3": "empty folder: no clips",
    }
    assert sum(row["status"] == "ok" for row in rows) == 63

    from emoface.datamodules import MEADDataModule

    data = MEADDataModule(cache_dir=str(cache), window=8, batch_size=4, fields=["audio", "landmarks"])
    data.prepare_data()
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert batch["audio"].shape == (4, 32, 39) and batch["landmarks"].shape == (4, 8, 68, 3)

    # A second run does nothing and changes nothing.
    before = _cache_files(cache)
    assert main(args) == 0
    assert "done 0, skipped 66 (already in the cache), failed 0" in capsys.readouterr().out
    assert _cache_files(cache) == before


def test_nothing_usable_or_bad_arguments_exit_non_zero(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    (empty / "M001").mkdir(parents=True)
    assert main(["preprocess", "--root", str(empty), "--out", str(tmp_path / "c"), "--backend", "groundtruth"]) == 1
    assert main(["preprocess", "--root", str(tmp_path / "missing"), "--out", str(tmp_path / "c2")]) == 2
    with pytest.raises(SystemExit):
        main(["preprocess", "--root", str(empty)])  # --out missing: argparse error


def test_killed_run_resumes_to_the_same_cache(mini_mead_small: Path, tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    args = ["--root", str(mini_mead_small), "--backend", "groundtruth", "--size", "64", "--no-progress"]
    assert main(["preprocess", "--out", str(reference), *args]) == 0

    resumed = tmp_path / "resumed"
    command = [sys.executable, "-m", "emoface.cli", "preprocess", "--out", str(resumed), *args]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if len(list((resumed / "clips").rglob("*.json"))) >= 5:
            break
        time.sleep(0.05)
    was_running = process.poll() is None
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert was_running, "the run finished before it could be killed"
    assert not (resumed / "manifest.csv").exists()
    assert 5 <= len(list((resumed / "clips").rglob("*.json"))) < 66

    assert main(["preprocess", "--out", str(resumed), *args]) == 0
    assert _cache_files(resumed) == _cache_files(reference)
    with open(resumed / "manifest.csv") as handle:
        assert sum(1 for row in csv.DictReader(handle) if row["status"] == "ok") == 66


def test_other_settings_on_an_existing_cache_are_refused(mead_cache_128: Path, mini_mead_128: Path) -> None:
    args = ["preprocess", "--root", str(mini_mead_128), "--out", str(mead_cache_128), "--backend", "groundtruth"]
    assert main([*args, "--size", "96"]) == 2
