"""mini-MEAD: procedurally rendered talking faces written in the exact MEAD layout.

MEAD cannot ship with emoface, so the project makes its own MEAD-shaped data in seconds. Every
clip comes from a 3D face in the iBUG-68 layout (:mod:`emoface.geometry.landmarks`) in which,
by construction:

* the jaw opening follows the syllable envelope of the audio and the lip width follows the
  vowel of each syllable, so audio -> lips is learnable;
* expression offsets (brows, lids, mouth corners, jaw) depend on the emotion and scale with
  the intensity level;
* head pose and gaze follow emotion-dependent statistics (sad looks down, surprised moves
  more, contempt glances sideways, ...);
* head motion partly follows the speech's prosody: every syllable nods the head with its
  loudness (``2 deg x envelope``), stressed syllables (louder, with a pitch accent) add a
  stronger nod (down then back, scaled by the emotion's motion) and each pitch accent starts a
  short head turn of random side (its size is predictable from the audio, its side is not); the
  rest is slow emotion-scaled wander (:func:`head_pose`);
* gaze holds fixations and jumps between them by 2-frame saccades; fixation length, and so the
  saccade rate, depends on the emotion (fear darts, anger and sadness stare; :func:`gaze_track`);
* the eyes blink at an emotion-dependent rate (lids close over ~5 frames; :func:`blink_track`);
* identity (face shape, skin tone, iris colour, voice pitch) varies by actor;
* optionally (``free_motion``), free head motion as in VoxCeleb-like free talking on top of all
  this: the head turns, tilts, moves and zooms along smooth random per-clip trajectories
  (:func:`free_head_motion`), drawn smaller in the frame to leave it room.

Audio is synthetic voiced speech (a glottal harmonic series shaped by per-syllable formants,
emotion-dependent pitch and energy) at 16 kHz. Frames are shaded renderings (skin, brows,
sclera, iris and pupil, nose, lips and mouth interior). Ground truth per clip is written to a
sidecar ``<actor>/groundtruth/<emotion>/level_<k>/<nnn>.npz`` (keys in docs/data_format.md),
and ``mini_mead.json`` at the root records the generation settings and a speaker split.
Everything is deterministic for a seed, the decoded video frames included. :data:`GENERATOR_VERSION`
is part of the embedded data module's cache key, so caches made by an older generator are never
mixed in.
"""

from __future__ import annotations

import json
import math
import os
import signal
import zlib
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image, ImageDraw

from emoface.emotions import EMOTIONS, levels_of
from emoface.geometry.landmarks import EYEBALL_RADIUS, EYES, MEAN_FACE_NP, NUM_LANDMARKS
from emoface.geometry.rotations import euler_to_matrix, gaze_to_vector
from emoface.io.arrays import save_npz
from emoface.io.media import write_audio, write_video
from emoface.progress import ProgressReport

FPS = 25
SAMPLE_RATE = 16000
GENERATOR_VERSION = 3
"""Bumped whenever generated content changes (2: prosody-driven head motion, emotion-dependent
saccade rates, blinks; 3: videos encoded without x264's mbtree, the same pixels in every build);
recorded in ``mini_mead.json`` and part of the embedded cache's key."""
FREE_MOTION_VERSION = 1
"""Version of the free head motion (:func:`free_head_motion`); bumped whenever it changes what a
free-motion tree holds. Recorded in its ``mini_mead.json`` and part of its embedded cache's key."""
LEVEL_INTENSITY = {1: 0.45, 2: 0.75, 3: 1.0}
"""Expression, pose and gaze offsets are scaled by this factor per MEAD intensity level."""

MALE_ACTORS = ("M005", "M007", "M009", "M011", "M012", "M013", "M019", "M022",
               "M023", "M024", "M025", "M026", "M027", "M028", "M029", "M031")  # fmt: skip
FEMALE_ACTORS = ("W011", "W014", "W016", "W018", "W019", "W021", "W023", "W024",
                 "W025", "W026", "W028", "W029", "W033", "W035", "W036", "W037")  # fmt: skip

# Per emotion: pose mean (yaw, pitch, roll) deg, pose motion amplitude, gaze mean (yaw, pitch) deg,
# gaze spread (yaw, pitch) deg, pitch factor of the voice, loudness, syllable rate (Hz), mean gaze
# fixation length (s; shorter = more saccades) and blink rate (Hz).
EMOTION_STYLE: dict[str, dict[str, tuple[float, ...] | float]] = {
    "angry": dict(pose=(0.0, 4.0, 0.0), motion=1.2, gaze=(0.0, 2.0), gaze_spread=(3.0, 2.0), f0=1.15, loud=1.0, rate=4.6, fixation=0.9, blink=0.2),
    "contempt": dict(pose=(6.0, -1.0, 4.0), motion=0.7, gaze=(10.0, 0.0), gaze_spread=(4.0, 2.0), f0=0.95, loud=0.6, rate=3.4, fixation=0.7, blink=0.25),
    "disgusted": dict(pose=(-5.0, -2.0, -2.0), motion=0.9, gaze=(-8.0, 3.0), gaze_spread=(5.0, 2.0), f0=0.9, loud=0.7, rate=3.6, fixation=0.5, blink=0.3),
    "fear": dict(pose=(0.0, 2.0, 0.0), motion=1.3, gaze=(0.0, -1.0), gaze_spread=(12.0, 3.0), f0=1.3, loud=0.7, rate=4.8, fixation=0.22, blink=0.55),
    "happy": dict(pose=(0.0, -4.0, -3.0), motion=1.2, gaze=(0.0, -3.0), gaze_spread=(5.0, 2.0), f0=1.25, loud=0.9, rate=4.4, fixation=0.5, blink=0.35),
    "neutral": dict(pose=(0.0, 0.0, 0.0), motion=0.5, gaze=(0.0, 0.0), gaze_spread=(6.0, 2.5), f0=1.0, loud=0.7, rate=4.0, fixation=0.6, blink=0.3),
    "sad": dict(pose=(0.0, 9.0, 2.0), motion=0.4, gaze=(0.0, 9.0), gaze_spread=(4.0, 2.0), f0=0.85, loud=0.5, rate=3.0, fixation=1.0, blink=0.4),
    "surprised": dict(pose=(0.0, -6.0, 0.0), motion=1.6, gaze=(0.0, -4.0), gaze_spread=(7.0, 2.0), f0=1.35, loud=0.9, rate=4.2, fixation=0.35, blink=0.15),
}


