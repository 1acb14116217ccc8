"""Stage-1 networks and the SpeechToLandmarks system on synthetic batches of the documented contract."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from emoface.geometry.alignment import apply_similarity
from emoface.geometry.landmarks import mean_face
from emoface.geometry.rotations import euler_to_matrix
from emoface.lightning_modules.cue_emotion_classifier import CueEmotionClassifier, load_classifier_weights
from emoface.lightning_modules.speech_to_landmarks import SpeechToLandmarks, reference_pose, stitch_windows
from emoface.networks import CueEmotionClassifierNet, SpeechToLandmarksNet
from emoface.networks.audio import AudioEncoder, frame_windows
from emoface.networks.cues import CUE_FEATURES, CUE_SLICES, GazeBins

TINY = dict(audio_dim=16, emotion_dim=8, identity_dim=8, hidden=32, gaze_bins=6)


def synthetic_batch(batch: int = 3, frames: int = 10, seed: int = 0) -> dict[str, Any]:
    """A batch with every key of the MEADDataModule contract S2L asks for (docs/data_format.md)."""
    g = torch.Generator().manual_seed(seed)
    normalized = mean_face().expand(batch, frames, 68, 3) + 0.01 * torch.randn(batch, frames, 68, 3, generator=g)
    euler = 5 * torch.randn(batch, frames, 3, generator=g)
    rotation = euler_to_matrix(euler)
    translation = torch.tensor([128.0, 120.0, 0.0]) + torch.randn(batch, frames, 3, generator=g)
    scale = torch.full((batch, frames), 100.0)
    ref_norm = mean_face().expand(batch, 68, 3) + 0.01 * torch.randn(batch, 68, 3, generator=g)
    ref_t = torch.tensor([127.0, 121.0, 0.0]).expand(batch, 3)
    return {
        "emotion": torch.randint(0, 8, (batch,), generator=g),
        "level": torch.randint(1, 4, (batch,), generator=g),
        "clip": [f"M005/angry/level_1/{i:03d}" for i in range(batch)],
        "start": torch.zeros(batch, dtype=torch.long),
        "audio": torch.randn(batch, 4 * frames, 39, generator=g),
        "normalized_landmarks": normalized,
        "landmarks": apply_similarity(normalized, rotation, translation, scale),
        "rotation": rotation,
        "euler": euler,
        "translation": translation,
        "scale": scale,
        "gaze": 5 * torch.randn(batch, frames, 2, 2, generator=g),
        "gaze_confidence": torch.ones(batch, frames, 2),
        "ref_normalized_landmarks": ref_norm,
        "ref_landmarks": apply_similarity(ref_norm, torch.eye(3).expand(batch, 3, 3), ref_t, torch.full((batch,), 90.0)),
    }


def test_frame_windows_take_each_frames_rows_plus_context() -> None:
    audio = torch.arange(4 * 5, dtype=torch.float32).reshape(1, 20, 1)  # row index as the feature
    windows = frame_windows(audio, context=2)
    assert windows.shape == (1, 5, 8, 1)
    assert windows[0, 2, :, 0].tolist() == list(range(6, 14))  # rows 4t-2 .. 4t+5 for t = 2
    assert windows[0, 0, :, 0].tolist() == [0, 0, 0, 1, 2, 3, 4, 5]  # edge rows replicated


def test_audio_encoder_shape() -> None:
    assert AudioEncoder(39, context=8, out_dim=24)(torch.randn(2, 4 * 7, 39)).shape == (2, 7, 24)


def test_gaze_bins_expected_value_and_targets() -> None:
    bins = GazeBins(bins=6, max_angle=30.0)  # width 10, centres -25 .. 25
    logits = torch.full((6,), -1e4)
    logits[4] = 0.0  # all mass on the bin centred at 15
    assert bins.angles(logits, torch.zeros(6)).item() == pytest.approx(15.0)
    assert bins.angles(logits, torch.full((6,), 1e4)).item() == pytest.approx(20.0)  # offset saturates at +w/2
    assert bins.target_bins(torch.tensor([-30.0, -25.0, 0.0, 14.9, 29.9, 45.0])).tolist() == [0, 0, 3, 4, 5, 5]


def test_generator_shapes_and_reference_start() -> None:
    torch.manual_seed(0)
    batch = synthetic_batch()
    net = SpeechToLandmarksNet(**TINY)
    out = net(batch["audio"], batch["emotion"], batch["level"], reference_pose(batch))
    assert out.normalized_landmarks.shape == (3, 10, 68, 3)
    assert out.gaze.shape == (3, 10, 2, 2) and out.gaze_logits.shape == (3, 10, 2, 2, 6)
    assert out.rotation.shape == (3, 10, 3, 3) and out.translation.shape == (3, 10, 3) and out.scale.shape == (3, 10)
    eye = torch.eye(3).expand_as(out.rotation)
    torch.testing.assert_close(out.rotation @ out.rotation.transpose(-1, -2), eye, atol=1e-5, rtol=0)
    # small output layers: an untrained generator starts near the reference face and pose
    assert (out.normalized_landmarks - batch["ref_normalized_landmarks"][:, None]).abs().max() < 0.2
    reference = reference_pose(batch)
    torch.testing.assert_close(reference.scale, torch.full((3,), 90.0))
    torch.testing.assert_close(reference.translation, torch.tensor([127.0, 121.0, 0.0]).expand(3, 3))


def test_step_by_step_teacher_forcing_equals_the_one_call_path() -> None:
    torch.manual_seed(0)
    batch = synthetic_batch()
    net = SpeechToLandmarksNet(**TINY).eval()
    reference = reference_pose(batch)
    teacher = torch.randn(3, 10, CUE_FEATURES)
    args = (batch["audio"], batch["emotion"], batch["level"], reference, teacher)
    parallel = net(*args, sampling_probability=0.0)
    stepwise = net(*args, sampling_probability=1e-12)  # takes the per-step loop, never samples
    for a, b in zip(parallel, stepwise):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    fed_back = net(*args, sampling_probability=1.0)  # always its own outputs: equals free running
    free = net(batch["audio"], batch["emotion"], batch["level"], reference)
    torch.testing.assert_close(fed_back.normalized_landmarks, free.normalized_landmarks, atol=1e-5, rtol=1e-5)


def test_pose_and_gaze_are_never_teacher_forced_by_default() -> None:
    """Teacher forcing feeds the real previous landmarks only; pose and gaze are fed back from the
    network's own outputs in training too (they are what free running generates from)."""
    torch.manual_seed(0)
    batch = synthetic_batch()
    reference = reference_pose(batch)
    teacher = torch.randn(3, 10, CUE_FEATURES)
    other = teacher.clone()
    other[..., CUE_SLICES["gaze"]] += 1.0
    other[..., CUE_SLICES["pose"]] += 1.0
    args = (batch["audio"], batch["emotion"], batch["level"], reference)
    net = SpeechToLandmarksNet(**TINY).eval()
    assert net.sequentializer.free_running_cues == ("gaze", "pose")
    for a, b in zip(net(*args, teacher), net(*args, other)):
        torch.testing.assert_close(a, b)
    changed = teacher.clone()
    changed[..., CUE_SLICES["landmarks"]] += 1.0
    assert not torch.allclose(net(*args, teacher).normalized_landmarks, net(*args, changed).normalized_landmarks)
    classic = SpeechToLandmarksNet(free_running_cues=(), **TINY).eval()
    assert not torch.allclose(classic(*args, teacher).rotation, classic(*args, other).rotation)
    with pytest.raises(ValueError, match="free_running_cues"):
        SpeechToLandmarksNet(free_running_cues=("head",), **TINY)


