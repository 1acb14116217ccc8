"""Where outputs go and which values run: ``--trainer.default_root_dir`` moves every output, and
explicit arguments win over a checkpoint's hyperparameters in fit / validate / test / predict."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from emoface.cli import main

REPO = Path(__file__).resolve().parents[1]
S2L = ["--config", str(REPO / "configs/s2l.yaml"), "--config", str(REPO / "configs/tests/tiny_s2l.yaml")]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny stage-1 run (1 epoch) made with ``--trainer.default_root_dir``; returns that folder.

    Trained from another working directory, with ``mouth_weight`` 2.5 (the config says 3.0).
    """
    work = tmp_path_factory.mktemp("work")
    root = tmp_path_factory.mktemp("moved") / "s2l"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(work)
        assert main(["fit", *S2L, "--trainer.max_epochs=1", f"--trainer.default_root_dir={root}",
                     "--model.init_args.mouth_weight=2.5"]) == 0  # fmt: skip
        assert not (work / "runs").exists(), "an output ignored --trainer.default_root_dir"
    return root


def test_default_root_dir_moves_logs_checkpoints_and_figures(trained: Path) -> None:
    assert (trained / "checkpoints/last.ckpt").is_file()
    assert list(trained.glob("checkpoints/epoch000-*.ckpt"))
    assert (trained / "logs/version_0/metrics.csv").is_file()
    assert (trained / "logs/version_0/config.yaml").is_file()
    assert list(trained.glob("logs/version_0/figures/*.png"))


def saved_hparams(root: Path) -> dict:
    """The hyperparameters the run's model really had (the CSV logger's ``hparams.yaml``)."""
    files = sorted(root.glob("logs/version_*/hparams.yaml"))
    assert files, f"no hparams.yaml under {root}"
    return yaml.safe_load(files[-1].read_text())


@pytest.mark.parametrize("verb", ["validate", "test", "predict", "fit"])
def test_explicit_arguments_win_over_checkpoint(
    verb: str, trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    ckpt = trained / "checkpoints/last.ckpt"
    assert torch.load(ckpt, weights_only=True)["hyper_parameters"]["mouth_weight"] == 2.5
    root = tmp_path / "elsewhere"
    extra = ["--trainer.max_epochs=2"] if verb == "fit" else []  # resume for one more epoch
    assert main([verb, *S2L, "--ckpt_path", str(ckpt), f"--trainer.default_root_dir={root}",
                 "--model.init_args.landmark_weight=4.5", *extra]) == 0  # fmt: skip
    hparams = saved_hparams(root)
    assert hparams["landmark_weight"] == 4.5  # the command line
    assert hparams["mouth_weight"] == 3.0  # the config file
    assert hparams["output_dir"] == f"{root}/predictions"  # interpolated from the new root
    assert not (tmp_path / "runs").exists() and not (trained / "predictions").exists()
    if verb == "predict":
        assert len(list((root / "predictions").rglob("*.npz"))) == 3
    if verb == "fit":
        resumed = torch.load(root / "checkpoints/last.ckpt", weights_only=True)
        assert resumed["epoch"] == 1 and resumed["hyper_parameters"]["landmark_weight"] == 4.5


def test_predict_output_dir_from_the_command_line(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reported case: ``--model.init_args.output_dir`` with ``--ckpt_path``."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "cues"
    assert main(["predict", "--config", str(REPO / "configs/s2l.yaml"), "--config", str(REPO / "configs/tests/tiny_s2l.yaml"),
                 "--ckpt_path", str(trained / "checkpoints/last.ckpt"), f"--model.init_args.output_dir={out}",
                 f"--trainer.default_root_dir={tmp_path / 'root'}"]) == 0  # fmt: skip
    assert len(list(out.rglob("*.npz"))) == 3
    assert not (tmp_path / "root/predictions").exists() and not (trained / "predictions").exists()


def test_checkpoint_values_are_the_defaults_of_print_config(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without a model config, ``--print_config`` shows the checkpoint's values (the ones that run)."""
    monkeypatch.chdir(tmp_path)
    ckpt = str(trained / "checkpoints/last.ckpt")
    with pytest.raises(SystemExit) as exit_info:
        main(["test", "--data", "emoface.datamodules.MEADDataModule", "--ckpt_path", ckpt,
              "--model.init_args.landmark_weight=4.5", "--print_config"])  # fmt: skip
    assert exit_info.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    model = printed["model"]
    assert model["class_path"] == "emoface.lightning_modules.SpeechToLandmarks"
    assert model["init_args"]["mouth_weight"] == 2.5  # from the checkpoint
    assert model["init_args"]["landmark_weight"] == 4.5  # from the command line
    assert model["init_args"]["network"]["init_args"]["hidden"] == 32  # the tiny network it was trained with


def test_ckpt_path_in_a_config_file(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    extra = tmp_path / "ckpt.yaml"
    extra.write_text(f"ckpt_path: {trained / 'checkpoints/last.ckpt'}\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["test", "--data", "emoface.datamodules.MEADDataModule", "--config", str(extra), "--print_config"])
    assert exit_info.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["init_args"]["mouth_weight"] == 2.5
