"""The command line answers at once and strictly: help and bad input before torch is imported, no
abbreviated options, one line and exit 130 on Ctrl-C, a resumable checkpoint and exit 143 on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emoface.cli import main

REPO = Path(__file__).resolve().parents[1]
BORING = [
    "--model", "lightning.pytorch.demos.boring_classes.BoringModel",
    "--data", "lightning.pytorch.demos.boring_classes.BoringDataModule",
]  # fmt: skip
HEAVY = ("torch", "lightning", "cv2", "av", "jsonargparse")

# Runs `emoface ARGS` in a fresh interpreter and prints which heavy modules it imported.
PROBE = """
import sys
from emoface.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exit_:
    code = exit_.code
print("HEAVY:" + ",".join(m for m in {heavy!r} if m in sys.modules), file=sys.stderr)
sys.exit(code)
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def _probe(*args: str) -> subprocess.CompletedProcess[str]:
    code = PROBE.format(heavy=HEAVY)
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO, env=_env())


def _heavy_imported(result: subprocess.CompletedProcess[str]) -> list[str]:
    line = next(line for line in result.stderr.splitlines() if line.startswith("HEAVY:"))
    return [name for name in line[len("HEAVY:") :].split(",") if name]


@pytest.mark.parametrize(
    "args, code, expected",
    [
        (["--help"], 0, "generate"),
        (["generate", "--help"], 0, "--batch-size"),
        (["mini-mead", "--help"], 0, "--speakers"),
        (["preprocess", "--help"], 0, "--backend"),
        (["plot", "--help"], 0, "--frames"),
        (["fly"], 2, "unknown verb 'fly'"),
        (
            [
                "generate",
                "--audio",
                "nowhere.wav",
                "--image",
                "x.png",
                "--emotion",
                "happy",
                "--s2l",
                "a.ckpt",
                "--l2k",
                "b.ckpt",
                "-o",
                "out.mp4",
            ],
            2,
            "nowhere.wav: audio not found",
        ),  # fmt: skip
        (
            ["generate", "--audio", "a.wav", "--image", "x.png", "--emotion", "happy", "--level", "7", "-o", "o.mp4"],
            2,
            "level 7",
        ),  # fmt: skip
        (
            [
                "generate",
                "--audio",
                "a.wav",
                "--image",
                "x.png",
                "--emotion",
                "happy",
                "--batch-size",
                "0",
                "-o",
                "o.mp4",
            ],
            2,
            "--batch-size must be at least 1, got 0",
        ),  # fmt: skip
        (
            ["generate", "--audio", "a.wav", "--image", "x.png", "--emotion", "joyful", "-o", "o.mp4"],
            2,
            "unknown emotion 'joyful'",
        ),  # fmt: skip
        (
            ["generate", "--audio", "a.wav", "--image", "x.png", "--emotion", "happy", "--devic", "cpu", "-o", "o.mp4"],
            2,
            "unrecognized arguments: --devic",
        ),  # fmt: skip
        (["mini-mead", "out", "--speakers", "40"], 2, "--speakers must be between 1 and 32, got 40"),
        (["preprocess", "--root", "no/such/mead", "--out", "cache"], 2, "no/such/mead: MEAD root not found"),
        (["fit", "--config", "configs/no_such.yaml"], 2, "configs/no_such.yaml: config file not found"),
        (["test", "--config", "configs/s2l.yaml", "--ckpt_path", "runs/none.ckpt"], 2, "runs/none.ckpt: checkpoint"),
    ],
    ids=[
        "help",
        "generate-help",
        "mini-mead-help",
        "preprocess-help",
        "plot-help",
        "unknown-verb",
        "missing-audio",
        "bad-level",
        "batch-size-0",
        "bad-emotion",
        "abbreviated-option",
        "bad-speakers",
        "missing-root",
        "missing-config",
        "missing-ckpt",
    ],  # fmt: skip
)
def test_answered_before_torch_is_imported(args: list[str], code: int, expected: str) -> None:
    result = _probe(*args)
    assert result.returncode == code, result.stderr
    assert expected in result.stdout + result.stderr, result.stdout + result.stderr
    assert _heavy_imported(result) == []
    if code == 2 and "--help" not in args:
        errors = [line for line in result.stderr.splitlines() if "error" in line]
        assert len(errors) == 1, result.stderr  # one line saying what is wrong, no traceback
        assert "Traceback" not in result.stderr


