"""Model bundles (ONNX + JSON), flow classification, explanations and veto rules."""

from flowscope.models.bundle import Bundle, BundleError, BundleMeta, load_bundle, read_meta
from flowscope.models.classify import (
    Contribution,
    Detector,
    FlowClassifier,
    Verdicts,
    load_detector,
)

__all__ = [
    "Bundle",
    "BundleError",
    "BundleMeta",
    "Contribution",
    "Detector",
    "FlowClassifier",
    "Verdicts",
    "load_bundle",
    "load_detector",
    "read_meta",
]