@dataclass(frozen=True)
class MiniMEADConfig:
    """Generation settings (recorded in ``mini_mead.json``)."""

    speakers: int = 6
    clips: int = 2
    seconds: float = 2.0
    size: int = 256
    seed: int = 0
    fps: int = FPS
    sample_rate: int = SAMPLE_RATE
    free_motion: bool = False

    def record(self) -> dict[str, object]:
        """The settings as ``mini_mead.json`` records them (``free_motion`` only when on, so the
        default tree's files stay byte-identical to those of generator versions before the option)."""
        values = asdict(self)
        if not self.free_motion:
            del values["free_motion"]
        return values


@dataclass(frozen=True)
class Identity:
    """An actor's face shape, colours and voice."""

    name: str
    shape: np.ndarray  # (68, 3) neutral face in canonical units
    skin: np.ndarray  # (3,) RGB in [0, 1]
    lips: np.ndarray
    brows: np.ndarray
    iris: np.ndarray
    background: np.ndarray  # (2, 3) top and bottom colours
    f0: float  # voice base pitch, Hz


def actor_names(count: int) -> list[str]:
    """``count`` MEAD-style actor names, alternating men and women."""
    limit = len(MALE_ACTORS) + len(FEMALE_ACTORS)
    if not 1 <= count <= limit:
        raise ValueError(f"speakers must be between 1 and {limit}, got {count}")
    names = [name for pair in zip(MALE_ACTORS, FEMALE_ACTORS) for name in pair]
    return sorted(names[:count])


def speaker_split(actors: list[str]) -> dict[str, list[str]]:
    """Deterministic train/val/test actors for mini-MEAD: the last actor tests, the one before validates."""
    if len(actors) < 3:
        return {"train": list(actors), "val": list(actors), "test": list(actors)}
    return {"train": list(actors[:-2]), "val": [actors[-2]], "test": [actors[-1]]}


def _rng(seed: int, *keys: object) -> np.random.Generator:
    """A generator seeded by ``seed`` and string keys, stable across processes and runs."""
    words = [zlib.crc32(str(key).encode()) for key in keys]
    return np.random.default_rng(np.random.SeedSequence([seed, *words]))


def make_identity(name: str, seed: int) -> Identity:
    """Sample an actor's identity (face proportions, colours, voice)."""
    rng = _rng(seed, "identity", name)
    female = name.startswith("W")
    shape = MEAN_FACE_NP.astype(np.float64).copy()
    shape[:, 0] *= rng.uniform(0.88, 1.12) * (0.96 if female else 1.02)
    shape[:, 1] *= rng.uniform(0.9, 1.1)
    shape[36:48, 0] += np.sign(shape[36:48, 0]) * rng.uniform(-0.03, 0.03)  # eye spacing
    jaw = np.arange(17)
    shape[jaw, 0] *= rng.uniform(0.92, 1.06)  # jaw width
    shape[27:36, 1] += np.linspace(0.0, 1.0, 9) * rng.uniform(-0.03, 0.03)  # nose length
    shape[48:68, 0] *= rng.uniform(0.9, 1.1)  # mouth width
    shape[17:27, 1] += rng.uniform(-0.03, 0.02)  # brow height
    shape += rng.normal(0.0, 0.006, shape.shape)
    tone = rng.uniform(0.0, 1.0)
    skin = np.array([0.93, 0.76, 0.64]) * (1.0 - 0.5 * tone) + np.array([0.05, 0.03, 0.02]) * tone
    lips = skin * np.array([0.85, 0.55, 0.55]) + (np.array([0.12, 0.0, 0.02]) if female else 0.0)
    brows = np.array([0.25, 0.17, 0.10]) * rng.uniform(0.4, 1.2)
    iris = rng.choice([np.array([0.35, 0.22, 0.10]), np.array([0.25, 0.40, 0.60]), np.array([0.30, 0.45, 0.25])])
    background = rng.uniform(0.15, 0.85, (2, 3))
    f0 = (205.0 if female else 115.0) * rng.uniform(0.9, 1.1)
    return Identity(name, shape, np.clip(skin, 0, 1), np.clip(lips, 0, 1), brows, iris, background, f0)


# ----------------------------------------------------------------------------------------------
# Cues: audio envelope, mouth, expression, pose, gaze
# ----------------------------------------------------------------------------------------------


def _smooth_noise(rng: np.random.Generator, num: int, fps: float, cutoff_hz: float) -> np.ndarray:
    """Band-limited noise with unit standard deviation ``(num,)`` (a few random sinusoids)."""
    t = np.arange(num) / fps
    freqs = rng.uniform(0.15, 1.0, 4) * cutoff_hz
    phases = rng.uniform(0, 2 * math.pi, 4)
    amps = rng.uniform(0.5, 1.0, 4)
    signal = (amps[:, None] * np.sin(2 * math.pi * freqs[:, None] * t + phases[:, None])).sum(0)
    return signal / math.sqrt((amps**2).sum() / 2)


class Speech(NamedTuple):
    """Synthetic speech and the audio-rate signals that drive the face.

    Attributes:
        waveform: ``(S,)`` float32.
        envelope: ``(S,)`` in [0, 1], the syllable amplitude (drives the jaw).
        roundness: ``(S,)`` in [0, 1], the vowel's lip rounding (from F2).
        stress: ``(S,)`` in [0, 1], the envelope of stressed syllables only (zero elsewhere):
            they are louder and carry a pitch accent; they drive the strong nods.
        accent: ``(S,)`` in [0, 1], the pitch-accent bumps of F0 (a Gaussian per stressed
            syllable, peaking at its centre); each starts a head turn.
    """

    waveform: np.ndarray
    envelope: np.ndarray
    roundness: np.ndarray
    stress: np.ndarray
    accent: np.ndarray


