
from emoface.geometry.relocation import Relocated, relocate