def test_translation_is_predicted_around_the_mean_training_placement() -> None:
    """Untrained: around the reference's translation; once real translations are observed, around
    their running mean (the reference frame's own head motion is not copied into the output)."""
    torch.manual_seed(0)
    batch = synthetic_batch()
    reference = reference_pose(batch)
    net = SpeechToLandmarksNet(**TINY).eval()
    torch.nn.init.zeros_(net.sequentializer.heads.pose.weight)  # zero pose offsets: translation = placement
    args = (batch["audio"], batch["emotion"], batch["level"], reference)
    torch.testing.assert_close(net(*args).translation, reference.translation[:, None].expand(3, 10, 3))
    net.observe_translation(torch.tensor([[100.0, 110.0, 0.0], [102.0, 112.0, 0.0]]))
    net.observe_translation(torch.tensor([[[104.0, 114.0, 3.0]]]))
    expected = torch.tensor([102.0, 112.0, 1.0])
    torch.testing.assert_close(net(*args).translation, expected.expand(3, 10, 3))
    state = net.state_dict()  # the placement is saved with the weights
    torch.testing.assert_close(state["sequentializer.heads.translation_mean"], expected)


def test_free_running_is_causal_up_to_the_audio_lookahead() -> None:
    torch.manual_seed(0)
    batch = synthetic_batch(frames=12)
    net = SpeechToLandmarksNet(audio_context=4, **TINY).eval()  # 4 rows = one frame of look-ahead
    reference = reference_pose(batch)
    out = net(batch["audio"], batch["emotion"], batch["level"], reference)
    audio = batch["audio"].clone()
    audio[:, 4 * 8 :] += 5.0  # change frames 8.. ; frames < 7 cannot see it
    changed = net(audio, batch["emotion"], batch["level"], reference)
    torch.testing.assert_close(out.normalized_landmarks[:, :7], changed.normalized_landmarks[:, :7])
    assert not torch.allclose(out.normalized_landmarks[:, 8:], changed.normalized_landmarks[:, 8:])
    # Stochastic: the motion branch reads audio codes of its own, with the same look-ahead.
    stochastic = SpeechToLandmarksNet(audio_context=4, noise_dim=4, **TINY).eval()
    noise = torch.randn(3, 13, 4)
    out = stochastic(batch["audio"], batch["emotion"], batch["level"], reference, noise=noise)
    changed = stochastic(audio, batch["emotion"], batch["level"], reference, noise=noise)
    for name in ("normalized_landmarks", "rotation", "gaze"):
        torch.testing.assert_close(getattr(out, name)[:, :7], getattr(changed, name)[:, :7])
        assert not torch.allclose(getattr(out, name)[:, 8:], getattr(changed, name)[:, 8:])


