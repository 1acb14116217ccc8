"""Stochastic pose and gaze in stage 1: seeded sampling, the energy score, the deterministic switch."""

from __future__ import annotations

import pytest
import torch
from test_s2l_networks import TINY, synthetic_batch

from emoface.geometry.rotations import matrix_to_euler
from emoface.lightning_modules.speech_to_landmarks import (
    MOTION_GROUPS,
    SpeechToLandmarks,
    energy_score,
    increment_energy_score,
    motion_vectors,
    reference_pose,
    repeat_batch,
    speed_score,
    spread_energy_score,
    stitch_windows,
    window_seeds,
)
from emoface.networks import SpeechToLandmarksNet
from emoface.networks.cues import CUE_FEATURES
from emoface.networks.sequentializer import CueHeads


def _system(noise_dim: int, **kwargs: object) -> SpeechToLandmarks:
    torch.manual_seed(0)
    return SpeechToLandmarks(SpeechToLandmarksNet(**TINY, noise_dim=noise_dim), figure_every_n_epochs=0, **kwargs).eval()


def test_two_seeds_give_two_sequences_and_a_seed_reproduces_its_own() -> None:
    system, batch = _system(8), synthetic_batch()
    with torch.no_grad():
        first, again, other = (system.generate(batch, seed=s) for s in (0, 0, 1))
        default = system.generate(batch)  # evaluation default: motion_seed (0)
    for name in ("rotation", "gaze", "translation"):
        assert torch.equal(getattr(first, name), getattr(again, name))
        assert torch.equal(getattr(first, name), getattr(default, name))
        assert (getattr(first, name) - getattr(other, name)).abs().max() > 1e-4, name
    # A window's sample depends on its clip and start, not on the rest of the batch.
    single = {k: (v[:1] if isinstance(v, (torch.Tensor, list)) else v) for k, v in batch.items()}
    with torch.no_grad():
        alone = system.generate(single, seed=0)
    torch.testing.assert_close(alone.rotation, first.rotation[:1], atol=1e-5, rtol=0)


def test_deterministic_mode_ignores_the_seed_and_keeps_the_old_losses() -> None:
    system, batch = _system(0), synthetic_batch()
    with torch.no_grad():
        first, other = system.generate(batch, seed=0), system.generate(batch, seed=1)
    assert torch.equal(first.rotation, other.rotation) and torch.equal(first.gaze, other.gaze)
    assert not system.stochastic and system.weights["motion"] == 0.0 and system.weights["gaze_ce"] > 0
    stochastic = _system(8)
    assert stochastic.stochastic and stochastic.weights["motion"] > 0
    assert stochastic.weights["gaze_ce"] == 0.0 and stochastic.weights["gaze_l1"] == 0.0
    # An old (deterministic) checkpoint's weights load into the default network.
    SpeechToLandmarksNet(**TINY).load_state_dict(_system(0).network.state_dict())
    with pytest.raises(ValueError, match="noise_dim"):
        SpeechToLandmarksNet(**TINY, noise_dim=-1)
    with pytest.raises(ValueError, match="motion_samples"):
        SpeechToLandmarks(SpeechToLandmarksNet(**TINY, noise_dim=4), motion_samples=0)


