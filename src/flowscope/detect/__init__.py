"""Rule detectors over flow records: floods, scans, brute force, slow DoS.

``RuleEngine(DetectConfig()).process(table)`` takes flow tables (finished flows, and
snapshots of running flows marked ``active``) and returns :class:`AlertEvent` objects:
one alert per incident, opened, updated while it lasts and ended after a quiet period,
all in capture time. docs/detection.md describes every rule and its thresholds.
"""

from flowscope.detect.alerts import Alert, AlertEvent
from flowscope.detect.config import DetectConfig
from flowscope.detect.engine import EngineStats, RuleEngine

__all__ = ["Alert", "AlertEvent", "DetectConfig", "EngineStats", "RuleEngine"]
