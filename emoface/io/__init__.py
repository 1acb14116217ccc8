"""Media and weight-file I/O."""

from emoface.io.media import (
    MediaError,
    MediaInfo,
    VideoClip,
    iter_video_chunks,
    probe,
    read_audio,
    read_video,
    write_audio,
    write_video,
)

__all__ = [
    "MediaError",
    "MediaInfo",
    "VideoClip",
    "iter_video_chunks",
    "probe",
    "read_audio",
    "read_video",
    "write_audio",
    "write_video",
]
