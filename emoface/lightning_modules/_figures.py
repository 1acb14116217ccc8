"""Figures the systems log per epoch (matplotlib, headless) and cue pictures (:mod:`emoface.visualize`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emoface.geometry.landmarks import inner_lip_opening


def mouth_opening(landmarks: np.ndarray) -> np.ndarray:
    """Inner-lip opening ``(T,)`` (:func:`~emoface.geometry.landmarks.inner_lip_opening`) of landmarks ``(T, 68, 3)``."""
    return inner_lip_opening(torch.from_numpy(np.asarray(landmarks))).numpy()


def cue_figure(sample: dict[str, Any]) -> Any:
    """Generated vs real curves of one clip: mouth opening, gaze (eye 0) and head pose.

    Args:
        sample: ``pred_landmarks``/``true_landmarks`` ``(T, 68, 3)``, ``pred_gaze``/``true_gaze``
            ``(T, 2, 2)``, ``pred_euler``/``true_euler`` ``(T, 3)`` and a ``title``.

    Returns:
        a matplotlib Figure.
    """
    import sys

    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:  # keep a backend already chosen (e.g. a notebook's inline one)
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(13, 3.2))
    frames = np.arange(len(sample["pred_landmarks"]))
    axes[0].plot(frames, mouth_opening(sample["true_landmarks"]), label="real", color="k")
    axes[0].plot(frames, mouth_opening(sample["pred_landmarks"]), label="generated", color="tab:red")
    axes[0].set_title("mouth opening (canonical units)")
    for k, name in enumerate(("yaw", "pitch")):
        color = ("tab:blue", "tab:orange")[k]
        axes[1].plot(frames, sample["true_gaze"][:, 0, k], color=color, label=f"real {name}")
        axes[1].plot(frames, sample["pred_gaze"][:, 0, k], color=color, linestyle="--", label=f"generated {name}")
    axes[1].set_title("gaze, right eye (deg)")
    for k, name in enumerate(("yaw", "pitch", "roll")):
        color = ("tab:blue", "tab:orange", "tab:green")[k]
        axes[2].plot(frames, sample["true_euler"][:, k], color=color, label=f"real {name}")
        axes[2].plot(frames, sample["pred_euler"][:, k], color=color, linestyle="--", label=f"generated {name}")
    axes[2].set_title("head pose (deg)")
    for axis in axes:
        axis.set_xlabel("frame")
        axis.legend(fontsize=6)
    figure.suptitle(sample.get("title", ""), fontsize=9)
    figure.tight_layout()
    return figure


def motion_figure(table: dict[str, np.ndarray], emotions: Sequence[str]) -> Any:
    """Within-clip motion per emotion, real beside generated, for each motion cue (bars).

    Args:
        table: :meth:`emoface.metrics.MotionStatistics.per_emotion` as numpy: ``true_std``,
            ``pred_std`` ``(E, C)`` degrees (NaN for emotions not seen), ``count (E,)``.
        emotions: the emotion names of the rows.

    Returns:
        a matplotlib Figure (one panel per cue: head yaw, pitch, roll, gaze yaw, pitch).
    """
    import sys

    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from emoface.metrics.functional import MOTION_CUES

    seen = np.asarray(table["count"]) > 0
    names = [name[:3] for name, keep in zip(emotions, seen) if keep]
    x = np.arange(len(names))
    figure, axes = plt.subplots(1, len(MOTION_CUES), figsize=(15, 3.0), sharey=False)
    for c, (axis, cue) in enumerate(zip(axes, MOTION_CUES)):
        axis.bar(x - 0.2, np.asarray(table["true_std"])[seen, c], 0.4, color="k", label="real")
        axis.bar(x + 0.2, np.asarray(table["pred_std"])[seen, c], 0.4, color="tab:red", label="generated")
        axis.set_xticks(x, names, fontsize=7)
        axis.set_title(f"{cue.replace('_', ' ')}: within-clip std (deg)", fontsize=8)
    axes[0].legend(fontsize=7)
    figure.tight_layout()
    return figure


def cue_frames(sample: dict[str, Any], frames: int = 6, tile: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Real and generated cues of one clip drawn as frames (landmarks, gaze arrows, head-pose axes).

    Both are relocated (:func:`emoface.geometry.relocation.relocate`) from their normalized
    landmarks, gaze and pose and drawn on blank canvases of the same size (no frames in stage-1
    batches); real in green, generated in magenta.

    Args:
        sample: ``pred_``/``true_`` + ``landmarks`` (normalized ``(T, 68, 3)``), ``gaze`` ``(T, 2, 2)``,
            ``rotation`` ``(T, 3, 3)``, ``translation`` ``(T, 3)``, ``scale`` ``(T,)``.
        frames: frames picked for the grid (evenly spaced).
        tile: the canvas is upscaled to at least this side.

    Returns:
        ``grid`` uint8 ``(2 rows x frames)`` image (real above generated), and ``video``
        ``(T, S, 2S, 3)`` uint8: real and generated side by side, every frame.
    """
    from emoface.visualize import (
        GENERATED_COLOR,
        LANDMARK_COLOR,
        annotate_frames,
        auto_upscale,
        blank_frames,
        canvas_size,
        image_grid,
        pick_frames,
        put_label,
        track_from_arrays,
    )

    tracks = {}
    for who in ("true", "pred"):
        arrays = {"normalized_landmarks": sample[f"{who}_landmarks"], "gaze": sample[f"{who}_gaze"]}
        arrays.update({k: sample[f"{who}_{k}"] for k in ("rotation", "translation", "scale")})
        tracks[who] = track_from_arrays(arrays)
    side = max(canvas_size(tracks["true"]), canvas_size(tracks["pred"]))
    upscale = auto_upscale(side, tile)
    canvas = blank_frames(1, side)
    real = annotate_frames(canvas, tracks["true"], upscale=upscale, color=LANDMARK_COLOR)
    generated = annotate_frames(canvas, tracks["pred"], upscale=upscale, color=GENERATED_COLOR)
    picked = pick_frames(len(real), frames)
    tiles = [put_label(real[t].copy(), f"real {t}") for t in picked]
    tiles += [put_label(generated[t].copy(), f"generated {t}") for t in picked]
    return image_grid(tiles, columns=len(picked)), np.concatenate([real, generated], axis=2)