def test_motion_branch_samples_gaze_and_pose_and_leaves_the_lips_to_the_landmark_stream() -> None:
    """Stochastic: noise changes gaze and pose only (free running or teacher-forced, the landmarks
    are the same for every motion sample: the landmark stream is fed back landmarks only), and
    the motion scores train the motion branch and its audio encoder, never the landmark stream
    or the emotion and identity encoders (whose parameters get no gradient from them)."""
    torch.manual_seed(0)
    batch = synthetic_batch()
    reference = reference_pose(batch)
    teacher = torch.randn(3, 10, CUE_FEATURES)
    for net, forced in ((SpeechToLandmarksNet(**TINY, noise_dim=4), None),
                        (SpeechToLandmarksNet(**TINY, noise_dim=4, free_running_cues=()), teacher)):  # fmt: skip
        args = (batch["audio"], batch["emotion"], batch["level"], reference, forced)
        first, second = net(*args, noise=torch.randn(3, 11, 4)), net(*args, noise=torch.randn(3, 11, 4))
        torch.testing.assert_close(first.normalized_landmarks, second.normalized_landmarks)
        assert (first.rotation - second.rotation).abs().max() > 1e-4
        assert (first.gaze - second.gaze).abs().max() > 1e-4

    system = _system(4)
    doubled = repeat_batch(synthetic_batch(batch=2, frames=8), 2)
    system.motion_loss(system.generate(doubled, teacher_forcing=True), doubled, samples=2).backward()
    # The encoders the lips are generated from are the landmark stream's too: with gradients from
    # the motion scores, the sampled model's mouth kept an offset on unseen actors (issue 24).
    landmark_stream = [system.network.audio_encoder, system.network.sequentializer.input,
                       system.network.sequentializer.gru, system.network.sequentializer.heads,
                       system.network.reference_encoder, system.network.emotion_embedding]  # fmt: skip
    motion = [system.network.motion_audio_encoder, system.network.sequentializer.motion]
    assert all(p.grad is None or not p.grad.any() for module in landmark_stream for p in module.parameters())
    for module in motion:
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters()), module
    # The landmark heads of a stochastic network hold no gaze or pose layers (DDP would find
    # them unused), the motion heads no landmark layer.
    sequentializer = system.network.sequentializer
    assert not hasattr(sequentializer.heads, "pose") and not hasattr(sequentializer.motion.heads, "landmarks")
    with pytest.raises(ValueError, match="landmarks or motion"):
        CueHeads(8, landmarks=False, motion=False)
    with pytest.raises(ValueError, match="motion_audio"):
        codes = torch.zeros(3, 10, TINY["audio_dim"])
        sequentializer(codes, torch.zeros(3, 16), reference)


def test_gaze_is_scored_as_conjugate_gaze_and_vergence() -> None:
    """The eyes' amplitude is scored for their common (conjugate) motion and their difference
    apart: samples whose eyes wander apart lose against samples whose eyes move together as the
    real ones do, although each eye alone moves as far (scored per eye, the two tied)."""
    g = torch.Generator().manual_seed(0)
    batch, frames = 1000, 32
    euler = torch.zeros(batch, frames, 3)

    def eyes(walk: torch.Tensor, together: bool) -> torch.Tensor:  # (..., B, T, 2, 2) per-eye (yaw, pitch)
        other = walk if together else -walk
        return torch.stack([torch.stack([walk, 0 * walk], -1), torch.stack([other, 0 * walk], -1)], -2)

    def random_walk(count: int) -> torch.Tensor:
        return torch.randn(count, batch, frames, generator=g).cumsum(-1)

    real = eyes(random_walk(1), True)[0]
    target = motion_vectors(euler, real)[..., list(MOTION_GROUPS["gaze_yaw"])]
    walks = random_walk(2)
    scores, per_eye = {}, {}
    for together in (True, False):
        sampled = eyes(walks, together)
        vectors = torch.stack([motion_vectors(euler, sample) for sample in sampled])
        scores[together] = spread_energy_score(vectors[..., list(MOTION_GROUPS["gaze_yaw"])], target).mean()
        per_eye[together] = spread_energy_score(sampled[..., 0].flatten(-1), real[..., 0].flatten(-1)).mean()
    assert scores[True] < scores[False] - 1.0
    torch.testing.assert_close(per_eye[True], per_eye[False], rtol=1e-6, atol=1e-6)
    # Conjugate gaze and vergence are an orthonormal change of the eyes' coordinates.
    vectors = motion_vectors(euler, real)
    torch.testing.assert_close(vectors[..., 3:].norm(dim=-1), real.flatten(-2).norm(dim=-1))
    torch.testing.assert_close(vectors[..., 3], real[..., 0, 0] * 2**0.5)  # eyes together: no vergence
    assert vectors[..., 5].abs().max() < 1e-5


