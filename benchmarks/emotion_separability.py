"""How well mini-MEAD's emotions can be told apart across identities from geometry alone.

    python benchmarks/emotion_separability.py        # ~45 s on a 2-core CPU; no rendering

A ceiling for video emotion classifiers trained on mini-MEAD: for fresh actors (never rendered,
only mini-MEAD's own cue generators: identity, expression, speech, head pose, gaze), each clip
becomes one feature vector: its mean posed 2D landmarks (68 x 2, canonical units) and mean gaze
(2 eyes x yaw, pitch). A multinomial logistic regression is fitted on the clips of
``--train-actors`` identities (one clip per emotion and level, as in the evaluators benchmark)
and scored on ``--test-actors`` others, for a few L2 strengths.

Measured (seed 0, 40 test actors, 880 clips): 10 training identities 0.976, 14: 0.984, 30: 0.991
(weakest L2 strength, the best; 0.81-0.84 with the strongest). Far above the 0.8 criterion of
``benchmarks/evaluators_learning.py``: what limits an image classifier there is learning the
geometry from few identities, not the data.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from emoface.datamodules import mini_mead
from emoface.emotions import EMOTIONS, levels_of
from emoface.geometry.rotations import euler_to_matrix

SECONDS = 2.0


def clip_features(actor: str, seed: int = 0) -> list[tuple[np.ndarray, int]]:
    """One ``(68 * 2 + 4,)`` feature vector and emotion index per (emotion, level) clip of ``actor``."""
    identity = mini_mead.make_identity(actor, seed)
    frames = int(SECONDS * mini_mead.FPS)
    out = []
    for emotion in EMOTIONS:
        for level in levels_of(emotion):
            # The same random stream, in the same order, as mini_mead.make_clip.
            rng = mini_mead._rng(seed, "clip", actor, emotion, level, 0)
            speech = mini_mead.synthesize_speech(rng, SECONDS, identity, emotion, level, mini_mead.SAMPLE_RATE)
            envelope, roundness, stress, accent = (
                mini_mead.per_frame(signal, frames, mini_mead.SAMPLE_RATE, mini_mead.FPS)
                for signal in (speech.envelope, speech.roundness, speech.stress, speech.accent)
            )
            euler, shift = mini_mead.head_pose(rng, frames, emotion, level, mini_mead.FPS, envelope, stress, accent)
            gaze = mini_mead.gaze_track(rng, frames, emotion, level, mini_mead.FPS)  # (T, 2, 2)
            blink = mini_mead.blink_track(rng, frames, emotion, level, mini_mead.FPS)
            shapes = mini_mead.face_shapes(identity, emotion, level, np.clip(envelope, 0.0, 1.0), roundness, blink)
            rotation = euler_to_matrix(torch.from_numpy(euler)).numpy()  # (T, 3, 3)
            posed = np.einsum("tij,tnj->tni", rotation, shapes)[..., :2] + shift[:, None, :]  # (T, 68, 2)
            out.append((np.concatenate([posed.mean(0).ravel(), gaze.mean(0).ravel()]), EMOTIONS.index(emotion)))
    return out


def stack(actors: list[list[tuple[np.ndarray, int]]]) -> tuple[torch.Tensor, torch.Tensor]:
    features = np.array([f for clips in actors for f, _ in clips])
    labels = np.array([label for clips in actors for _, label in clips])
    return torch.from_numpy(features).float(), torch.from_numpy(labels)


def held_out_accuracy(train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor],
                      l2: float) -> float:  # fmt: skip
    """Accuracy on ``test`` of an L2-regularised logistic regression fitted on ``train`` (standardised)."""
    (x_train, y_train), (x_test, y_test) = train, test
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    torch.manual_seed(0)
    linear = torch.nn.Linear(x_train.shape[1], len(EMOTIONS))
    optimizer = torch.optim.LBFGS(linear.parameters(), max_iter=500)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(linear(x_train), y_train) + l2 * linear.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        return float((linear(x_test).argmax(-1) == y_test).double().mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-actors", type=int, nargs="+", default=[10, 14, 30])
    parser.add_argument("--test-actors", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    strengths = (1e-3, 1e-2, 1e-1, 1.0)
    # Fresh identities (not mini-MEAD's actor names): the test actors come first and never change.
    names = [f"{'MW'[i % 2]}{100 + i}" for i in range(args.test_actors + max(args.train_actors))]
    clips = [clip_features(name, args.seed) for name in names]
    test = stack(clips[: args.test_actors])
    print(f"held-out accuracy on {args.test_actors} new actors ({len(test[1])} clips), by L2 strength")
    print(f"{'train actors':>12}" + "".join(f"{s:>10g}" for s in strengths))
    for count in args.train_actors:
        train = stack(clips[args.test_actors : args.test_actors + count])
        row = [held_out_accuracy(train, test, s) for s in strengths]
        print(f"{count:>12}" + "".join(f"{a:>10.3f}" for a in row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