def figure_dir(trainer: Any) -> Path:
    """``<first logger's log_dir or trainer.default_root_dir>/figures``, created."""
    base = next((getattr(lg, "log_dir", None) for lg in trainer.loggers if getattr(lg, "log_dir", None)), None)
    directory = Path(base or trainer.default_root_dir) / "figures"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def log_figure(trainer: Any, figure: Any, key: str, step: int, epoch: int) -> None:
    """Send ``figure`` to every logger that takes images, and save a PNG beside the logs.

    TensorBoard gets ``add_figure``, Weights & Biases ``log_image``; the PNG goes to
    ``<logger.log_dir or trainer.default_root_dir>/figures/<key>_epoch<NNN>.png`` so that the
    CSV logger's runs keep their figures too.
    """
    import matplotlib.pyplot as plt
    from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

    loggers = list(trainer.loggers)
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_figure(key, figure, global_step=step)
        elif isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[figure], step=step)
    directory = figure_dir(trainer)
    figure.savefig(directory / f"{key.replace('/', '_')}_epoch{epoch:03d}.png", dpi=80)
    plt.close(figure)


def log_image_grid(trainer: Any, grid: np.ndarray, key: str, step: int, epoch: int) -> None:
    """Send an image ``(H, W, 3)`` uint8 to every logger that takes images, and save a PNG.

    TensorBoard gets ``add_image``, Weights & Biases ``log_image``; the PNG goes beside the
    figures of :func:`log_figure` (``<log_dir>/figures/<key>_epoch<NNN>_step<NNNNNN>.png``).
    """
    import matplotlib.image
    from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

    loggers = list(trainer.loggers)
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(key, grid, global_step=step, dataformats="HWC")
        elif isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[grid], step=step)
    directory = figure_dir(trainer)
    # The step too: runs validated several times an epoch (``val_check_interval``) keep every grid.
    matplotlib.image.imsave(directory / f"{key.replace('/', '_')}_epoch{epoch:03d}_step{step:06d}.png", grid)


def log_video(trainer: Any, frames: np.ndarray, key: str, step: int, epoch: int, fps: float = 25.0,
              audio: np.ndarray | None = None, sample_rate: int = 16000) -> Path:  # fmt: skip
    """Write frames ``(T, H, W, 3)`` uint8 as an mp4 beside the figures and send it to Weights & Biases.

    The file is ``<log_dir>/figures/<key>_epoch<NNN>_step<NNNNNN>.mp4`` (H.264, with an AAC track
    when ``audio`` is given); a :class:`~lightning.pytorch.loggers.WandbLogger` receives it as a
    ``wandb.Video``. Other loggers keep the file only.

    Returns:
        the mp4's path.
    """
    from lightning.pytorch.loggers import WandbLogger

    from emoface.io.media import write_video
    from emoface.visualize import even_frames

    path = figure_dir(trainer) / f"{key.replace('/', '_')}_epoch{epoch:03d}_step{step:06d}.mp4"
    write_video(path, even_frames(np.asarray(frames, dtype=np.uint8)), fps, audio=audio, sample_rate=sample_rate)
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_video(key=key, videos=[str(path)], step=step)
    return path