STRESS_PROBABILITY = 0.3
"""Probability that a syllable is stressed (louder, with a pitch accent)."""
ACCENT_F0 = 0.15
"""Relative F0 rise at the peak of a pitch accent."""


def synthesize_speech(
    rng: np.random.Generator, seconds: float, identity: Identity, emotion: str, level: int, sample_rate: int
) -> Speech:
    """Voiced speech-like audio with a syllable envelope, stressed syllables and pitch accents.

    Returns:
        :class:`Speech` (waveform and the audio-rate envelope, roundness, stress and accent).
    """
    style = EMOTION_STYLE[emotion]
    intensity = LEVEL_INTENSITY[level] if emotion != "neutral" else 0.0
    num = int(round(seconds * sample_rate))
    t = np.arange(num) / sample_rate
    envelope = np.zeros(num)
    stress = np.zeros(num)
    accent = np.zeros(num)
    roundness = np.zeros(num)
    f1 = np.full(num, 500.0)
    f2 = np.full(num, 1500.0)
    rate = float(style["rate"]) ** (intensity) * 4.0 ** (1 - intensity)
    position = rng.uniform(0.05, 0.2)
    while position < seconds - 0.1:
        duration = rng.uniform(0.6, 1.4) / rate
        if rng.uniform() < 0.12:  # a pause between words
            position += duration
            continue
        stressed = rng.uniform() < STRESS_PROBABILITY
        amplitude = rng.uniform(0.9, 1.0) if stressed else rng.uniform(0.5, 0.85)
        vowel_f1, vowel_f2 = rng.uniform(300, 850), rng.uniform(800, 2300)
        inside = (t >= position) & (t < position + duration)
        phase = (t[inside] - position) / duration
        shape = amplitude * np.sin(math.pi * phase) ** 1.5
        envelope[inside] = np.maximum(envelope[inside], shape)
        if stressed:
            stress[inside] = np.maximum(stress[inside], shape)
            centre = position + 0.5 * duration
            accent = np.maximum(accent, np.exp(-0.5 * ((t - centre) / (0.3 * duration)) ** 2))
        roundness[inside] = 1.0 - (vowel_f2 - 800.0) / 1500.0
        f1[inside], f2[inside] = vowel_f1, vowel_f2
        position += duration * rng.uniform(1.0, 1.25)
    f0_base = identity.f0 * (float(style["f0"]) ** (0.3 + 0.7 * intensity))
    f0 = f0_base * (1.0 + 0.08 * _smooth_noise(rng, num, sample_rate, 2.0) + 0.1 * envelope + ACCENT_F0 * accent)
    phase = 2 * math.pi * np.cumsum(f0) / sample_rate
    wave = np.zeros(num)
    for harmonic in range(1, 30):
        freq = harmonic * f0
        gain = (
            np.exp(-(((freq - f1) / 120.0) ** 2))
            + 0.6 * np.exp(-(((freq - f2) / 160.0) ** 2))
            + 0.25 * np.exp(-(((freq - 2800.0) / 250.0) ** 2))
            + 0.05
        ) / harmonic**0.5
        gain = np.where(freq < sample_rate / 2 - 200, gain, 0.0)
        wave += gain * np.sin(harmonic * phase)
    wave = wave / (np.abs(wave).max() + 1e-9)
    loudness = 0.35 + 0.5 * float(style["loud"]) * (0.5 + 0.5 * intensity)
    wave = loudness * envelope * wave + 0.003 * rng.normal(size=num)
    return Speech(wave.astype(np.float32), envelope, np.clip(roundness, 0.0, 1.0), stress, accent)


def per_frame(signal: np.ndarray, num_frames: int, sample_rate: int, fps: int) -> np.ndarray:
    """Mean of an audio-rate signal over each video frame's span ``(num_frames,)``."""
    hop = sample_rate // fps
    padded = np.zeros(num_frames * hop)
    padded[: min(len(signal), len(padded))] = signal[: len(padded)]
    return padded.reshape(num_frames, hop).mean(1)


def expression_offsets(emotion: str, intensity: float) -> np.ndarray:
    """Emotion-specific landmark displacement ``(68, 3)`` in canonical units at ``intensity``."""
    d = np.zeros((NUM_LANDMARKS, 3))
    right_brow, left_brow = list(range(17, 22)), list(range(22, 27))
    inner_brows, outer_brows = [20, 21, 22, 23], [17, 18, 25, 26]
    corners_outer, corners_inner = [48, 54], [60, 64]
    upper_lip = [49, 50, 51, 52, 53, 61, 62, 63]
    if emotion == "angry":
        d[inner_brows, 1] += 0.09
        d[right_brow + left_brow, 1] += 0.03
        d[[20, 21], 0] += 0.03
        d[[22, 23], 0] -= 0.03
        d[corners_outer + corners_inner, 0] *= 0.0
        d[[48, 60], 0] += 0.03
        d[[54, 64], 0] -= 0.03
    elif emotion == "contempt":
        d[left_brow, 1] -= 0.04
        d[[54, 64], 1] -= 0.06
        d[[54, 64], 0] += 0.04
    elif emotion == "disgusted":
        d[right_brow + left_brow, 1] += 0.05
        d[upper_lip, 1] -= 0.05
        d[[31, 32, 33, 34, 35], 1] -= 0.02
    elif emotion == "fear":
        d[inner_brows, 1] -= 0.09
        d[outer_brows, 1] -= 0.03
        d[corners_outer + corners_inner, 1] += 0.02
        d[[48, 60], 0] -= 0.05
        d[[54, 64], 0] += 0.05
    elif emotion == "happy":
        d[corners_outer + corners_inner, 1] -= 0.07
        d[[48, 60], 0] -= 0.05
        d[[54, 64], 0] += 0.05
        d[[49, 53, 59, 55], 1] -= 0.02
        d[right_brow + left_brow, 1] -= 0.015
    elif emotion == "sad":
        d[inner_brows, 1] -= 0.07
        d[outer_brows, 1] += 0.03
        d[corners_outer + corners_inner, 1] += 0.06
    elif emotion == "surprised":
        d[right_brow + left_brow, 1] -= 0.11
    return d * intensity