def test_help_takes_a_fraction_of_importing_torch() -> None:
    """Wall times as a ratio (the machine's load cancels out): `emoface generate --help` and a
    rejected argument against `python -c "import torch"`."""

    def best_of_two(command: list[str]) -> float:
        times = []
        for _ in range(2):
            start = time.perf_counter()
            subprocess.run(command, capture_output=True, cwd=REPO, env=_env())
            times.append(time.perf_counter() - start)
        return min(times)

    torch_import = best_of_two([sys.executable, "-c", "import torch"])
    help_ = best_of_two([sys.executable, "-m", "emoface.cli", "generate", "--help"])
    rejected = best_of_two([sys.executable, "-m", "emoface.cli", "generate", "--audio", "nowhere.wav", "--image",
                            "x.png", "--emotion", "happy", "-o", "o.mp4"])  # fmt: skip
    assert help_ < 0.5 * torch_import, (help_, torch_import)
    assert rejected < 0.5 * torch_import, (rejected, torch_import)


def test_preprocess_backend_choices_match_the_backends() -> None:
    from emoface.preprocessing.backends import BACKENDS
    from emoface.preprocessing.cli import BACKEND_NAMES

    assert BACKEND_NAMES == BACKENDS


@pytest.mark.parametrize(
    "misspelt, named",
    [
        (["--trainer.max_epoch", "5"], "--trainer.max_epoch"),
        (["--trainer.max_epoch=5"], "--trainer.max_epoch"),
        (["--seed_every", "3"], "--seed_every"),
        (["--model.init_args.use_gaz", "false"], "use_gaz"),
    ],
)
def test_misspelt_keys_are_not_expanded(misspelt: list[str], named: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(REPO / "configs/s2l.yaml"), *misspelt, "--print_config"])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert named in captured.err
    assert "max_epochs: 5" not in captured.out


def _default_sigint() -> None:
    """In the child, before exec: Ctrl-C as a terminal gives it. An ignored SIGINT is inherited
    across exec, and the pytest process may ignore it: Lightning's KeyboardInterrupt handling,
    exercised in-process by other tests, sets SIGINT to SIG_IGN and leaves it so."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_fit(tmp_path: Path) -> subprocess.Popen[str]:
    """A BoringModel `emoface fit` long enough to be signalled once its first progress line shows."""
    config = _checkpoint_config(tmp_path)
    command = [sys.executable, "-m", "emoface.cli", "fit", *BORING, "--config", str(config),
               "--trainer.max_epochs=100000", "--trainer.limit_val_batches=1"]  # fmt: skip
    env = {**_env(), "EMOFACE_PROGRESS_SECONDS": "0"}
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=REPO,
                               preexec_fn=_default_sigint,
                               env=env)  # fmt: skip
    assert process.stderr is not None
    for line in process.stderr:
        if line.startswith("[fit] epoch 2/"):  # a step or more done, the loop running
            return process
    process.wait()
    raise AssertionError(f"fit ended before training started: exit {process.returncode}")


def _checkpoint_config(tmp_path: Path) -> Path:
    config = tmp_path / "fit.yaml"
    config.write_text(
        f"trainer:\n  default_root_dir: {tmp_path}\n  logger: false\n  callbacks:\n"
        "    - class_path: lightning.pytorch.callbacks.ModelCheckpoint\n"
        f"      init_args:\n        dirpath: {tmp_path / 'checkpoints'}\n"
    )
    return config


def test_ctrl_c_is_one_line_and_exit_130(tmp_path: Path) -> None:
    process = _start_fit(tmp_path)
    process.send_signal(signal.SIGINT)
    _, rest = process.communicate(timeout=120)
    assert process.returncode == 130, rest
    lines = [line for line in rest.splitlines() if not line.startswith("[fit]")]
    assert lines == ["emoface fit: interrupted (Ctrl-C)"], rest


def test_sigterm_saves_a_resumable_checkpoint_and_exits_nonzero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    process = _start_fit(tmp_path)
    process.send_signal(signal.SIGTERM)
    _, rest = process.communicate(timeout=120)
    assert process.returncode == 143, rest
    saved = tmp_path / "checkpoints/last.ckpt"
    assert f"emoface fit: stopped by SIGTERM; resumable checkpoint {saved} (resume: --ckpt_path last)" in rest, rest
    step = torch.load(saved, weights_only=True)["global_step"]
    assert step > 0

    # a requeued job: the same command with --ckpt_path last continues from that step
    monkeypatch.setenv("EMOFACE_PROGRESS_SECONDS", "0")
    main(["fit", *BORING, "--config", str(_checkpoint_config(tmp_path)), f"--trainer.max_steps={step + 2}",
          "--trainer.limit_val_batches=1", "--trainer.enable_progress_bar=false", "--ckpt_path", "last"])  # fmt: skip
    err = capsys.readouterr().err
    assert f"step {step + 1}/{step + 2}" in err, err
    assert f"step {step + 2}/{step + 2}" in err, err


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the CPU-only rejection")
def test_unavailable_device_is_rejected_before_decoding(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every file exists but none is readable media or a checkpoint: the device is what is named,
    so it was checked before anything was decoded or loaded."""
    for name in ("speech.wav", "face.png", "s2l.ckpt", "l2k.ckpt"):
        (tmp_path / name).write_bytes(b"not what it claims")
    argv = ["generate", "--audio", str(tmp_path / "speech.wav"), "--image", str(tmp_path / "face.png"),
            "--s2l", str(tmp_path / "s2l.ckpt"), "--l2k", str(tmp_path / "l2k.ckpt"), "--emotion", "happy",
            "--device", "cuda", "-o", str(tmp_path / "out.mp4")]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.strip() == "emoface generate: error: --device cuda: CUDA is not available here (use cpu or auto)"


