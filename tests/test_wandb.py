"""Weights & Biases for real, offline: the s2l overlay leaves a run with metrics, resolved config and
figures; every value of every sweep in ``configs/sweeps/`` is accepted by the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from emoface.cli import main

REPO = Path(__file__).resolve().parents[1]
SWEEPS = sorted((REPO / "configs/sweeps").glob("*.yaml"))


def test_s2l_wandb_offline_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # offline only here (conftest disables wandb); wandb's own folders under tmp_path too
    monkeypatch.setenv("WANDB_MODE", "offline")
    for variable, folder in (("WANDB_CONFIG_DIR", "config"), ("WANDB_CACHE_DIR", "cache"), ("WANDB_DATA_DIR", "data")):
        monkeypatch.setenv(variable, str(tmp_path / "wandb-home" / folder))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "run"
    configs = ["configs/s2l.yaml", "configs/s2l_wandb.yaml", "configs/tests/tiny_s2l.yaml"]
    assert main(["fit", *[a for c in configs for a in ("--config", str(REPO / c))],
                 f"--trainer.default_root_dir={root}"]) == 0  # fmt: skip

    runs = sorted((root / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, "one offline run under <default_root_dir>/wandb"
    logs = list(runs[0].glob("run-*.wandb"))
    assert len(logs) == 1, "the run's log, for `wandb sync`"
    history, config, kinds = read_offline_run(logs[0])
    assert "exit" in kinds, "the run was finished"
    for key in ("train/loss", "val/m_lmd", "val/gaze_error", "val/emotion_accuracy", "lr-AdamW"):  # metrics
        assert key in history, key
    trainer = config["trainer"]  # the resolved config of the run, interpolations done
    assert trainer["default_root_dir"] == str(root)
    assert trainer["logger"]["class_path"] == "lightning.pytorch.loggers.WandbLogger"
    assert config["model"]["init_args"]["output_dir"] == f"{root}/predictions"
    assert "${" not in json.dumps(config)
    files = runs[0] / "files"
    saved = yaml.safe_load((files / "lightning_config.yaml").read_text())  # reusable as --config
    assert saved["model"]["init_args"]["network"]["init_args"]["hidden"] == 32
    assert list(files.glob("media/images/val/cues_*.png")), "figures logged as images"
    assert list((root / "figures").glob("val_cues_epoch*.png")), "and saved beside the run"
    assert (root / "checkpoints/last.ckpt").is_file()


def wandb_log_records(path: Path) -> list[bytes]:
    """The protobuf records of an offline run's ``run-*.wandb`` file (a LevelDB-style log)."""
    data = path.read_bytes()
    assert data[:4] == b":W&B", "not a wandb run log"
    records, chunk, pos, block = [], b"", 7, 32768  # 7-byte file header, then 32 KiB blocks
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a record header is padding
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]  # after a 4-byte CRC
        payload = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 1:  # full
            records.append(payload)
        elif kind == 2:  # first
            chunk = payload
        elif kind == 3:  # middle
            chunk += payload
        elif kind == 4:  # last
            records.append(chunk + payload)
    return records


def read_offline_run(path: Path) -> tuple[set[str], dict, set[str]]:
    """(history keys, run config, record kinds) of an offline run log."""
    from wandb.proto import wandb_internal_pb2 as pb

    history: set[str] = set()
    config: dict = {}
    kinds: set[str] = set()
    for raw in wandb_log_records(path):
        record = pb.Record()
        record.ParseFromString(raw)
        kind = record.WhichOneof("record_type")
        kinds.add(kind)
        if kind == "history":
            history |= {item.key or "/".join(item.nested_key) for item in record.history.item}
        elif kind == "config":
            config.update({item.key: json.loads(item.value_json) for item in record.config.update if item.key})
    return history, config, kinds