EYE_OPENNESS = {"angry": 0.75, "contempt": 0.95, "disgusted": 0.7, "fear": 1.3, "happy": 0.8, "neutral": 1.0,
                "sad": 0.85, "surprised": 1.45}  # fmt: skip
JAW_BASELINE = {"surprised": 0.35, "fear": 0.12, "happy": 0.08}


BLINK_PROFILE = np.array([0.45, 0.95, 1.0, 0.6, 0.25])
"""Lid closure over the frames of one blink (fast close, slower reopening; ~0.2 s at 25 fps)."""
BLINK_CLOSURE = 0.9
"""Fraction of the eye opening a full blink closes (the lid contour keeps a sliver)."""


def blink_track(rng: np.random.Generator, num: int, emotion: str, level: int, fps: int) -> np.ndarray:
    """Lid closure per frame ``(T,)`` in [0, 1]: blinks as a Poisson process at the emotion's rate.

    The rate moves from the neutral rate to the emotion's with the intensity (fear blinks often,
    surprise seldom); successive blinks are at least 0.4 s apart.
    """
    style, base = EMOTION_STYLE[emotion], EMOTION_STYLE["neutral"]
    intensity = 0.0 if emotion == "neutral" else LEVEL_INTENSITY[level]
    rate = float(base["blink"]) * (1 - intensity) + float(style["blink"]) * intensity
    closure = np.zeros(num)
    frame = rng.exponential(1.0 / rate) * fps * rng.uniform()  # the process started before the clip
    while frame < num:
        start = int(frame)
        span = BLINK_PROFILE[: max(0, min(len(BLINK_PROFILE), num - start))]
        closure[start : start + len(span)] = np.maximum(closure[start : start + len(span)], span)
        frame += max(0.4 * fps, rng.exponential(1.0 / rate) * fps)
    return closure


def face_shapes(
    identity: Identity,
    emotion: str,
    level: int,
    mouth_open: np.ndarray,
    roundness: np.ndarray,
    blink: np.ndarray | None = None,
) -> np.ndarray:
    """Canonical-frame landmarks per frame ``(T, 68, 3)``: identity + expression + speech (+ blinks).

    ``blink`` ``(T,)`` in [0, 1] closes the lids (each eye contour's height shrinks by
    ``BLINK_CLOSURE * blink`` around its centre); ``None``: no blinks.
    """
    intensity = 0.0 if emotion == "neutral" else LEVEL_INTENSITY[level]
    base = identity.shape + expression_offsets(emotion, intensity)
    openness = 1.0 + (EYE_OPENNESS[emotion] - 1.0) * intensity
    for eye in EYES:
        idx = list(eye)
        center_y = base[idx, 1].mean()
        base[idx, 1] = center_y + (base[idx, 1] - center_y) * openness
    jaw = np.clip(mouth_open + JAW_BASELINE.get(emotion, 0.0) * intensity, 0.0, 1.3)[:, None]  # (T, 1)
    shapes = np.repeat(base[None], len(mouth_open), 0)
    # The jaw drops, carrying the lower lip and chin; the upper lip lifts slightly.
    lower_lip = [55, 56, 57, 58, 59, 65, 66, 67]
    shapes[:, lower_lip, 1] += 0.20 * jaw
    shapes[:, [61, 62, 63], 1] -= 0.02 * jaw
    chin_weight = np.exp(-(((np.arange(17) - 8) / 3.5) ** 2))
    shapes[:, 0:17, 1] += 0.17 * jaw * chin_weight[None]
    shapes[:, [48, 54, 60, 64], 1] += 0.07 * jaw
    # Rounded vowels narrow the mouth; the lips protrude.
    mouth = list(range(48, 68))
    center_x = base[mouth, 0].mean()
    width = 1.0 - 0.22 * roundness[:, None] * np.clip(mouth_open[:, None] * 2.0, 0.0, 1.0)
    shapes[:, mouth, 0] = center_x + (shapes[:, mouth, 0] - center_x) * width
    shapes[:, mouth, 2] -= 0.05 * roundness[:, None] * np.clip(mouth_open[:, None] * 2.0, 0.0, 1.0)
    if blink is not None:
        lids = 1.0 - BLINK_CLOSURE * np.clip(blink, 0.0, 1.0)[:, None]  # (T, 1)
        for eye in EYES:
            idx = list(eye)
            center_y = shapes[:, idx, 1].mean(1, keepdims=True)
            shapes[:, idx, 1] = center_y + (shapes[:, idx, 1] - center_y) * lids
    return shapes


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``(start, stop)`` of each run of True in a boolean ``(T,)``."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


NOD_DEGREES = 4.0
"""Extra head pitch (down) at the peak of a stressed syllable, times the emotion's motion."""
TURN_DEGREES = 4.0
"""Head yaw of the turn a pitch accent starts, times the emotion's motion (random side)."""
WANDER = 0.7
"""Share of the slow head wander kept beside the prosodic motion (1.0 before generator 2)."""


