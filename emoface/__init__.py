"""emoface: emotion-aligned audio-driven talking faces on PyTorch Lightning."""

__version__ = "0.1.0"
