"""Raw MEAD -> feature cache (``emoface preprocess``): landmarks, pose, gaze, crops, audio features.

See docs/data_format.md ("Feature cache") for the files written and :mod:`.pipeline` for the run.
"""

from emoface.preprocessing.pipeline import PreprocessOptions, RunSummary, preprocess

__all__ = ["PreprocessOptions", "RunSummary", "preprocess"]