def test_parallel_decoding_ignores_fed_back_cues() -> None:
    torch.manual_seed(0)
    batch = synthetic_batch()
    net = SpeechToLandmarksNet(autoregressive=False, **TINY).eval()
    reference = reference_pose(batch)
    free = net(batch["audio"], batch["emotion"], batch["level"], reference)
    forced = net(batch["audio"], batch["emotion"], batch["level"], reference, torch.randn(3, 10, CUE_FEATURES))
    torch.testing.assert_close(free.normalized_landmarks, forced.normalized_landmarks)


def test_emotion_and_level_change_the_output() -> None:
    torch.manual_seed(0)
    batch = synthetic_batch()
    net = SpeechToLandmarksNet(**TINY).eval()
    reference = reference_pose(batch)
    a = net(batch["audio"], torch.zeros(3, dtype=torch.long), batch["level"], reference)
    b = net(batch["audio"], torch.full((3,), 4), batch["level"], reference)
    c = net(batch["audio"], torch.zeros(3, dtype=torch.long), torch.full((3,), 3), reference)
    assert not torch.allclose(a.normalized_landmarks, b.normalized_landmarks)
    assert not torch.allclose(a.rotation, c.rotation)


def test_cue_classifier_shapes() -> None:
    batch = synthetic_batch()
    logits = CueEmotionClassifierNet(hidden=16)(batch["normalized_landmarks"], batch["gaze"], batch["rotation"])
    assert logits.shape == (3, 8)


def _system(**kwargs: Any) -> SpeechToLandmarks:
    return SpeechToLandmarks(SpeechToLandmarksNet(**TINY), CueEmotionClassifierNet(hidden=16), **kwargs)


def test_emotion_loss_reaches_the_generator_but_never_the_critic() -> None:
    torch.manual_seed(0)
    system = _system(emotion_loss_weight=1.0)
    batch = synthetic_batch()
    out = system.generate(batch, teacher_forcing=True)
    system.losses(out, batch)["emotion"].backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in system.classifier.parameters())
    assert sum(p.grad.abs().sum() for p in system.network.parameters() if p.grad is not None) > 0
    system.zero_grad()
    out = system.generate(batch, teacher_forcing=True)
    system.losses(out, batch)["classifier"].backward()  # joint mode: the critic learns from real cues only
    assert sum(p.grad.abs().sum() for p in system.classifier.parameters() if p.grad is not None) > 0
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in system.network.parameters())


def test_separate_emotion_loss_judges_each_cue_group_beside_the_real_other() -> None:
    torch.manual_seed(0)
    batch = synthetic_batch()
    system = _system(emotion_loss_weight=1.0, emotion_loss_cues="separate").eval()  # eval: no dropout
    landmarks = batch["normalized_landmarks"].clone().requires_grad_()
    out = system.generate(batch, teacher_forcing=True)._replace(normalized_landmarks=landmarks)
    ce = torch.nn.functional.cross_entropy
    reference, emotion = batch["ref_normalized_landmarks"], batch["emotion"]
    lips = ce(system.classify(landmarks, batch["gaze"], batch["rotation"], True, reference), emotion)
    motion = ce(system.classify(landmarks, out.gaze, out.rotation, True, reference), emotion)
    loss = system.losses(out, batch)["emotion"]
    torch.testing.assert_close(loss, 0.5 * (lips + motion))
    # The landmarks learn from the real motion's half only; the generated motion from its own half.
    (landmark_grad,) = torch.autograd.grad(loss, landmarks, retain_graph=True)
    torch.testing.assert_close(landmark_grad, torch.autograd.grad(0.5 * lips, landmarks)[0])
    motion_grad = torch.autograd.grad(loss, out.gaze, retain_graph=True)[0]
    torch.testing.assert_close(motion_grad, torch.autograd.grad(0.5 * motion, out.gaze)[0])
    with pytest.raises(ValueError, match="emotion_loss_cues"):
        _system(emotion_loss_cues="both")


