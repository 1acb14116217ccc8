"""LivePortrait's stitching and retargeting MLPs (S): small corrections of the driving keypoints.

The public ``stitching_retargeting_module.pth`` is a dict of three state dicts, each key prefixed
``module.`` (``DataParallel``): ``retarget_shoulder`` (the stitching network: source and driving
keypoints, 126 values, -> 63 keypoint deltas + 2 for x, y), ``retarget_mouth`` (lip: 65 -> 63)
and ``retarget_eye`` (eye: 66 -> 63).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from emoface.networks.live_portrait.keypoints import NUM_KP

PUBLIC_MLPS: dict[str, dict[str, Any]] = {
    "stitching": {"input_size": 6 * NUM_KP, "hidden_sizes": [128, 128, 64], "output_size": 3 * NUM_KP + 2},
    "lip": {"input_size": 3 * NUM_KP + 2, "hidden_sizes": [128, 128, 64], "output_size": 3 * NUM_KP},
    "eye": {"input_size": 3 * NUM_KP + 3, "hidden_sizes": [256, 256, 128, 128, 64], "output_size": 3 * NUM_KP},
}
"""``stitching_retargeting_module_params`` of the public ``models.yaml``."""

FILE_ENTRIES = {"stitching": "retarget_shoulder", "lip": "retarget_mouth", "eye": "retarget_eye"}
"""Our name -> the entry of the public file."""


class StitchingRetargetingNetwork(nn.Module):
    """An MLP ``mlp`` of Linear + ReLU layers (a Linear output layer).

    Shapes: ``(B, input_size) -> (B, output_size)``.
    """

    def __init__(self, input_size: int, hidden_sizes: Sequence[int], output_size: int) -> None:
        super().__init__()
        sizes = [input_size, *hidden_sizes]
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU(inplace=True)]
        layers.append(nn.Linear(sizes[-1], output_size))
        self.mlp = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.mlp(x)


class StitchingRetargeting(nn.Module):
    """The three MLPs of the public file, and the stitching of driving keypoints.

    Args:
        num_kp: keypoints K (sizes the public MLPs' inputs and outputs).
        mlps: per network ``input_size``, ``hidden_sizes``, ``output_size`` (``None``: the public ones).
    """

    def __init__(self, num_kp: int = NUM_KP, mlps: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        super().__init__()
        if mlps is None:
            mlps = {
                "stitching": {**PUBLIC_MLPS["stitching"], "input_size": 6 * num_kp, "output_size": 3 * num_kp + 2},
                "lip": {**PUBLIC_MLPS["lip"], "input_size": 3 * num_kp + 2, "output_size": 3 * num_kp},
                "eye": {**PUBLIC_MLPS["eye"], "input_size": 3 * num_kp + 3, "output_size": 3 * num_kp},
            }
        self.config: dict[str, Any] = {"num_kp": num_kp, "mlps": {name: dict(mlp) for name, mlp in mlps.items()}}
        self.num_kp = num_kp
        self.stitching = StitchingRetargetingNetwork(**mlps["stitching"])
        self.lip = StitchingRetargetingNetwork(**mlps["lip"])
        self.eye = StitchingRetargetingNetwork(**mlps["eye"])

    def file_state(self) -> dict[str, dict[str, Tensor]]:
        """The three state dicts in the public file's layout (entries and ``module.`` keys)."""
        return {
            entry: {f"module.{key}": value for key, value in getattr(self, name).state_dict().items()}
            for name, entry in FILE_ENTRIES.items()
        }

    def stitch(self, kp_source: Tensor, kp_driving: Tensor) -> Tensor:
        """Driving keypoints corrected so the stitched region (shoulders) stays aligned.

        Args:
            kp_source: ``(1 or N, K, 3)`` the source's posed keypoints.
            kp_driving: ``(N, K, 3)``.

        Returns:
            ``(N, K, 3)``: ``kp_driving + delta[:3K]``, with ``delta[3K:3K+2]`` added to x and y.
        """
        n, k = kp_driving.shape[:2]
        source = kp_source.expand(n, k, 3)
        delta = self.stitching(torch.cat([source.reshape(n, -1), kp_driving.reshape(n, -1)], dim=1))
        shift = torch.cat([delta[:, 3 * k : 3 * k + 2], delta.new_zeros(n, 1)], dim=1)  # (N, 3), z untouched
        return kp_driving + delta[:, : 3 * k].view(n, k, 3) + shift[:, None, :]