def head_pose(
    rng: np.random.Generator,
    num: int,
    emotion: str,
    level: int,
    fps: int,
    envelope: np.ndarray,
    stress: np.ndarray | None = None,
    accent: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Euler angles ``(T, 3)`` (yaw, pitch, roll) degrees and a translation jitter ``(T, 2)`` in canonical units.

    Emotion statistics (mean posture, motion amplitude) plus prosody: every syllable nods with
    its loudness (``envelope``), stressed syllables (``stress``, per frame) nod further, one
    frame later, and each pitch accent (``accent``, per frame) starts a head turn of random side
    that rises and returns over ~0.6 s. Without ``stress``/``accent`` only the loudness nods.
    """
    style = EMOTION_STYLE[emotion]
    intensity = 0.0 if emotion == "neutral" else LEVEL_INTENSITY[level]
    mean = np.asarray(style["pose"]) * (0.4 + 0.6 * intensity) + rng.normal(0.0, 1.0, 3)
    motion = float(style["motion"]) ** (0.3 + 0.7 * intensity)
    euler = np.stack(
        [
            mean[0] + WANDER * 6.0 * motion * _smooth_noise(rng, num, fps, 0.6),
            mean[1] + WANDER * 3.0 * motion * _smooth_noise(rng, num, fps, 0.8) + 2.0 * envelope,  # speech nods
            mean[2] + WANDER * 2.0 * motion * _smooth_noise(rng, num, fps, 0.5),
        ],
        1,
    )
    if stress is not None:
        delayed = np.concatenate([[0.0], stress[:-1]])  # the head follows the voice by ~40 ms
        euler[:, 1] += NOD_DEGREES * motion * delayed
    if accent is not None:
        turn_len = int(0.6 * fps)
        turn_shape = np.sin(np.linspace(0.0, math.pi, turn_len)) ** 2  # rise and return
        for start, stop in _runs(accent > 0.3):
            side = rng.choice([-1.0, 1.0])
            begin = (start + stop) // 2 - turn_len // 4  # peaks just after the accent's peak
            span = np.arange(begin, begin + turn_len)
            keep = (span >= 0) & (span < num)
            euler[span[keep], 0] += side * TURN_DEGREES * motion * turn_shape[keep]
    shift = 0.03 * motion * np.stack([_smooth_noise(rng, num, fps, 0.5), _smooth_noise(rng, num, fps, 0.5)], 1)
    return euler, shift


FREE_ROTATION_LIMITS = (30.0, 20.0, 15.0)
"""Free head motion: bounds of (yaw, pitch, roll) in degrees (VoxCeleb-like free talking)."""
FREE_SHIFT_LIMIT = 0.1
"""Free head motion: bound of the head's translation (x and y), as a fraction of the face extent."""
FREE_SCALE_LIMIT = 0.1
"""Free head motion: bound of the relative change of the head's size (+-10%)."""
FACE_EXTENT = float(np.ptp(MEAN_FACE_NP[:, :2], axis=0).max())
"""The mean face's largest extent (width) in canonical units (~1.48)."""
HEAD_SCALE = 0.40
"""Image pixels per canonical unit, as a fraction of the frame side (the face fills ~60% of it)."""
FREE_HEAD_SCALE = 0.30
"""The same with free head motion: the head is drawn smaller (the face fills ~44% of the frame) so
that it can turn, tilt and move and a crop of 1.6 x its extent still fits inside the frame."""
FREE_MOTION_CUTOFF_HZ = 1.0
"""Highest frequency of the free-motion trajectories (the slowest is 0.15 x this)."""


def free_motion_frame_size(crop_size: int) -> int:
    """Frame side (even) at which a free-motion mini-MEAD's face crops of ``crop_size`` pixels
    are about 1:1 with the frame's pixels, as the default mini-MEAD's are at ``crop_size``: the
    head is drawn :data:`FREE_HEAD_SCALE` / :data:`HEAD_SCALE` as large, so the frame is larger
    by the inverse (64 -> 86, 256 -> 342)."""
    return 2 * round(crop_size * HEAD_SCALE / FREE_HEAD_SCALE / 2)


def _bounded(values: np.ndarray, limit: float) -> np.ndarray:
    """Squash ``values`` smoothly into ``(-limit, limit)`` (``limit * tanh(values / limit)``):
    about the identity for small values, so small motion passes unchanged."""
    return limit * np.tanh(values / limit)


def free_head_motion(
    rng: np.random.Generator, num: int, fps: int, euler: np.ndarray, shift: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Free talking head motion on top of the speech- and emotion-driven pose of :func:`head_pose`.

    Per clip, each of yaw, pitch, roll, the x/y translation and the scale follows a smooth random
    trajectory (a random offset for the clip plus band-limited wander up to
    :data:`FREE_MOTION_CUTOFF_HZ`, so a 2-second clip sweeps a good part of the range), added to
    the clip's own pose; each sum is squashed smoothly into its bound
    (:data:`FREE_ROTATION_LIMITS`, :data:`FREE_SHIFT_LIMIT` of the face, :data:`FREE_SCALE_LIMIT`).

    Args:
        rng: the clip's free-motion generator (separate from the clip's other draws, so the speech,
            mouth, blinks and gaze of a clip are those of the same clip without free motion).
        num: frames ``T``.
        fps: frame rate.
        euler: ``(T, 3)`` (yaw, pitch, roll) degrees from :func:`head_pose`.
        shift: ``(T, 2)`` translation jitter in canonical units from :func:`head_pose`.

    Returns:
        ``(euler (T, 3) degrees, shift (T, 2) canonical units, scale (T,) relative size around 1)``.
    """
    limits = np.asarray(FREE_ROTATION_LIMITS)
    # Offset uniform over +-60% of the bound, wander with a standard deviation of 55% of it.
    offset = rng.uniform(-0.6, 0.6, 3) * limits
    wander = np.stack([_smooth_noise(rng, num, fps, FREE_MOTION_CUTOFF_HZ) for _ in range(3)], 1) * 0.55 * limits
    free_euler = _bounded(euler + offset + wander, limits)
    shift_limit = FREE_SHIFT_LIMIT * FACE_EXTENT
    offset = rng.uniform(-0.5, 0.5, 2) * shift_limit
    wander = np.stack([_smooth_noise(rng, num, fps, FREE_MOTION_CUTOFF_HZ) for _ in range(2)], 1) * 0.5 * shift_limit
    free_shift = _bounded(shift + offset + wander, shift_limit)
    zoom = rng.uniform(-0.5, 0.5) * FREE_SCALE_LIMIT + 0.5 * FREE_SCALE_LIMIT * _smooth_noise(rng, num, fps, FREE_MOTION_CUTOFF_HZ)
    scale = 1.0 + _bounded(zoom, FREE_SCALE_LIMIT)
    return free_euler, free_shift, scale


SACCADE_FRAMES = 2
"""Frames a saccade takes between two fixations (~80 ms at 25 fps)."""


def gaze_track(rng: np.random.Generator, num: int, emotion: str, level: int, fps: int) -> np.ndarray:
    """Per-eye gaze ``(T, 2, 2)`` (yaw, pitch) degrees: fixations with saccades between them.

    Fixation lengths are drawn around the emotion's mean (``fixation``, moving from neutral's
    with the intensity): fear darts (many saccades), anger and sadness stare; each saccade is a
    :data:`SACCADE_FRAMES`-frame ramp to the next target.
    """
    style, base = EMOTION_STYLE[emotion], EMOTION_STYLE["neutral"]
    intensity = 0.0 if emotion == "neutral" else LEVEL_INTENSITY[level]
    mean = np.asarray(style["gaze"]) * (0.3 + 0.7 * intensity)
    spread = np.asarray(style["gaze_spread"])
    fixation = float(base["fixation"]) * (1 - intensity) + float(style["fixation"]) * intensity
    gaze = np.zeros((num, 2))
    frame = 0
    previous: np.ndarray | None = None
    while frame < num:
        hold = max(SACCADE_FRAMES + 1, int(rng.uniform(0.5, 1.5) * fixation * fps))
        target = mean + spread * rng.normal(size=2)
        target = np.clip(target, [-25.0, -11.0], [25.0, 13.0])
        gaze[frame : frame + hold] = target
        if previous is not None:  # the saccade: a fast ramp from the previous fixation
            ramp = np.arange(1, SACCADE_FRAMES + 1)[:, None] / (SACCADE_FRAMES + 1)
            stop = min(frame + SACCADE_FRAMES, num)
            gaze[frame:stop] = (previous + (target - previous) * ramp)[: stop - frame]
        previous = target
        frame += hold
    gaze += rng.normal(0.0, 0.4, gaze.shape)  # fixational jitter
    vergence = np.array([[1.5, 0.0], [-1.5, 0.0]])  # the eyes converge slightly on the viewer
    return gaze[:, None, :] + vergence[None]


# ----------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------

_FOREHEAD = np.array([[x, -0.55 - 0.35 * math.cos(x / 0.74 * math.pi / 2), 0.15] for x in np.linspace(0.72, -0.72, 9)])
_NECK = np.array([[-0.38, 0.6, 0.4], [-0.42, 1.6, 0.4], [0.42, 1.6, 0.4], [0.38, 0.6, 0.4]])


def _rgb(color: np.ndarray) -> tuple[int, int, int]:
    return tuple(int(round(float(c) * 255)) for c in np.clip(color, 0.0, 1.0))  # type: ignore[return-value]


def _xy(points: np.ndarray) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in points[:, :2]]


def render_frame(
    background: Image.Image,
    identity: Identity,
    image_points: np.ndarray,
    extra_points: dict[str, np.ndarray],
    pupils: np.ndarray,
    iris_radius: float,
    yaw_deg: float,
) -> np.ndarray:
    """Draw one shaded face over ``background`` and return it as uint8 ``(H, W, 3)``.

    Flat regions are drawn with PIL (fast C polygon filling); the eyes are composed in small
    numpy patches so that iris and pupil are clipped by the lids; a shading field darkens the
    head towards its silhouette and lights the side the head turns to.
    """
    size = background.size[0]
    image = background.copy()
    draw = ImageDraw.Draw(image)
    skin = identity.skin
    draw.polygon(_xy(extra_points["neck"]), fill=_rgb(skin * 0.78))
    outline = np.concatenate([image_points[0:17, :2], extra_points["forehead"][:, :2]])
    draw.polygon(_xy(outline), fill=_rgb(skin))
    draw.polygon(_xy(image_points[[27, 31, 32, 33, 34, 35]]), fill=_rgb(skin * 0.9))
    nostril = max(1.0, 0.018 * iris_radius / 0.065)
    for index in (32, 34):
        x, y = image_points[index, :2]
        draw.ellipse((x - nostril * 1.5, y - nostril, x + nostril * 1.5, y + nostril), fill=_rgb(skin * 0.45))
    thickness = 0.035 * size * 0.42 * (1.3 if identity.name.startswith("M") else 1.0)
    for brow in (range(17, 22), range(22, 27)):
        upper = image_points[list(brow), :2] - np.array([0.0, thickness * 0.5])
        lower = image_points[list(brow), :2][::-1] + np.array([0.0, thickness * 0.5])
        draw.polygon(_xy(np.concatenate([upper, lower])), fill=_rgb(identity.brows))
    draw.polygon(_xy(image_points[48:60]), fill=_rgb(identity.lips))
    inner = image_points[60:68]
    draw.polygon(_xy(inner), fill=_rgb(np.array([0.28, 0.06, 0.08])))
    teeth_bottom = inner[[1, 2, 3], 1].mean() + 0.25 * (inner[[5, 6, 7], 1].mean() - inner[[1, 2, 3], 1].mean())
    if teeth_bottom - inner[[1, 2, 3], 1].mean() > 0.5:
        teeth = np.concatenate([inner[[0, 1, 2, 3, 4], :2], [[inner[4, 0], teeth_bottom], [inner[0, 0], teeth_bottom]]])
        draw.polygon(_xy(teeth), fill=_rgb(np.array([0.92, 0.9, 0.85])))
    for eye in EYES:
        draw.polygon(_xy(image_points[list(eye)]), fill=(242, 240, 235))
    canvas = np.asarray(image, dtype=np.float32)
    canvas.setflags(write=True)

    # Eyes: iris and pupil inside the sclera only (the sclera colour marks the opening).
    sclera = np.array([242.0, 240.0, 235.0], dtype=np.float32)
    for eye_index, eye in enumerate(EYES):
        contour = image_points[list(eye), :2]
        x0, y0 = np.floor(contour.min(0)).astype(int) - 1
        x1, y1 = np.ceil(contour.max(0)).astype(int) + 2
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, size), min(y1, size)
        if x1 <= x0 or y1 <= y0:
            continue
        patch = canvas[y0:y1, x0:x1]
        opening = np.all(np.abs(patch - sclera) < 1.0, axis=-1)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        px, py = pupils[eye_index]
        distance = np.hypot(xx - px, yy - py)
        patch[opening & (distance <= iris_radius)] = np.asarray(_rgb(identity.iris), dtype=np.float32)
        patch[opening & (distance <= iris_radius * 0.45)] = 8.0
    # Shading over the head: darker towards the silhouette, lit from the side the head turns to.
    head = np.concatenate([outline, extra_points["neck"][:, :2]])
    x_min, y_min = np.floor(head.min(0)).astype(int)
    x_max, y_max = np.ceil(head.max(0)).astype(int) + 1
    x_min, y_min, x_max, y_max = max(x_min, 0), max(y_min, 0), min(x_max, size), min(y_max, size)
    center = outline.mean(0)
    radius = np.abs(outline - center).max(0) + 1e-6
    dy = np.minimum((np.arange(y_min, y_max) - center[1]) / radius[1], 0.9)[:, None]
    dx = ((np.arange(x_min, x_max) - center[0]) / radius[0])[None, :]
    shade = np.clip(1.0 - 0.35 * (dx**2 + dy**2) ** 1.5 + 0.12 * dx * math.sin(math.radians(yaw_deg) * 3), 0.5, 1.1)
    region = canvas[y_min:y_max, x_min:x_max]
    differs = np.any(np.abs(region - np.asarray(background)[y_min:y_max, x_min:x_max]) > 0.5, axis=-1)
    region[differs] *= shade[differs][:, None]
    # Lid lines last, so they stay crisp.
    result = Image.fromarray(np.clip(canvas + 0.5, 0, 255).astype(np.uint8))
    lines = ImageDraw.Draw(result)
    for eye in EYES:
        lines.line(_xy(image_points[list(eye)][[0, 1, 2, 3]]), fill=_rgb(identity.brows * 0.6), width=1)
    return np.asarray(result)


@dataclass(frozen=True)
class ClipJob:
    """One clip to make."""

    root: str
    actor: str
    emotion: str
    level: int
    index: int
    config: MiniMEADConfig

    @property
    def relative(self) -> str:
        return f"{self.emotion}/level_{self.level}/{self.index:03d}"


def _worker_init() -> None:
    """One torch thread per worker process (the pool already uses every core); Ctrl-C is the
    parent's to handle (one line, exit 130), not a traceback from every worker."""
    torch.set_num_threads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class RenderedClip(NamedTuple):
    """One clip before it is written: frames ``(T, H, W, 3)`` uint8, waveform ``(S,)`` float32
    and the ground-truth sidecar's arrays (keys in docs/data_format.md)."""

    frames: np.ndarray
    waveform: np.ndarray
    truth: dict[str, np.ndarray]


