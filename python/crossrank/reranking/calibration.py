"""Calibration and thresholds for re-ranking scores, implemented in the Rust core:
:class:`Calibrator` (temperature or Platt scaling to probabilities of relevance),
:func:`suggest_threshold` (a ``score_threshold`` for a target such as F1 or a precision)
and :func:`expected_calibration_error`."""

from crossrank._core import Calibrator, expected_calibration_error, suggest_threshold

__all__ = ["Calibrator", "suggest_threshold", "expected_calibration_error"]