def test_energy_score_prefers_the_true_spread() -> None:
    g = torch.Generator().manual_seed(0)
    target = torch.randn(4000, 6, 3, generator=g)  # (B, T, D) standard normal "data"
    scores = {}
    for spread in (0.0, 0.5, 1.0, 2.0):
        samples = spread * torch.randn(2, 4000, 6, 3, generator=g)
        scores[spread] = energy_score(samples, target).mean().item()
    assert min(scores, key=scores.get) == 1.0
    one = energy_score(torch.zeros(1, 2, 3, 1), torch.ones(2, 3, 1))
    torch.testing.assert_close(one, torch.ones(2))  # one sample: the plain distance (per sqrt(frame))
    with pytest.raises(ValueError, match="samples must be"):
        energy_score(torch.zeros(2, 2, 3), torch.zeros(2, 3, 1))


def test_increment_energy_score_rewards_motion_timed_with_the_real_one() -> None:
    """Real trajectories: a slow random drift plus nods at random times; samples with another drift
    and the nods at the right frames beat the same nods 3 frames late, and beat jitter, clearly
    per frame, much more clearly than the whole-window energy score tells them apart."""
    g = torch.Generator().manual_seed(0)
    batch, frames = 512, 32
    time = torch.linspace(0, 1, frames)

    def drift(count: int) -> torch.Tensor:  # (count, B, T, 1): a slow random sway, ~3 deg
        phase = 6.3 * torch.rand(count, batch, 1, 1, generator=g)
        amplitude = 3.0 * torch.randn(count, batch, 1, 1, generator=g)
        return amplitude * torch.sin(3.0 * time[None, None, :, None] + phase)

    nods = (torch.rand(batch, frames, 1, generator=g) < 0.15).float()
    nods = torch.nn.functional.conv1d(nods.transpose(1, 2), torch.ones(1, 1, 3), padding=1).transpose(1, 2)
    target = drift(1)[0] + nods  # (B, T, 1) degrees
    timed = drift(2) + nods
    late = drift(2) + nods.roll(3, dims=1)
    jitter = drift(2) + 0.5 * torch.randn(2, batch, frames, 1, generator=g)
    per_frame = {name: increment_energy_score(s, target).mean().item()
                 for name, s in (("timed", timed), ("late", late), ("jitter", jitter))}  # fmt: skip
    assert per_frame["timed"] < 0.6 * per_frame["late"] and per_frame["timed"] < 0.6 * per_frame["jitter"]
    window = {name: energy_score(s, target).mean().item() for name, s in (("timed", timed), ("late", late))}
    # The window-long score sees the timing too, but far less (measured: 1.4x against 10x per frame).
    assert per_frame["late"] / per_frame["timed"] > 3 * window["late"] / window["timed"]
    assert increment_energy_score(timed, target).shape == (batch, frames - 1)
    assert increment_energy_score(timed, target, lag=8).shape == (batch, frames - 8)
    unseen = torch.zeros_like(target)  # weight 0 (e.g. closed eyes): nothing scored
    assert increment_energy_score(late, target, weight=unseen).abs().max() == 0
    with pytest.raises(ValueError, match="1 <= lag < T"):
        increment_energy_score(torch.zeros(2, 3, 1, 1), torch.zeros(3, 1, 1))
    # Long lags score the slow sway's amplitude: damped sway scores worse (measured 1.16x).
    damped = drift(2) * 0.3 + nods
    assert increment_energy_score(damped, target, 16).mean() > 1.1 * increment_energy_score(timed, target, 16).mean()


def test_spread_energy_score_prefers_the_true_amplitude() -> None:
    """Real windows: sways of random amplitude; samples with the real amplitude distribution beat
    damped (x0.6) and exaggerated (x1.6) ones, whatever the sway's phase."""
    g = torch.Generator().manual_seed(0)
    batch, frames = 2000, 32
    time = torch.linspace(0, 1, frames)[:, None]

    def sway(count: int, gain: float = 1.0) -> torch.Tensor:  # (count, B, T, 1)
        amplitude = gain * (1.0 + torch.rand(count, batch, 1, 1, generator=g))
        phase = 6.3 * torch.rand(count, batch, 1, 1, generator=g)
        return amplitude * torch.sin(4.0 * time + phase)

    target = sway(1)[0]
    scores = {gain: spread_energy_score(sway(2, gain), target).mean().item() for gain in (0.6, 1.0, 1.6)}
    assert min(scores, key=scores.get) == 1.0
    # Frames of weight 0 (closed eyes) count neither in the mean nor in the spread.
    outlier = target.clone()
    outlier[:, :4] = 40.0
    seen = torch.ones_like(target)
    seen[:, :4] = 0.0
    samples = sway(2)
    torch.testing.assert_close(spread_energy_score(samples, outlier, seen),
                               spread_energy_score(samples[:, :, 4:], target[:, 4:]), rtol=1e-4, atol=1e-5)  # fmt: skip
    with pytest.raises(ValueError, match="samples must be"):
        spread_energy_score(torch.zeros(2, 3, 1), torch.zeros(3, 1))


