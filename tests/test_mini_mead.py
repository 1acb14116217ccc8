"""mini-MEAD: exact MEAD layout, determinism, decodability and the couplings built into it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from emoface.cli import main
from emoface.emotions import EMOTIONS, levels_of
from emoface.io import read_audio, read_video
from emoface.io.arrays import load_npz


def _clips(root: Path) -> list[Path]:
    return sorted(root.glob("*/video/front/*/level_*/*.mp4"))


def test_layout_is_exactly_mead(mini_mead_small: Path) -> None:
    actors = sorted(p.name for p in mini_mead_small.iterdir() if p.is_dir())
    assert len(actors) == 3 and all(a[0] in "MW" and a[1:].isdigit() and len(a) == 4 for a in actors)
    for actor in actors:
        for emotion in EMOTIONS:
            levels = sorted(p.name for p in (mini_mead_small / actor / "video" / "front" / emotion).iterdir())
            assert levels == [f"level_{k}" for k in levels_of(emotion)]
            for level in levels_of(emotion):
                video = mini_mead_small / actor / "video" / "front" / emotion / f"level_{level}" / "001.mp4"
                audio = mini_mead_small / actor / "audio" / emotion / f"level_{level}" / "001.m4a"
                truth = mini_mead_small / actor / "groundtruth" / emotion / f"level_{level}" / "001.npz"
                assert video.is_file() and audio.is_file() and truth.is_file()
    assert not (mini_mead_small / actors[0] / "video" / "front" / "neutral" / "level_2").exists()
    meta = json.loads((mini_mead_small / "mini_mead.json").read_text())
    assert sorted(sum(meta["split"].values(), [])) == actors


def test_every_clip_decodes_with_the_mead_reader(mini_mead_small: Path) -> None:
    clips = _clips(mini_mead_small)
    assert len(clips) == 3 * 22
    for video in clips:
        clip = read_video(video)
        actor, _, _, emotion, level, name = video.relative_to(mini_mead_small).parts
        audio = read_audio(mini_mead_small / actor / "audio" / emotion / level / name.replace(".mp4", ".m4a"))
        truth = load_npz(mini_mead_small / actor / "groundtruth" / emotion / level / name.replace(".mp4", ".npz"))
        assert clip.frames.shape == (25, 64, 64, 3) and clip.fps == 25
        assert abs(len(audio) / 16000 - 1.0) < 0.01
        assert truth["landmarks"].shape == (25, 68, 3) and truth["gaze"].shape == (25, 2, 2)
        assert str(truth["emotion"]) == emotion and f"level_{int(truth['level'])}" == level


def test_same_seed_gives_identical_ground_truth_and_frames(tmp_path: Path, mini_mead_small: Path) -> None:
    """Built again with the same seed, the ground truth is the same bytes and every video decodes to
    the same frames (with x264's mbtree on, up to generator 2, some differed by up to 41 levels)."""
    from emoface.datamodules.mini_mead import make_mini_mead

    again = make_mini_mead(tmp_path / "again", speakers=3, clips=1, seconds=1.0, size=64, seed=0, workers=1)
    other = make_mini_mead(tmp_path / "other", speakers=3, clips=1, seconds=1.0, size=64, seed=1, workers=1)
    truths = sorted(p.relative_to(mini_mead_small) for p in mini_mead_small.glob("*/groundtruth/**/*.npz"))
    assert truths
    for relative in truths:
        assert (again / relative).read_bytes() == (mini_mead_small / relative).read_bytes()
    assert any((other / r).read_bytes() != (mini_mead_small / r).read_bytes() for r in truths)
    for video in _clips(mini_mead_small):
        relative = video.relative_to(mini_mead_small)
        np.testing.assert_array_equal(read_video(again / relative).frames, read_video(video).frames,
                                      err_msg=str(relative))  # fmt: skip


def test_mouth_opening_follows_the_audio_envelope(mini_mead_small: Path) -> None:
    correlations = []
    for truth_file in sorted(mini_mead_small.glob("*/groundtruth/*/level_*/*.npz")):
        truth = load_npz(truth_file)
        audio_file = Path(str(truth_file).replace("/groundtruth/", "/audio/")).with_suffix(".m4a")
        waveform = read_audio(audio_file)
        frames = len(truth["landmarks"])
        waveform = np.pad(waveform, (0, max(0, frames * 640 - len(waveform))))[: frames * 640]
        loudness = np.sqrt((waveform.reshape(frames, 640) ** 2).mean(1))  # RMS per video frame
        lips = truth["normalized_landmarks"]
        opening = lips[:, 66, 1] - lips[:, 62, 1]  # inner lower lip minus inner upper lip
        correlations.append(np.corrcoef(loudness, opening)[0, 1])
    assert np.mean(correlations) > 0.8


def test_emotion_shapes_gaze_pose_and_expression(mini_mead_small: Path) -> None:
    by_emotion: dict[str, list[dict[str, np.ndarray]]] = {}
    for truth_file in sorted(mini_mead_small.glob("*/groundtruth/*/level_3/*.npz")):
        truth = load_npz(truth_file)
        by_emotion.setdefault(str(truth["emotion"]), []).append(truth)

    def mean(emotion: str, key: str, index: tuple) -> float:
        return float(np.mean([t[key][(slice(None), *index)].mean() for t in by_emotion[emotion]]))

    # Sad looks down (positive pitch), happy does not.
    assert mean("sad", "gaze", (slice(None), 1)) > mean("happy", "gaze", (slice(None), 1)) + 5.0
    assert mean("sad", "euler", (1,)) > mean("happy", "euler", (1,)) + 5.0
    # Happy raises the mouth corners (smaller y) relative to sad.
    assert mean("happy", "normalized_landmarks", (48, 1)) < mean("sad", "normalized_landmarks", (48, 1)) - 0.05
    # Surprised moves the head more than sad.
    spread = {e: np.mean([t["euler"][:, 0].std() for t in by_emotion[e]]) for e in ("surprised", "sad")}
    assert spread["surprised"] > spread["sad"]


def test_expression_scales_with_intensity_level(mini_mead_small: Path) -> None:
    actor = sorted(p.name for p in mini_mead_small.iterdir() if p.is_dir())[0]
    neutral = load_npz(mini_mead_small / actor / "groundtruth/neutral/level_1/001.npz")
    brow_raise = []
    for level in (1, 2, 3):
        truth = load_npz(mini_mead_small / actor / f"groundtruth/surprised/level_{level}/001.npz")
        brow_raise.append(neutral["normalized_landmarks"][:, 19, 1].mean() - truth["normalized_landmarks"][:, 19, 1].mean())
    assert 0 < brow_raise[0] < brow_raise[1] < brow_raise[2]


def test_identity_varies_by_actor(mini_mead_small: Path) -> None:
    faces = [
        load_npz(p)["normalized_landmarks"][0]
        for p in sorted(mini_mead_small.glob("*/groundtruth/neutral/level_1/001.npz"))
    ]
    assert min(np.abs(a - b).mean() for i, a in enumerate(faces) for b in faces[i + 1 :]) > 0.01


def test_cli_verb_writes_a_tree(tmp_path: Path) -> None:
    assert main(["mini-mead", str(tmp_path / "m"), "--speakers", "1", "--clips", "1", "--seconds", "0.4",
                 "--size", "32", "--workers", "1"]) == 0  # fmt: skip
    assert len(_clips(tmp_path / "m")) == 22


@pytest.mark.parametrize("bad", [["--size", "33"], ["--speakers", "0"], ["--seconds", "0"]])
def test_cli_rejects_bad_values(tmp_path: Path, bad: list[str]) -> None:
    assert main(["mini-mead", str(tmp_path / "m"), *bad]) == 2


def test_head_motion_follows_prosody(mini_mead_small: Path) -> None:
    """Head pitch rises (nods) with the speech energy, and more on stressed syllables."""
    energy_corr, stress_gain = [], []
    for truth_file in sorted(mini_mead_small.glob("*/groundtruth/*/level_*/*.npz")):
        truth = load_npz(truth_file)
        waveform = read_audio(Path(str(truth_file).replace("/groundtruth/", "/audio/")).with_suffix(".m4a"))
        frames = len(truth["euler"])
        waveform = np.pad(waveform, (0, max(0, frames * 640 - len(waveform))))[: frames * 640]
        energy = np.sqrt((waveform.reshape(frames, 640) ** 2).mean(1))
        energy_corr.append(np.corrcoef(energy, truth["euler"][:, 1])[0, 1])
        stressed = truth["speech_stress"] > 0.5
        if stressed.any() and (~stressed).any():
            stress_gain.append(truth["euler"][stressed, 1].mean() - truth["euler"][~stressed, 1].mean())
    assert np.mean(energy_corr) > 0.3
    assert len(stress_gain) > 10 and np.mean(stress_gain) > 1.0


def _motion_tracks(emotion: str, clips: int = 24) -> list[dict[str, np.ndarray]]:
    """Generator-level tracks (no rendering) of ``clips`` 2-second level-3 clips."""
    from emoface.datamodules import mini_mead as mm

    out = []
    for index in range(clips):
        rng = mm._rng(0, "test", emotion, index)
        out.append({"gaze": mm.gaze_track(rng, 50, emotion, 3, 25), "blink": mm.blink_track(rng, 50, emotion, 3, 25)})
    return out


def test_saccade_and_blink_rates_depend_on_the_emotion() -> None:
    def saccades(emotion: str) -> float:  # gaze jumps > 2 deg per frame, per second
        return float(np.mean([(np.abs(np.diff(t["gaze"][:, 0, 0])) > 2.0).sum() / 2.0 for t in _motion_tracks(emotion)]))

    def blinks(emotion: str) -> float:  # blink onsets per second
        return float(np.mean([(np.diff((t["blink"] > 0.5).astype(int)) == 1).sum() / 2.0 for t in _motion_tracks(emotion)]))

    assert saccades("fear") > 2.0 * saccades("angry")
    assert saccades("fear") > 2.0 * saccades("sad")
    assert blinks("fear") > 2.0 * blinks("surprised")


def test_blinks_close_the_lids(mini_mead_small: Path) -> None:
    openings, closed = [], []
    for truth_file in sorted(mini_mead_small.glob("*/groundtruth/*/level_*/*.npz")):
        truth = load_npz(truth_file)
        lids = truth["normalized_landmarks"][:, [40, 41], 1].mean(1) - truth["normalized_landmarks"][:, [37, 38], 1].mean(1)
        if (truth["blink"] > 0.9).any():
            closed.append(lids[truth["blink"] > 0.9].mean() / lids[truth["blink"] == 0].mean())
        openings.append((truth["blink"] > 0.5).mean())
    assert closed and max(closed) < 0.3
    assert 0.0 < np.mean(openings) < 0.2


def test_cache_key_names_the_generator_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from emoface.datamodules import MEADDataModule
    from emoface.datamodules.mini_mead import GENERATOR_VERSION

    monkeypatch.setenv("EMOFACE_CACHE", str(tmp_path))
    dm = MEADDataModule(mini_mead_speakers=3, mini_mead_clips=1, mini_mead_seconds=1.0, size=64)
    assert dm.cache_dir.parent.name.startswith(f"v{GENERATOR_VERSION}-") and GENERATOR_VERSION >= 2
