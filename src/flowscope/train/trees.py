"""Gradient-boosted trees (LightGBM), exported to ONNX with onnxmltools.

Trees need no scaling and handle the heavy-tailed byte and time features as they are,
so the bundle has no preprocessing; the text model goes along as a side file for exact
per-feature contributions (TreeSHAP) in explanations.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from flowscope.train.common import Trained
from flowscope.train.data import Dataset
from flowscope.train.split import sample_weights


def train_lightgbm(
    train: Dataset, val: Dataset, seed: int = 0, rounds: int = 300, threads: int = 1
) -> Trained:
    import lightgbm as lgb
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    k = len(train.classes)
    params: dict[str, Any] = {
        "objective": "multiclass",
        "num_class": k,
        # Few shallow trees: inference cost grows with trees × depth, and the sensor must
        # classify ≥ 200 k flows/s on one core. On the lab validation split these reach
        # the log-loss of 0.05-rate, 31-leaf models with about a tenth of the trees.
        "learning_rate": 0.2,
        "num_leaves": 15,
        "max_depth": 6,
        "min_data_in_leaf": 20,
        "feature_fraction": 0.8,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "lambda_l2": 1.0,
        "num_threads": threads,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "verbose": -1,
    }
    dtrain = lgb.Dataset(train.x, train.y, weight=sample_weights(train), free_raw_data=False)
    dval = lgb.Dataset(val.x, val.y, weight=sample_weights(val), reference=dtrain)
    booster = lgb.train(
        params,
        dtrain,
        num_boost_round=rounds,
        valid_sets=[dval],
        callbacks=[lgb.early_stopping(40, verbose=False)],
    )
    best = booster.best_iteration or rounds
    text = booster.model_to_string(num_iteration=best)
    final = lgb.Booster(model_str=text)
    n_features = train.x.shape[1]
    onx = convert_lightgbm(
        final,
        initial_types=[("x", FloatTensorType([None, n_features]))],
        zipmap=False,
        target_opset=15,
    )

    def native(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        return np.asarray(final.predict(x.astype(np.float64)), np.float32).reshape(len(x), k)

    return Trained(
        algorithm="lightgbm",
        onnx=onx.SerializeToString(),
        native_proba=native,
        side_files={"lightgbm": ("lightgbm.txt", text.encode())},
        explain="lightgbm",
        output_name="probabilities",
        info={"iterations": int(best), "params": {k_: v for k_, v in params.items()}},
    )