def test_speed_score_rewards_turns_of_random_side_timed_with_the_real_ones() -> None:
    """Real trajectories: a slow drift plus turns at random times, each to a random side (the side no
    input tells). Samples turning at the right frames, each to its own random side, have the right
    expected speed at every frame and beat the same turns at other frames, damped turns and
    exaggerated ones; their expected velocity is 0 there, so no score of the mean velocity can
    tell them from a head that keeps still."""
    g = torch.Generator().manual_seed(0)
    batch, frames = 1024, 32
    time = torch.linspace(0, 1, frames)

    def drift(count: int) -> torch.Tensor:  # (count, B, T, 1): a slow random sway, ~1 deg
        phase = 6.3 * torch.rand(count, batch, 1, 1, generator=g)
        return torch.randn(count, batch, 1, 1, generator=g) * torch.sin(2.0 * time[None, None, :, None] + phase)

    def turns(onsets: torch.Tensor, count: int, gain: float = 1.0) -> torch.Tensor:  # (count, B, T, 1)
        shape = torch.sin(torch.linspace(0, torch.pi, 9)) ** 2  # rise and return over 9 frames
        bumps = torch.nn.functional.conv1d(onsets.transpose(1, 2), shape.view(1, 1, -1), padding=4)  # (B, 1, T)
        side = torch.where(torch.rand(count, batch, 1, 1, generator=g) < 0.5, -1.0, 1.0)
        return gain * 4.0 * side * bumps.transpose(1, 2)[None]

    onsets = (torch.rand(batch, frames, 1, generator=g) < 0.06).float()
    elsewhere = onsets[torch.randperm(batch, generator=g)]  # as many turns, at other frames
    target = drift(1)[0] + turns(onsets, 1)[0]
    samples = {
        "timed": drift(2) + turns(onsets, 2),
        "untimed": drift(2) + turns(elsewhere, 2),
        "damped": drift(2) + turns(onsets, 2, 0.5),
        "exaggerated": drift(2) + turns(onsets, 2, 1.6),
    }
    scores = {name: speed_score(x, target).mean().item() for name, x in samples.items()}
    assert min(scores, key=scores.get) == "timed"
    assert scores["timed"] < 0.5 * scores["untimed"]
    assert speed_score(samples["timed"], target).shape == (batch, frames - 1)
    # Two samples: (s1 - s)(s2 - s), an unbiased estimate of the squared error of the expected speed.
    x, y = samples["untimed"][:, :4], target[:4]
    speeds = (x[:, :, 1:] - x[:, :, :-1]).abs()[..., 0]
    real = (y[:, 1:] - y[:, :-1]).abs()[..., 0]
    torch.testing.assert_close(speed_score(x, y), (speeds[0] - real) * (speeds[1] - real))
    unseen = torch.zeros_like(target)  # weight 0 (e.g. closed eyes): nothing scored
    assert speed_score(samples["untimed"], target, weight=unseen).abs().max() == 0
    with pytest.raises(ValueError, match="1 <= lag < T"):
        speed_score(torch.zeros(2, 3, 1, 1), torch.zeros(3, 1, 1))
    with pytest.raises(ValueError, match="beta"):
        energy_score(torch.zeros(2, 3, 4, 1), torch.zeros(3, 4, 1), beta=3.0)


