"""NSL-KDD connection features from flowscope flows, the KDD DNN and its rule filter.

The old desktop analyzer fed an NSL-KDD network with per-packet values that were mostly
zero. This package computes the 41 NSL-KDD connection features from finished flows the
way the dataset defines them (see docs/kdd.md), so a model trained on KDDTrain+ sees
inputs of the same meaning at run time.

Runtime modules (:mod:`.vocab`, :mod:`.services`, :mod:`.connstate`, :mod:`.windows`,
:mod:`.features`, :mod:`.data`, :mod:`.metrics`, :mod:`.detector`) need numpy and
pyarrow only; training (:mod:`.net`, :mod:`.mining`, :mod:`.train`) needs the ``train``
extra (torch, mlxtend, pandas).
"""
