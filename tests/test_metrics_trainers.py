"""The evaluator trainers run on MEADDataModule-shaped batches and their losses fall on a fixed batch."""

from __future__ import annotations

import pytest
import torch
from metrics_support import talking_videos

from emoface.emotions import EMOTIONS
from emoface.lightning_modules import EmotionClassifier, SyncNetTrainer
from emoface.networks import EmotionFAN, SyncNet
from emoface.networks.emotion_fan import EMOTION_FAN_LABELS


@pytest.mark.parametrize("objective", ["multiway", "contrastive"])
def test_syncnet_trainer_learns_a_fixed_batch(objective: str) -> None:
    torch.manual_seed(0)
    net = SyncNet(
        embed_dim=32,
        audio_channels=(8, 16, 16, 16, 16, 32),
        lip_channels=(8, 16, 16, 16, 16, 32),
        image_size=64,
    )
    system = SyncNetTrainer(net, lr=3e-3, objective=objective)
    frames, wave = talking_videos(2, 12, 64, seed=0)
    batch = {"frames": frames, "waveform": wave, "emotion": torch.tensor([0, 1])}
    opt = system.configure_optimizers()
    first = None
    for _ in range(15):
        loss, _ = system.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
    assert loss.item() < first


def test_multiway_loss_is_cross_entropy_over_offsets() -> None:
    """Multi-way matching = softmax cross-entropy of -distance over the offsets -K..K, target in sync."""
    torch.manual_seed(0)
    net = SyncNet(embed_dim=16, audio_channels=(4, 8, 8, 8, 8, 16), lip_channels=(4, 8, 8, 8, 8, 16), image_size=64)
    frames, wave = talking_videos(2, 12, 64, seed=0)
    batch = {"frames": frames, "waveform": wave}
    system = SyncNetTrainer(net, max_offset=2).eval()
    with torch.no_grad():
        d = system.distances(batch)  # (2, 7, 7)
        loss, _ = system.loss(batch)
    expected = []
    for clip in d:
        for i in range(d.shape[1]):
            js = [j for j in range(d.shape[2]) if abs(i - j) <= 2]
            expected.append(-torch.log_softmax(-clip[i, js], 0)[js.index(i)])
    torch.testing.assert_close(loss, torch.stack(expected).mean())
    with pytest.raises(ValueError, match="objective"):
        SyncNetTrainer(net, objective="triplet")


def test_emotion_classifier_learns_a_fixed_batch() -> None:
    torch.manual_seed(0)
    system = EmotionClassifier(EmotionFAN(layers=(1, 1, 1, 1), base_width=8, image_size=32), lr=3e-3)
    frames, _ = talking_videos(4, 3, 32, seed=1)
    batch = {"frames": frames, "emotion": torch.tensor([0, 4, 6, 7])}
    opt = system.configure_optimizers()
    losses = []
    for _ in range(15):
        loss = torch.nn.functional.cross_entropy(system(batch["frames"]), batch["emotion"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_emotion_classifier_class_weights_and_flips() -> None:
    torch.manual_seed(0)
    net = EmotionFAN(layers=(1, 1, 1, 1), base_width=8, image_size=32)
    with pytest.raises(ValueError, match="class weights"):
        EmotionClassifier(net, class_weights=[1.0, 2.0])
    weights = [1.0, 1.0, 1.0, 1.0, 1.0, 3.0, 1.0, 1.0]
    system = EmotionClassifier(net, class_weights=weights, flip=True)
    frames, _ = talking_videos(4, 3, 32, seed=1)
    batch = {"frames": frames, "emotion": torch.tensor([0, 5, 6, 7])}
    system.net.eval()  # no dropout: only the flips are random
    with torch.no_grad():
        torch.manual_seed(1)
        loss = system.training_step(batch, 0)
        torch.manual_seed(1)
        mirrored = torch.rand(4) < 0.5
        seen = torch.where(mirrored.view(-1, 1, 1, 1, 1), frames.flip(-1), frames)
        expected = torch.nn.functional.cross_entropy(system(seen), batch["emotion"], weight=torch.tensor(weights))
    assert 0 < int(mirrored.sum()) < 4  # the seed mirrors some windows, not all
    torch.testing.assert_close(loss, expected)


def test_emotion_classifier_translation_shifts_whole_windows() -> None:
    torch.manual_seed(0)
    system = EmotionClassifier(EmotionFAN(layers=(1, 1, 1, 1), base_width=8, image_size=32), translate=0.1)
    frames = torch.randint(0, 256, (3, 2, 3, 32, 32), dtype=torch.uint8)
    out = system._translate(frames)
    assert out.shape == frames.shape and out.dtype == frames.dtype
    for clip, moved in zip(frames, out):
        # some shift (dy, dx) within 3 px maps the window's interior onto the original, every frame alike
        hits = [
            (dy, dx)
            for dy in range(-3, 4)
            for dx in range(-3, 4)
            if torch.equal(moved[:, :, 3:-3, 3:-3], clip[:, :, 3 + dy : 29 + dy, 3 + dx : 29 + dx])
        ]
        assert hits


def test_emotion_classifier_trains_any_label_order_against_emoface_indices() -> None:
    """A classifier in EAT's label order: the system's logits, loss and accuracy are in EMOTIONS order."""
    torch.manual_seed(0)
    net = EmotionFAN(layers=(1, 1, 1, 1), base_width=8, image_size=32, labels=EMOTION_FAN_LABELS).eval()
    system = EmotionClassifier(net)
    frames, _ = talking_videos(2, 3, 32, seed=1)
    with torch.no_grad():
        raw = net(frames)  # columns in EAT's order
        logits = system(frames)
    for column, emotion in enumerate(EMOTIONS):
        torch.testing.assert_close(logits[:, column], raw[:, EMOTION_FAN_LABELS.index(emotion)])
    # Validation counts a hit where the argmax names the target emotion.
    target = logits.argmax(-1)
    system.validation_step({"frames": frames, "emotion": target}, 0)
    assert system.val_accuracy.compute()["accuracy"].item() == 1.0