def render_clip(job: ClipJob) -> RenderedClip:
    """Synthesise and render one clip (nothing is written)."""
    cfg = job.config
    identity = make_identity(job.actor, cfg.seed)
    rng = _rng(cfg.seed, "clip", job.actor, job.emotion, job.level, job.index)
    num_frames = int(round(cfg.seconds * cfg.fps))
    speech = synthesize_speech(rng, cfg.seconds, identity, job.emotion, job.level, cfg.sample_rate)
    wave = speech.waveform
    frame_envelope = per_frame(speech.envelope, num_frames, cfg.sample_rate, cfg.fps)
    frame_roundness = per_frame(speech.roundness, num_frames, cfg.sample_rate, cfg.fps)
    frame_stress = per_frame(speech.stress, num_frames, cfg.sample_rate, cfg.fps)
    frame_accent = per_frame(speech.accent, num_frames, cfg.sample_rate, cfg.fps)
    mouth_open = np.clip(frame_envelope, 0.0, 1.0)
    euler, shift = head_pose(rng, num_frames, job.emotion, job.level, cfg.fps, frame_envelope, frame_stress, frame_accent)
    gaze = gaze_track(rng, num_frames, job.emotion, job.level, cfg.fps)  # (T, 2, 2)
    blink = blink_track(rng, num_frames, job.emotion, job.level, cfg.fps)  # (T,)
    shapes = face_shapes(identity, job.emotion, job.level, mouth_open, frame_roundness, blink)  # (T, 68, 3)

    if cfg.free_motion:
        # Its own generator: the clip's speech, mouth, blinks and gaze stay those of the default clip.
        free_rng = _rng(cfg.seed, "free-motion", job.actor, job.emotion, job.level, job.index)
        euler, shift, zoom = free_head_motion(free_rng, num_frames, cfg.fps, euler, shift)
        scale = FREE_HEAD_SCALE * cfg.size * zoom  # (T,)
    else:
        scale = np.full(num_frames, HEAD_SCALE * cfg.size)
    rotation = euler_to_matrix(torch.from_numpy(euler)).numpy()  # (T, 3, 3)
    translation = np.zeros((num_frames, 3))
    translation[:, 0] = cfg.size / 2 + shift[:, 0] * scale
    translation[:, 1] = cfg.size * 0.47 + shift[:, 1] * scale

    def to_image(points: np.ndarray) -> np.ndarray:  # (T, N, 3) canonical -> image
        return scale[:, None, None] * np.einsum("tij,tnj->tni", rotation, points) + translation[:, None, :]

    landmarks = to_image(shapes)
    eye_centers = np.stack([shapes[:, list(eye), :].mean(1) for eye in EYES], 1)  # (T, 2, 3)
    direction = gaze_to_vector(torch.from_numpy(gaze)).numpy()  # (T, 2, 3)
    pupils_canonical = eye_centers + EYEBALL_RADIUS * (direction - np.array([0.0, 0.0, -1.0]))
    pupils = to_image(pupils_canonical)[..., :2]
    forehead = to_image(np.repeat(_FOREHEAD[None], num_frames, 0))
    neck = to_image(np.repeat(_NECK[None], num_frames, 0))

    size = cfg.size
    gradient = np.linspace(0.0, 1.0, size)[:, None, None]
    background = identity.background[0] * (1 - gradient) + identity.background[1] * gradient
    background = Image.fromarray((np.broadcast_to(background, (size, size, 3)) * 255 + 0.5).astype(np.uint8))
    frames = np.empty((num_frames, size, size, 3), dtype=np.uint8)
    for t in range(num_frames):
        frames[t] = render_frame(
            background, identity, landmarks[t], {"forehead": forehead[t], "neck": neck[t]},
            pupils[t], 0.065 * scale[t], float(euler[t, 0]),
        )  # fmt: skip

    f32 = np.float32
    truth = {
        "fps": np.int64(cfg.fps),
        "sample_rate": np.int64(cfg.sample_rate),
        "landmarks": landmarks.astype(f32),
        "normalized_landmarks": shapes.astype(f32),
        "rotation": rotation.astype(f32),
        "euler": euler.astype(f32),
        "translation": translation.astype(f32),
        "scale": scale.astype(f32),
        "gaze": gaze.astype(f32),
        "pupils": pupils.astype(f32),
        "mouth_open": mouth_open.astype(f32),
        "audio_envelope": frame_envelope.astype(f32),
        "speech_stress": frame_stress.astype(f32),
        "pitch_accent": frame_accent.astype(f32),
        "blink": blink.astype(f32),
        "emotion": np.str_(job.emotion),
        "level": np.int64(job.level),
        "actor": np.str_(job.actor),
    }
    return RenderedClip(frames, wave, truth)