def test_ablation_switches() -> None:
    torch.manual_seed(0)
    batch = synthetic_batch()
    system = _system(use_gaze=False, use_pose=False).eval()
    out = system.generate(batch)
    assert (out.gaze == 0).all()
    torch.testing.assert_close(out.rotation, torch.eye(3).expand(3, 10, 3, 3))
    torch.testing.assert_close(out.translation, reference_pose(batch).translation[:, None].expand(3, 10, 3))
    terms = system.losses(system.generate(batch, teacher_forcing=True), batch)
    assert "gaze_ce" not in terms and "pose" not in terms and "landmark" in terms
    no_emotion = _system(emotion_loss_weight=0.0)
    assert "emotion" not in no_emotion.losses(no_emotion.generate(batch, teacher_forcing=True), batch)


def test_training_reduces_the_loss_on_one_batch() -> None:
    torch.manual_seed(0)
    batch = synthetic_batch()
    system = _system(sampling_max=0.0)
    optimizer = torch.optim.Adam(system.parameters(), lr=3e-3)
    first = None
    for _ in range(40):
        terms = system.losses(system.generate(batch, teacher_forcing=True), batch)
        loss = sum(system.weights[k] * v for k, v in terms.items())
        first = float(loss.detach()) if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert float(loss.detach()) < 0.6 * first


def test_evaluate_reports_every_metric_per_sequence() -> None:
    torch.manual_seed(0)
    batch = synthetic_batch()
    system = _system().eval()
    metrics = system.evaluate(system.generate(batch), batch)
    expected = {"lmd", "m_lmd", "f_lmd", "posed_lmd", "posed_m_lmd", "posed_f_lmd", "gaze_error",
                "rotation_error", "translation_error", "emotion_accuracy"}  # fmt: skip
    assert set(metrics) == expected
    assert all(v.shape == (3,) and torch.isfinite(v).all() for v in metrics.values())
    # a perfect generator scores zero landmark distance
    perfect = system.generate(batch)._replace(normalized_landmarks=batch["normalized_landmarks"])
    assert system.evaluate(perfect, batch)["m_lmd"].abs().max() < 1e-6


def test_frozen_classifier_checkpoint(tmp_path) -> None:
    trained = CueEmotionClassifier(CueEmotionClassifierNet(hidden=16))
    path = tmp_path / "critic.ckpt"
    torch.save({"state_dict": trained.state_dict()}, path)
    system = SpeechToLandmarks(SpeechToLandmarksNet(**TINY), CueEmotionClassifierNet(hidden=16),
                               emotion_classifier_checkpoint=str(path))  # fmt: skip
    for name, value in system.classifier.state_dict().items():
        torch.testing.assert_close(value, trained.classifier.state_dict()[name])
    assert not any(p.requires_grad for p in system.classifier.parameters())
    system.train()
    assert not system.classifier.training and system.network.training
    assert "classifier" not in system.losses(system.generate(synthetic_batch(), teacher_forcing=True), synthetic_batch())
    with pytest.raises(FileNotFoundError, match="cue_emotion_classifier.yaml"):
        load_classifier_weights(CueEmotionClassifierNet(hidden=16), tmp_path / "missing.ckpt")
    with pytest.raises(RuntimeError, match="does not fit"):
        load_classifier_weights(CueEmotionClassifierNet(hidden=32), path)


def test_stitch_windows_orders_and_joins() -> None:
    def window(start: int, frames: int, value: float) -> dict[str, Any]:
        arrays = {k: np.full((frames, *shape), value, np.float32) for k, shape in {
            "normalized_landmarks": (68, 3), "gaze": (2, 2), "rotation": (3, 3), "euler": (3,), "translation": (3,),
            "scale": (), "relocated": (70, 3), "gaze_vectors": (2, 3)}.items()}  # fmt: skip
        return {"start": start, "emotion": 4, "level": 2, **arrays}

    out = stitch_windows("M005/happy/level_2/001", [window(4, 4, 2.0), window(0, 4, 1.0)])
    assert out["scale"].tolist() == [1, 1, 1, 1, 2, 2, 2, 2]
    assert out["relocated"].shape == (8, 70, 3) and str(out["emotion"]) == "happy" and int(out["level"]) == 2
    with pytest.raises(RuntimeError, match="uncovered"):
        stitch_windows("c", [window(0, 2, 1.0), window(5, 2, 1.0)])
