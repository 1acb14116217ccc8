"""Frozen renderers behind one interface (:class:`Renderer`), one module per family.

* :class:`FaceVid2VidRenderer` (:mod:`emoface.rendering.face_vid2vid`): 15 keypoints, yaw / pitch /
  roll bins, translation and expression; the public vox-256 file, SadTalker's files, or a
  ``FaceRenderer`` trained here.
* :class:`LivePortraitRenderer` (:mod:`emoface.rendering.live_portrait`): 21 keypoints, plus a
  scale term; LivePortrait's public weights folder; 256 px in, 512 px out.

:func:`load_renderer` picks the family from what it is given (a folder with LivePortrait's files,
or a face-vid2vid file).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from emoface.rendering.base import Renderer, SourceState, as_batch
from emoface.rendering.face_vid2vid import FaceVid2VidRenderer
from emoface.rendering.live_portrait import LivePortraitRenderer


def load_renderer(path: str | os.PathLike, **kwargs: Any) -> Renderer:
    """A frozen renderer from a LivePortrait weights folder or a face-vid2vid file (any layout
    :func:`~emoface.networks.face_vid2vid.read_face_vid2vid_checkpoint` reads).

    Args:
        path: the folder or file.
        kwargs: the renderer's options (``batch_size``, ``autocast_dtype`` ...).
    """
    from emoface.networks.live_portrait import is_live_portrait_folder

    if Path(path).is_dir() and is_live_portrait_folder(path):
        return LivePortraitRenderer.from_folder(path, **kwargs)
    return FaceVid2VidRenderer.from_checkpoint(path, **kwargs)


__all__ = ["FaceVid2VidRenderer", "LivePortraitRenderer", "Renderer", "SourceState", "as_batch", "load_renderer"]
