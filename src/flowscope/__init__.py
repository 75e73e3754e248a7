"""flowscope: a real-time network traffic classifier.

Packets are read in bulk, decoded and metered into bidirectional flows by compiled
kernels; each finished flow becomes one row of CICFlowMeter-compatible features.
"""

__version__ = "0.1.0"
