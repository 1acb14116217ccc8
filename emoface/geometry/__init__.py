"""Pure, batched tensor geometry: rotations, similarity alignment, landmark layout, relocation."""

from emoface.geometry.relocation import Relocated, relocate

__all__ = ["Relocated", "relocate"]
