"""Media I/O: round trips, resampling and every bad-input case naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emoface.io import MediaError, iter_video_chunks, probe, read_audio, read_video, write_audio, write_video


def _moving_square(num_frames: int, size: int = 64) -> np.ndarray:
    frames = np.zeros((num_frames, size, size, 3), dtype=np.uint8)
    for t in range(num_frames):
        x = (t * 3) % (size - 16)
        frames[t, 20:36, x : x + 16] = (255, 128, 0)
    return frames


def _tone(seconds: float, sample_rate: int = 16000, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_video_round_trip_with_audio(tmp_path: Path) -> None:
    frames = _moving_square(50)
    path = write_video(tmp_path / "clip.mp4", frames, fps=25, audio=_tone(2.0), sample_rate=16000)
    clip = read_video(path)
    assert clip.frames.shape == frames.shape and clip.frames.dtype == np.uint8 and clip.fps == 25
    assert np.abs(clip.frames.astype(int) - frames.astype(int)).mean() < 3.0  # crf 18 is near lossless
    info = probe(path)
    assert info.has_audio and info.has_video and info.num_frames == 50 and info.width == 64
    audio = read_audio(path, sample_rate=16000)
    assert audio.dtype == np.float32 and abs(len(audio) / 16000 - 2.0) < 0.03


def test_resample_30_to_25_fps_keeps_duration_and_order(tmp_path: Path) -> None:
    frames = np.zeros((60, 32, 32, 3), dtype=np.uint8)
    frames[:, :, :, 0] = np.arange(60, dtype=np.uint8)[:, None, None] * 4  # frame index encoded in red
    path = write_video(tmp_path / "raw30.mp4", frames, fps=30, crf=0)
    clip = read_video(path, fps=25)
    assert clip.fps == 25 and len(clip.frames) == 50
    # Output frame k shows the source frame on screen at k / 25 s: index floor(k * 30 / 25).
    shown = np.round(clip.frames[:, 16, 16, 0] / 4).astype(int)
    expected = np.floor(np.arange(50) * 30 / 25 + 1e-9).astype(int)
    assert np.abs(shown - expected).max() <= 1 and np.all(np.diff(shown) >= 0)


def test_streaming_decode_matches_whole_decode(tmp_path: Path) -> None:
    path = write_video(tmp_path / "clip.mp4", _moving_square(40), fps=25)
    chunks = list(iter_video_chunks(path, chunk_size=16))
    assert [len(c) for c in chunks] == [16, 16, 8]
    assert np.array_equal(np.concatenate(chunks), read_video(path).frames)


@pytest.mark.parametrize("suffix", [".m4a", ".wav"])
@pytest.mark.parametrize("target_rate", [16000, 22050])
def test_audio_round_trip_and_resampling(tmp_path: Path, suffix: str, target_rate: int) -> None:
    tone = _tone(1.5, sample_rate=16000, freq=300.0)
    path = write_audio(tmp_path / f"a{suffix}", tone, sample_rate=16000)
    audio = read_audio(path, sample_rate=target_rate)
    assert abs(len(audio) / target_rate - 1.5) < 0.03
    # The tone's frequency survives resampling: dominant FFT bin at 300 Hz.
    spectrum = np.abs(np.fft.rfft(audio))
    assert abs(np.fft.rfftfreq(len(audio), 1 / target_rate)[spectrum.argmax()] - 300.0) < 3.0


def test_stereo_44k_is_downmixed_and_resampled(tmp_path: Path) -> None:
    import av

    path = tmp_path / "stereo.wav"
    tone = _tone(1.0, sample_rate=44100)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=44100)
        stream.layout = "stereo"
        data = (np.stack([tone, tone]) * 32767).astype(np.int16).T.reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(data, format="s16", layout="stereo")
        frame.sample_rate = 44100
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    audio = read_audio(path)
    assert abs(len(audio) - 16000) <= 2 and 0.4 < np.abs(audio).max() < 0.6


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    good = write_video(tmp_path / "good.mp4", _moving_square(25), fps=25, audio=_tone(1.0))
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"not a video at all" * 100)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    silent = write_video(tmp_path / "silent.mp4", _moving_square(10), fps=25)
    audio_only = write_audio(tmp_path / "voice.m4a", _tone(0.5))
    return {
        "missing": (tmp_path / "nope.mp4", "missing"),
        "empty": (empty, "empty file"),
        "truncated": (truncated, "corrupt or truncated"),
        "corrupt": (corrupt, "corrupt or truncated"),
        "no audio": (silent, "no audio stream"),
        "no video": (audio_only, "no video stream"),
    }


@pytest.mark.parametrize("case", ["missing", "empty", "truncated", "corrupt", "no audio", "no video"])
def test_bad_input_raises_media_error_naming_the_file(tmp_path: Path, case: str) -> None:
    path, reason = _bad_files(tmp_path)[case]
    reader = read_audio if case == "no audio" else read_video
    with pytest.raises(MediaError) as error:
        reader(path)
    assert error.value.reason == reason
    assert str(path) in str(error.value)


def test_writer_rejects_odd_sizes_and_leaves_no_partial_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="even"):
        write_video(tmp_path / "odd.mp4", np.zeros((3, 31, 32, 3), np.uint8), fps=25)
    assert list(tmp_path.iterdir()) == []
