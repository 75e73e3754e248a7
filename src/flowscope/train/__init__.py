"""Training side: labelled data, leak-free splits, LightGBM / ResCNN / MLP, evaluation.

Needs the ``train`` extra (torch CPU, onnx, matplotlib, …); nothing here is imported by
the sensor, which only runs the exported ONNX bundles.
"""