def make_clip(job: ClipJob) -> str:
    """Synthesise, render and write one clip (video, audio, ground truth); returns its id."""
    cfg = job.config
    clip = render_clip(job)
    root = Path(job.root) / job.actor
    name = f"{job.index:03d}"
    level_dir = f"{job.emotion}/level_{job.level}"
    write_video(root / "video" / "front" / level_dir / f"{name}.mp4", clip.frames, cfg.fps, audio=clip.waveform,
                sample_rate=cfg.sample_rate)  # fmt: skip
    write_audio(root / "audio" / level_dir / f"{name}.m4a", clip.waveform, cfg.sample_rate)
    save_npz(root / "groundtruth" / level_dir / f"{name}.npz", clip.truth)
    return f"{job.actor}/{job.relative}"


def clip_jobs(out_dir: str | os.PathLike, config: MiniMEADConfig, emotions: Iterable[str] = EMOTIONS) -> list[ClipJob]:
    """Every clip of a mini-MEAD tree: actors x emotions x levels x clips."""
    return [
        ClipJob(str(out_dir), actor, emotion, level, index, config)
        for actor in actor_names(config.speakers)
        for emotion in emotions
        for level in levels_of(emotion)
        for index in range(1, config.clips + 1)
    ]


def make_mini_mead(
    out_dir: str | os.PathLike,
    speakers: int = 6,
    clips: int = 2,
    seconds: float = 2.0,
    size: int = 256,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = False,
    free_motion: bool = False,
) -> Path:
    """Write a mini-MEAD tree to ``out_dir``.

    Args:
        out_dir: destination root (``<actor>/video/front/...``, ``<actor>/audio/...``).
        speakers: number of actors (alternating M/W names); at least 3 gives a train/val/test split.
        clips: clips per (emotion, level).
        seconds: clip length.
        size: frame side in pixels (even).
        seed: everything is deterministic for a seed.
        workers: processes to use (default: all cores).
        progress: show progress (a bar on a terminal, periodic lines otherwise).
        free_motion: free head motion like free talking or VoxCeleb video
            (:func:`free_head_motion`: yaw within +-30 deg, pitch +-20, roll +-15, translation up
            to a tenth of the face, size +-10%) on top of the speech-driven mouth, blinks, gaze
            and head motion; the head is drawn smaller in the frame (:data:`FREE_HEAD_SCALE`) to
            leave it room. The sidecars carry the pose actually rendered. Off (default): the
            MEAD-like frontal data, unchanged.

    Returns:
        ``out_dir`` as a Path.
    """
    if size % 2 or size < 32:
        raise ValueError(f"size must be an even number of pixels >= 32, got {size}")
    if seconds <= 0 or clips < 1:
        raise ValueError(f"seconds must be > 0 and clips >= 1, got seconds={seconds}, clips={clips}")
    config = MiniMEADConfig(speakers=speakers, clips=clips, seconds=seconds, size=size, seed=seed,
                            free_motion=free_motion)
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    jobs = clip_jobs(root, config)
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    done: list[str] = []
    with ProgressReport("mini-MEAD", total=len(jobs), unit="clips", enabled=progress) as report:
        if workers == 1:
            for job in jobs:
                done.append(make_clip(job))
                report.advance()
        else:
            # Spawned, not forked: a child forked from a process whose torch (OpenMP) thread pool
            # has run deadlocks at its first parallel torch op (seen in the slow tests, where a
            # renderer cache was built after the evaluators had trained in the same process).
            context = get_context("spawn")
            with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_init) as pool:
                try:
                    for clip in pool.map(make_clip, jobs, chunksize=4):
                        done.append(clip)
                        report.advance()
                except KeyboardInterrupt:
                    pool.shutdown(cancel_futures=True)  # the clips not started are not started
                    raise
    actors = actor_names(speakers)
    meta = {
        "dataset": "mini-MEAD",
        "generator_version": GENERATOR_VERSION,
        **({"free_motion_version": FREE_MOTION_VERSION} if free_motion else {}),
        "config": config.record(),
        "actors": actors,
        "split": speaker_split(actors),
        "clips": len(done),
        "groundtruth": "<actor>/groundtruth/<emotion>/level_<k>/<nnn>.npz",
    }
    (root / "mini_mead.json").write_text(json.dumps(meta, indent=2) + "\n")
    return root
