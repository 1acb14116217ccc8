"""Landmark distance, gaze and pose error on constructed cases; emotion accuracy and Emotion-FAN loading."""

from __future__ import annotations

import pytest
import torch
import torchvision

from emoface.emotions import EMOTIONS
from emoface.geometry.landmarks import MOUTH, mean_face
from emoface.geometry.rotations import euler_to_matrix
from emoface.metrics import EmotionAccuracy, EmotionLogitsAccuracy, GazeError, LandmarkDistance, PoseError
from emoface.metrics import functional as MF
from emoface.networks.emotion_fan import EMOTION_FAN_LABELS, EmotionFAN


def test_landmark_distance_groups_and_normalisations() -> None:
    target = (mean_face() * 100 + 128).expand(2, 5, 68, 3).clone()
    preds = target.clone()
    preds[..., list(MOUTH), 1] += 3.0  # mouth moved 3 px down
    metric = LandmarkDistance()
    metric.update(preds, target)
    out = metric.compute()
    assert out["m_lmd"].item() == pytest.approx(3.0)
    assert out["f_lmd"].item() == pytest.approx(0.0)
    assert out["lmd"].item() == pytest.approx(3.0 * 20 / 68)
    # interocular: scale free (outer eye corners are 100 px apart here)
    inter = MF.landmark_distance(preds * 2, target * 2, normalize="interocular")
    assert inter["m_lmd"][0].item() == pytest.approx(0.03, rel=1e-5)
    # procrustes: a global similarity of the prediction costs nothing
    moved = MF.landmark_distance(target * 1.3 + 7.0, target, normalize="procrustes", dims=3)
    assert moved["lmd"].max().item() < 1e-6
    with pytest.raises(ValueError):
        LandmarkDistance(normalize="bogus")


def test_gaze_error_angles_and_confidence() -> None:
    target = torch.zeros(1, 4, 2, 2)
    preds = target.clone()
    preds[..., 0, 0] = 10.0  # right eye 10 degrees of yaw off, left eye exact
    assert MF.gaze_error(preds, target).item() == pytest.approx(5.0, abs=1e-6)
    conf = torch.tensor([1.0, 0.0]).expand(1, 4, 2)
    assert MF.gaze_error(preds, target, conf).item() == pytest.approx(10.0, abs=1e-6)
    metric = GazeError()
    metric.update(preds, target)
    metric.update(target, target)
    assert metric.compute().item() == pytest.approx(2.5, abs=1e-6)


def test_pose_error_rotation_and_translation() -> None:
    target = torch.zeros(2, 3, 3)
    preds = target.clone()
    preds[..., 1] = 30.0  # 30 degrees of pitch
    t_target = torch.zeros(2, 3, 3)
    t_preds = t_target + torch.tensor([3.0, 4.0, 0.0])
    metric = PoseError()
    metric.update(preds, target, t_preds, t_target)
    out = metric.compute()
    assert out["rotation"].item() == pytest.approx(30.0, abs=1e-4)
    assert out["translation"].item() == pytest.approx(5.0)
    as_matrix = MF.pose_error(euler_to_matrix(preds), euler_to_matrix(target))
    assert as_matrix["rotation"][0].item() == pytest.approx(30.0, abs=1e-4)
    with pytest.raises(ValueError):
        metric.update(preds, target)


def test_emotion_accuracy_counts_and_label_mapping() -> None:
    logits = torch.eye(8)[[0, 1, 2, 2]]  # predicts angry, contempt, disgusted, disgusted
    target = torch.tensor([0, 1, 2, 3])
    with_classifier = EmotionAccuracy(net=torch.nn.Identity(), labels=EMOTIONS)
    with_classifier.update(logits, target, precomputed_logits=True)
    logits_only = EmotionLogitsAccuracy()
    logits_only.update(logits, target)
    for metric in (with_classifier, logits_only):
        out = metric.compute()
        assert out["accuracy"].item() == pytest.approx(0.75)
        assert out["per_class"][3].item() == 0.0 and out["per_class"][0].item() == 1.0
        assert torch.isnan(out["per_class"][4])
    # Emotion-FAN's order (0 happy, 1 angry, ...) maps onto EMOTIONS
    fan_logits = torch.zeros(1, 8)
    fan_logits[0, 0] = 1.0  # "happy" in EAT's Emotion-FAN order
    assert MF.reorder_logits(fan_logits, EMOTION_FAN_LABELS).argmax().item() == EMOTIONS.index("happy")


def test_emotion_fan_loads_reference_names_and_classifies_videos(tmp_path) -> None:
    # An Emotion-FAN (ResNet_AT) checkpoint: torchvision ResNet18 names + attention heads, DataParallel prefix.
    resnet = torchvision.models.resnet18(weights=None).state_dict()
    state = {k: v for k, v in resnet.items() if not k.startswith("fc.")}
    state |= {
        "alpha.0.weight": torch.randn(1, 512),
        "alpha.0.bias": torch.zeros(1),
        "beta.0.weight": torch.randn(1, 1024),
        "beta.0.bias": torch.zeros(1),
        "pred_fc1.weight": torch.randn(8, 512),
        "pred_fc1.bias": torch.zeros(8),
        "pred_fc2.weight": torch.randn(8, 1024),
        "pred_fc2.bias": torch.zeros(8),
    }
    path = tmp_path / "fan.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    net = EmotionFAN.from_pretrained(path, labels=EMOTION_FAN_LABELS)
    torch.testing.assert_close(
        net.state_dict()["layer3.0.downsample.0.weight"], state["layer3.0.downsample.0.weight"]
    )

    tiny = EmotionFAN(layers=(1, 1, 1, 1), base_width=8, image_size=32).eval()
    export = tmp_path / "tiny.pth"
    tiny.export(export)
    again = EmotionFAN.from_pretrained(export)
    videos = torch.randint(0, 256, (3, 4, 3, 40, 40), dtype=torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(again(videos), tiny(videos))
        torch.testing.assert_close(tiny(videos, frame_chunk=5), tiny(videos), atol=1e-5, rtol=1e-5)
    metric = EmotionAccuracy(net=again)
    metric.update(videos, torch.tensor([0, 4, 7]))
    assert 0.0 <= metric.compute()["accuracy"].item() <= 1.0