def sweep_commands(sweep: dict) -> list[list[str]]:
    """The commands ``wandb agent`` would run, together covering every value of every parameter.

    Combination ``k`` takes the ``k``-th value of each parameter (cycling shorter lists), so every
    value is tried at least once; ranges contribute their ends. Arguments are formatted by wandb's
    own function (``--key=value``).
    """
    from wandb.sdk.launch.sweeps.utils import create_sweep_command, create_sweep_command_args

    choices: dict[str, list[object]] = {}
    for name, spec in sweep["parameters"].items():
        if "values" in spec:
            choices[name] = list(spec["values"])
        elif "value" in spec:
            choices[name] = [spec["value"]]
        else:
            choices[name] = [spec["min"], spec["max"]]
    commands = []
    for k in range(max(len(values) for values in choices.values())):
        args = {name: {"value": values[k % len(values)]} for name, values in choices.items()}
        variables = create_sweep_command_args({"args": args})
        variables["program"] = [sweep.get("program", "emoface")]
        command: list[str] = []
        for token in create_sweep_command(sweep.get("command")):
            token = str(token)
            command += variables.get(token[2:-1], []) if token.startswith("${") and token.endswith("}") else [token]
        commands.append(command)
    return commands


@pytest.mark.parametrize("path", SWEEPS, ids=[p.stem for p in SWEEPS])
def test_sweep_values_are_accepted(
    path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = yaml.safe_load(path.read_text())
    monkeypatch.chdir(REPO)  # wandb agent runs from the repository (configs/... paths)
    for command in sweep_commands(sweep):
        assert command[0] == "emoface", command
        with pytest.raises(SystemExit) as exit_info:
            main([*command[1:], "--print_config"])
        assert exit_info.value.code == 0, command
        printed = yaml.safe_load(capsys.readouterr().out)
        for argument in command:
            if argument.startswith("--") and "=" in argument:  # the value reached the config
                key, value = argument[2:].split("=", 1)
                node = printed
                for part in key.split("."):
                    node = node[part]
                assert str(node) == value, (key, node, value)


def _grid(sweep: dict) -> list[dict[str, object]]:
    """Every combination a grid sweep runs."""
    import itertools

    names = list(sweep["parameters"])
    values = [spec["values"] if "values" in spec else [spec["value"]] for spec in sweep["parameters"].values()]
    return [dict(zip(names, combination)) for combination in itertools.product(*values)]


@pytest.mark.parametrize("path", SWEEPS, ids=[p.stem for p in SWEEPS])
def test_sweep_names_its_project_and_gives_each_run_its_own_folder(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Agents side by side never share a folder: every output path of a run is under
    runs/sweeps/<sweep id>/<run id>, from the ids `wandb agent` puts in the run's environment."""
    sweep = yaml.safe_load(path.read_text())
    assert sweep.get("project") == "emoface"
    monkeypatch.chdir(REPO)
    command = sweep_commands(sweep)[0]
    folders = []
    for run_id in ("run1", "run2"):
        monkeypatch.setenv("WANDB_SWEEP_ID", "sweep9")
        monkeypatch.setenv("WANDB_RUN_ID", run_id)
        with pytest.raises(SystemExit):
            main([*command[1:], "--print_config"])
        printed = yaml.safe_load(capsys.readouterr().out)
        root = printed["trainer"]["default_root_dir"]
        assert root == f"runs/sweeps/sweep9/{run_id}"
        paths = [printed["trainer"]["logger"]["init_args"]["save_dir"], printed["model"]["init_args"]["output_dir"]]
        paths += [callback["init_args"]["dirpath"] for callback in printed["trainer"]["callbacks"]
                  if "dirpath" in callback.get("init_args", {})]  # fmt: skip
        assert paths and all(str(p).startswith(root) for p in paths), paths
        folders.append(root)
    assert folders[0] != folders[1]


def test_motion_sweeps_run_each_model_once() -> None:
    """noise_dim 0 ignores the motion weights: the two motion sweeps together train 18 distinct
    models (16 stochastic, 2 deterministic), none twice."""
    motion_weights = ("motion_increment_weight", "motion_spread_weight", "motion_speed_weight")
    trained = []
    for name in ("s2l_motion", "s2l_motion_deterministic"):
        for combination in _grid(yaml.safe_load((REPO / f"configs/sweeps/{name}.yaml").read_text())):
            if combination["model.init_args.network.init_args.noise_dim"] == 0:
                combination = {k: v for k, v in combination.items() if not k.endswith(motion_weights)}
            trained.append(tuple(sorted(combination.items())))
    assert len(trained) == 18 and len(set(trained)) == len(trained)