def test_increment_spread_and_speed_terms_join_the_motion_loss() -> None:
    batch = repeat_batch(synthetic_batch(batch=2, frames=8), 2)
    no_speed = {"motion_speed_weight": 0.0}
    plain = _system(8, motion_increment_weight=0.0, motion_spread_weight=0.0, **no_speed)
    velocity = _system(8, motion_increment_weight=5.0, motion_spread_weight=0.0, **no_speed)
    lags = _system(8, motion_increment_weight=5.0, motion_increment_lags=(1, 4), motion_spread_weight=0.0, **no_speed)
    yaw_spread = _system(8, motion_increment_weight=5.0, motion_increment_lags=(1, 4), motion_spread_weight=5.0, **no_speed)
    all_spread = _system(8, motion_increment_weight=5.0, motion_increment_lags=(1, 4), motion_spread_weight=5.0,
                         motion_spread_groups=("head_yaw", "head_pitch", "head_roll", "gaze_yaw", "gaze_pitch"), **no_speed)
    speed = _system(8, motion_increment_weight=5.0, motion_increment_lags=(1, 4), motion_spread_weight=5.0,
                    motion_speed_weight=3.0, motion_speed_groups=("head_yaw", "head_pitch"))
    with torch.no_grad():
        out = plain.generate(batch, seed=0)
        losses = [system.motion_loss(out, batch, samples=2) for system in (plain, velocity, lags, yaw_spread, all_spread, speed)]
    assert losses[0] < losses[1] < losses[2] < losses[3] < losses[4]
    # The speed term (it may be negative: an unbiased estimate) adds exactly its weighted scores.
    euler = matrix_to_euler(out.rotation).reshape(2, 2, 8, 3)
    expected = sum(speed_score(euler[..., [cue]], batch["euler"][:2, :, [cue]], lag).mean() for cue in (0, 1) for lag in (1, 4))
    torch.testing.assert_close(losses[5] - losses[3], 3.0 * expected, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="motion_increment_lags"):
        _system(8, motion_increment_lags=(0,))
    with pytest.raises(ValueError, match="motion_spread_groups.*'yaw'"):
        _system(8, motion_spread_groups=("yaw",))
    with pytest.raises(ValueError, match="motion_speed_groups.*'pitch'"):
        _system(8, motion_speed_groups=("pitch",))


def test_training_step_draws_two_samples_per_window_and_reduces_the_loss() -> None:
    system = _system(8, sampling_start=0, sampling_ramp=1)
    system.train()
    batch = synthetic_batch(batch=4, frames=8)
    doubled = repeat_batch(batch, 2)
    assert doubled["audio"].shape[0] == 8 and doubled["clip"] == batch["clip"] * 2
    optimizer = torch.optim.Adam(system.parameters(), lr=3e-3)
    losses = []
    for step in range(25):
        torch.manual_seed(step)
        out = system.generate(doubled, teacher_forcing=True)
        terms = system.losses(out, doubled, samples=2)
        assert "motion" in terms and "gaze_ce" in terms
        loss = sum(system.weights[k] * v for k, v in terms.items())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(terms["motion"].item())
    assert sum(losses[-5:]) < sum(losses[:5])


def test_window_seeds_depend_on_seed_clip_and_start() -> None:
    batch = synthetic_batch(batch=2)
    a = window_seeds(batch, 0)
    assert a == window_seeds(batch, 0) and a != window_seeds(batch, 1) and a[0] != a[1]
    moved = dict(batch, start=torch.tensor([5, 0]))
    assert window_seeds(moved, 0)[0] != a[0] and window_seeds(moved, 0)[1] == a[1]


def test_predict_records_the_motion_seed() -> None:
    system, batch = _system(8, motion_seed=7), synthetic_batch(batch=1)
    with torch.no_grad():
        system.predict_step(batch, 0)
    arrays = stitch_windows(batch["clip"][0], system._predictions[batch["clip"][0]])
    assert int(arrays["motion_seed"]) == 7


def test_frame_noise_is_slow_and_unit_variance() -> None:
    net = SpeechToLandmarksNet(**TINY, noise_dim=8)
    noise = torch.randn(256, 65, 8, generator=torch.Generator().manual_seed(0))
    frames = net.sequentializer.frame_noise(noise)  # (B, T, 8)
    assert frames.shape == (256, 64, 8)
    lag1 = (frames[:, 1:] * frames[:, :-1]).mean((0, 1)) / frames.pow(2).mean((0, 1))
    assert (lag1 - 0.9).abs().max() < 0.05  # AR(1) coefficient 0.9: temporally coherent
    assert (frames.std((0, 1)) - 1.0).abs().max() < 0.05  # stationary, unit variance
