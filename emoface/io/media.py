"""Video and audio reading and writing with PyAV (FFmpeg).

All failures raise :class:`MediaError`, which names the file and the reason, so a caller that
processes thousands of MEAD clips can record the reason and go on.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

PathLike = str | os.PathLike


class MediaError(RuntimeError):
    """A media file could not be read or written.

    Attributes:
        path: the file concerned.
        reason: a short machine-friendly reason, e.g. ``"missing"``, ``"empty file"``,
            ``"corrupt or truncated"``, ``"no video stream"``, ``"no audio stream"``.
    """

    def __init__(self, path: PathLike, reason: str, detail: str = "") -> None:
        self.path = str(path)
        self.reason = reason
        self.detail = detail
        message = f"{self.path}: {reason}" + (f" ({detail})" if detail else "")
        super().__init__(message)


@dataclass(frozen=True)
class VideoClip:
    """Decoded video: ``frames`` uint8 ``(T, H, W, 3)`` RGB at ``fps`` frames per second."""

    frames: np.ndarray
    fps: float

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.frames) / self.fps if self.fps else 0.0


@dataclass(frozen=True)
class MediaInfo:
    """What a container holds, read from its headers (no decoding)."""

    path: str
    duration: float
    has_video: bool
    has_audio: bool
    fps: float | None = None
    num_frames: int | None = None
    width: int | None = None
    height: int | None = None
    sample_rate: int | None = None


def _open(path: PathLike) -> av.container.InputContainer:
    file = Path(path)
    if not file.exists():
        raise MediaError(path, "missing")
    if file.is_dir():
        raise MediaError(path, "is a directory")
    if file.stat().st_size == 0:
        raise MediaError(path, "empty file")
    try:
        return av.open(str(file), mode="r")
    except av.FFmpegError as error:
        raise MediaError(path, "corrupt or truncated", str(error)) from error


def probe(path: PathLike) -> MediaInfo:
    """Read a container's stream headers.

    Raises:
        MediaError: when the file is missing, empty or not a readable container.
    """
    with _open(path) as container:
        video = container.streams.video[0] if container.streams.video else None
        audio = container.streams.audio[0] if container.streams.audio else None
        duration = container.duration / av.time_base if container.duration else 0.0
        fps = float(video.average_rate) if video is not None and video.average_rate else None
        num_frames = None
        if video is not None:
            num_frames = video.frames or (round(duration * fps) if fps else None)
        return MediaInfo(
            path=str(path),
            duration=duration,
            has_video=video is not None,
            has_audio=audio is not None,
            fps=fps,
            num_frames=num_frames,
            width=video.codec_context.width if video is not None else None,
            height=video.codec_context.height if video is not None else None,
            sample_rate=audio.codec_context.sample_rate if audio is not None else None,
        )


def _video_stream(container: av.container.InputContainer, path: PathLike) -> av.video.stream.VideoStream:
    if not container.streams.video:
        raise MediaError(path, "no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return stream


def iter_video_chunks(path: PathLike, fps: float | None = None, chunk_size: int = 64) -> Iterator[np.ndarray]:
    """Decode a video as a stream of uint8 RGB chunks ``(t, H, W, 3)``, ``t <= chunk_size``.

    Args:
        path: any container FFmpeg reads.
        fps: resample to this frame rate by picking, for output frame ``k`` at time ``k / fps``,
            the latest source frame shown at that time (FFmpeg's ``fps`` filter rule, which
            keeps lips in sync); ``None`` keeps every source frame.
        chunk_size: frames per yielded chunk; memory stays ``O(chunk_size)``.

    Raises:
        MediaError: missing, empty, corrupt/truncated file or no video stream.
    """
    with _open(path) as container:
        stream = _video_stream(container, path)
        source_fps = float(stream.average_rate or stream.guessed_rate or 0) or None
        time_base = float(stream.time_base) if stream.time_base else None
        chunk: list[np.ndarray] = []
        next_index = 0  # next output frame index when resampling
        previous: np.ndarray | None = None
        previous_time = -math.inf
        source_index = 0
        try:
            for frame in container.decode(stream):
                image = frame.to_ndarray(format="rgb24")
                if fps is None:
                    chunk.append(image)
                else:
                    if frame.pts is not None and time_base is not None:
                        time = frame.pts * time_base - (float(stream.start_time or 0) * time_base)
                    else:
                        time = source_index / (source_fps or fps)
                    # Emit every output instant that falls before this frame's time: the frame
                    # shown then is the previous one.
                    while previous is not None and next_index / fps < time - 1e-6:
                        if next_index / fps >= previous_time - 1e-6:
                            chunk.append(previous)
                        next_index += 1
                    previous, previous_time = image, time
                source_index += 1
                if len(chunk) >= chunk_size:
                    yield np.stack(chunk)
                    chunk = []
        except av.FFmpegError as error:
            raise MediaError(path, "corrupt or truncated", str(error)) from error
        if source_index == 0:
            raise MediaError(path, "corrupt or truncated", "no decodable video frame")
        if fps is not None and previous is not None:
            # The last source frame lasts one source period; emit the instants it covers.
            end_time = previous_time + 1.0 / (source_fps or fps)
            while next_index / fps < end_time - 1e-6:
                chunk.append(previous)
                next_index += 1
        if chunk:
            yield np.stack(chunk)


def read_video(path: PathLike, fps: float | None = None) -> VideoClip:
    """Decode a whole video into memory.

    Args:
        path: any container FFmpeg reads (mp4, avi, mkv ...).
        fps: target frame rate (e.g. 25 for MEAD's 30 fps raw videos); ``None`` keeps the source's.

    Returns:
        :class:`VideoClip` with uint8 frames ``(T, H, W, 3)`` RGB.

    Raises:
        MediaError: missing, empty, corrupt/truncated file or no video stream.
    """
    if fps is None:
        info = probe(path)
        if not info.has_video:
            raise MediaError(path, "no video stream")
        out_fps = info.fps or 25.0
    else:
        out_fps = float(fps)
    chunks = list(iter_video_chunks(path, fps=fps))
    return VideoClip(frames=np.concatenate(chunks), fps=out_fps)


def read_audio(path: PathLike, sample_rate: int = 16000) -> np.ndarray:
    """Decode the first audio track of a container as float32 mono ``(S,)`` in [-1, 1].

    Each channel is resampled with FFmpeg's swresample, then the channels are averaged.

    Raises:
        MediaError: missing, empty, corrupt/truncated file or no audio stream.
    """
    with _open(path) as container:
        if not container.streams.audio:
            raise MediaError(path, "no audio stream")
        stream = container.streams.audio[0]
        # Resample per channel (swresample), then average the channels: swresample's own
        # down-mix weights channels by -3 dB, which changes the level of stereo recordings.
        resampler = av.AudioResampler(format="fltp", rate=int(sample_rate))
        pieces: list[np.ndarray] = []
        try:
            for frame in container.decode(stream):
                frame.pts = None  # let the resampler count samples itself
                for out in resampler.resample(frame):
                    pieces.append(out.to_ndarray().mean(0))
            for out in resampler.resample(None):
                pieces.append(out.to_ndarray().mean(0))
        except av.FFmpegError as error:
            raise MediaError(path, "corrupt or truncated", str(error)) from error
        declared = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else None
    if not pieces:
        raise MediaError(path, "corrupt or truncated", "no decodable audio samples")
    samples = np.concatenate(pieces).astype(np.float32, copy=False)
    if declared is not None:
        # AAC pads its last frame; the container's declared duration says where the signal ends.
        samples = samples[: max(1, round(declared * sample_rate))]
    return samples


def _check_frames(path: PathLike, frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"{path}: frames must be a non-empty (T, H, W, 3) array, got shape {frames.shape}")
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        raise ValueError(f"{path}: H.264 yuv420p needs even height and width, got {frames.shape[1:3]}")
    if frames.dtype != np.uint8:
        if np.issubdtype(frames.dtype, np.floating):
            frames = np.clip(np.round(frames * 255.0), 0, 255)
        frames = frames.astype(np.uint8)
    return frames


def _add_audio_stream(container: av.container.OutputContainer, sample_rate: int, codec: str) -> av.AudioStream:
    # Every stream must exist before the first packet is muxed (the header is written then).
    stream = container.add_stream(codec, rate=int(sample_rate))
    stream.layout = "mono"
    return stream


def _encode_audio(
    container: av.container.OutputContainer, stream: av.AudioStream, audio: np.ndarray, sample_rate: int
) -> None:
    codec_format = stream.codec_context.format.name  # e.g. "fltp" for aac, "s16" for pcm
    samples = np.clip(np.asarray(audio, dtype=np.float32).reshape(-1), -1.0, 1.0)
    frame_size = stream.codec_context.frame_size or 1024
    for start in range(0, len(samples), frame_size):
        piece = samples[start : start + frame_size]
        if codec_format.startswith("s16"):
            array = (piece * 32767.0).astype(np.int16)[None]
        else:
            array = piece[None]
        frame = av.AudioFrame.from_ndarray(array, format=codec_format, layout="mono")
        frame.sample_rate = int(sample_rate)
        frame.pts = start
        frame.time_base = Fraction(1, int(sample_rate))
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def _atomic_target(path: PathLike) -> tuple[Path, Path]:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    return target, target.with_name(f".{target.stem}.partial{target.suffix}")


class VideoWriter:
    """Encode an H.264 (yuv420p) mp4 chunk by chunk, so memory does not grow with the video's length.

    The file is written under a temporary name beside ``path`` and renamed when :meth:`close`
    completes; leaving the ``with`` block by an exception (or Ctrl-C) removes it, so ``path`` is
    either the whole video or untouched::

        with VideoWriter("out.mp4", fps=25, audio=wave) as writer:
            for chunk in chunks:           # (t, H, W, 3) uint8 RGB, or float in [0, 1]
                writer.write(chunk)

    Args:
        path: output file (``.mp4``).
        fps: frame rate.
        audio: optional float mono waveform ``(S,)`` in [-1, 1] at ``sample_rate`` (AAC track).
        sample_rate: audio sample rate in Hz.
        crf: x264 constant rate factor (0 lossless, 18 visually lossless, 23 default).
    """

    def __init__(
        self,
        path: PathLike,
        fps: float,
        audio: np.ndarray | None = None,
        sample_rate: int = 16000,
        crf: int = 18,
    ) -> None:
        self.path, self.partial = _atomic_target(path)
        self.fps = fps
        self.audio = audio
        self.sample_rate = sample_rate
        self.crf = crf
        self.frames_written = 0
        self._container: av.container.OutputContainer | None = None
        self._stream: Any = None
        self._audio_stream: Any = None
        self._rate = Fraction(fps).limit_denominator(1001)
        self._size: tuple[int, int] | None = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, error_type: object, error: object, traceback: object) -> None:
        if error_type is None:
            self.close()
        else:
            self.discard()

    def _open(self, height: int, width: int) -> None:
        try:
            self._container = av.open(str(self.partial), mode="w", format="mp4")
            stream = self._container.add_stream("libx264", rate=self._rate)
            stream.width, stream.height = width, height
            stream.pix_fmt = "yuv420p"
            # mbtree off: with x264's macroblock-tree rate control the same frames encoded to different
            # bytes from run to run, even with one thread (pixels up to 41 levels apart once decoded,
            # so a mini-MEAD of one seed differed between builds; with asm=0 it did not, an assembly
            # routine's doing). Without it every encoding of the same frames is the same file.
            stream.options = {"crf": str(self.crf), "preset": "veryfast", "x264-params": "mbtree=0"}
            # One encoder thread: x264's threaded encoding is not bit-reproducible either.
            stream.codec_context.thread_count = 1
            self._stream = stream
            if self.audio is not None:
                self._audio_stream = _add_audio_stream(self._container, self.sample_rate, "aac")
        except av.FFmpegError as error:
            self.discard()
            raise MediaError(self.path, "cannot write", str(error)) from error
        self._size = (height, width)

    def write(self, frames: np.ndarray) -> None:
        """Encode ``(t, H, W, 3)`` frames (uint8 RGB, or float in [0, 1]); H and W even and the same
        in every call."""
        frames = _check_frames(self.path, frames)
        if self._container is None:
            self._open(frames.shape[1], frames.shape[2])
        elif frames.shape[1:3] != self._size:
            raise ValueError(f"{self.path}: frames of {frames.shape[1:3]} after frames of {self._size}")
        try:
            for image in frames:
                frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
                frame.pts = self.frames_written
                frame.time_base = Fraction(1, 1) / self._rate
                self._container.mux(self._stream.encode(frame))
                self.frames_written += 1
        except av.FFmpegError as error:
            self.discard()
            raise MediaError(self.path, "cannot write", str(error)) from error

    def close(self) -> Path:
        """Flush the encoder, add the audio track, and move the file to :attr:`path`."""
        if self._container is None:
            raise ValueError(f"{self.path}: no frames were written")
        try:
            self._container.mux(self._stream.encode(None))
            if self._audio_stream is not None:
                _encode_audio(self._container, self._audio_stream, self.audio, self.sample_rate)
            self._container.close()
            self._container = None
            os.replace(self.partial, self.path)
        except av.FFmpegError as error:
            self.discard()
            raise MediaError(self.path, "cannot write", str(error)) from error
        return self.path

    def discard(self) -> None:
        """Stop and remove the temporary file (nothing is left at :attr:`path` by this writer)."""
        if self._container is not None:
            with contextlib.suppress(Exception):  # an encoder in any state: closing may fail too
                self._container.close()
            self._container = None
        self.partial.unlink(missing_ok=True)


def write_video(
    path: PathLike,
    frames: np.ndarray,
    fps: float,
    audio: np.ndarray | None = None,
    sample_rate: int = 16000,
    crf: int = 18,
) -> Path:
    """Write an H.264 (yuv420p) mp4, with an AAC audio track when ``audio`` is given.

    The file is written under a temporary name and renamed when complete, so an interrupted
    write never leaves a partial file at ``path``. Long videos: :class:`VideoWriter`, chunk by chunk.

    Args:
        path: output file (``.mp4``).
        frames: ``(T, H, W, 3)`` RGB, uint8 or float in [0, 1]; H and W even.
        fps: frame rate.
        audio: optional float mono waveform ``(S,)`` in [-1, 1] at ``sample_rate``.
        sample_rate: audio sample rate in Hz.
        crf: x264 constant rate factor (0 lossless, 18 visually lossless, 23 default).
    """
    frames = _check_frames(path, frames)
    with VideoWriter(path, fps, audio=audio, sample_rate=sample_rate, crf=crf) as writer:
        writer.write(frames)
    return writer.path


def write_audio(path: PathLike, audio: np.ndarray, sample_rate: int = 16000) -> Path:
    """Write mono audio as ``.m4a`` (AAC, like MEAD) or ``.wav`` (16-bit PCM), chosen by suffix."""
    target, partial = _atomic_target(path)
    suffix = target.suffix.lower()
    formats = {".m4a": ("ipod", "aac"), ".mp4": ("mp4", "aac"), ".wav": ("wav", "pcm_s16le")}
    if suffix not in formats:
        raise ValueError(f"{path}: unsupported audio suffix {suffix!r}; use one of {sorted(formats)}")
    container_format, codec = formats[suffix]
    try:
        with av.open(str(partial), mode="w", format=container_format) as container:
            _encode_audio(container, _add_audio_stream(container, sample_rate, codec), audio, sample_rate)
        os.replace(partial, target)
    except av.FFmpegError as error:
        raise MediaError(path, "cannot write", str(error)) from error
    finally:
        partial.unlink(missing_ok=True)
    return target