def test_model_summary_has_no_zero_flops_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Lightning counts FLOPs only with an example input; the summary leaves out its `Total FLOPs: 0`."""
    import logging

    caplog.set_level(logging.INFO)
    main(["fit", *BORING, "--trainer.max_epochs=1", "--trainer.limit_train_batches=1", "--trainer.limit_val_batches=1",
          f"--trainer.default_root_dir={tmp_path}"])  # fmt: skip
    assert "Total params" in caplog.text and "Trainable params" in caplog.text
    assert "total flops" not in caplog.text.lower()  # Lightning spells it "Total Flops" or "Total FLOPs"


def test_wandb_folder_exists_before_its_run_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """wandb looks for the git root from the logger's save_dir; a missing folder made it warn
    "git root ... does not exist" on a fresh checkout."""
    from lightning.pytorch.loggers import WandbLogger

    from emoface.quiet import make_wandb_folders

    folder = tmp_path / "runs/s2l"
    make_wandb_folders([WandbLogger(save_dir=str(folder), offline=True)])
    assert folder.is_dir()


def test_ctrl_c_in_a_worker_pool_verb_is_one_line_and_exit_130(tmp_path: Path) -> None:
    """A terminal's Ctrl-C reaches the whole process group, workers included: the parent stops the
    run with one line; the workers print nothing, and no clip is left half-written."""
    command = [sys.executable, "-m", "emoface.cli", "mini-mead", str(tmp_path / "raw"), "--speakers", "8", "--clips",
               "1", "--seconds", "1", "--size", "64", "--workers", "2"]  # fmt: skip
    env = {**_env(), "EMOFACE_PROGRESS_SECONDS": "0"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO, env=env,
                               preexec_fn=_default_sigint,
                               start_new_session=True)  # fmt: skip
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        if line.startswith("mini-MEAD:") and "clips (" in line:  # workers busy, clips being written
            break
    os.killpg(process.pid, signal.SIGINT)
    rest, _ = process.communicate(timeout=120)
    assert process.returncode == 130, "".join(seen) + rest
    assert "Traceback" not in rest, rest
    assert rest.strip().splitlines()[-1] == "emoface mini-mead: interrupted (Ctrl-C)", rest
    assert not list((tmp_path / "raw").rglob("*.tmp*")), "a partial file was left"
