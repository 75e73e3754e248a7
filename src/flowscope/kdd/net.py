"""The KDD DNN: 4 hidden layers of 256 units over one-hot categoricals and scaled numbers.

Training-only (torch). The whole preprocessing is inside the network, so the exported
ONNX graph takes the raw 41-column KDD matrix (categoricals as vocabulary codes) and
returns class probabilities; the bundle needs no numpy preprocessing beyond NaN
clean-up, and what the graph does is fixed by its weights and buffers:

1. ``protocol_type``, ``service``, ``flag`` codes are clamped to their vocabulary and
   one-hot encoded (3 + 70 + 11 inputs);
2. count- and byte-like columns go through log1p (KDDTrain+ src_bytes spans 0 to 1.3e9,
   so without it a few rows would dominate the scale); rates (already in [0, 1]) stay;
3. every numeric column is standardised with KDDTrain+ mean and standard deviation and
   multiplied by a 0/1 mask. The shipped model masks the columns flowscope reports as 0
   (content features, wrong_fragment), so it cannot lean on inputs that are constant
   at run time; the reference model (all 41 features) keeps them for comparison with
   the literature.

The architecture follows the desktop analyzer's DNN (4 × 256, ReLU) with dropout.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from flowscope.kdd.vocab import KDD_FEATURES, RATE_FEATURES, VOCABULARIES

CAT_COLUMNS: tuple[int, ...] = tuple(KDD_FEATURES.index(n) for n in VOCABULARIES)
CAT_SIZES: tuple[int, ...] = tuple(len(v) for v in VOCABULARIES.values())
NUM_COLUMNS: tuple[int, ...] = tuple(j for j in range(len(KDD_FEATURES)) if j not in CAT_COLUMNS)
LOG_COLUMNS: tuple[bool, ...] = tuple(KDD_FEATURES[j] not in RATE_FEATURES for j in NUM_COLUMNS)


@dataclass
class NetConfig:
    hidden: int = 256
    layers: int = 4
    dropout: float = 0.1
    epochs: int = 10
    batch: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-5
    seed: int = 20240521


def numeric_view(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """The numeric columns after step 2 (log1p where applicable), in float64."""
    num = np.asarray(x, np.float64)[:, list(NUM_COLUMNS)]
    logm = np.asarray(LOG_COLUMNS)
    num[:, logm] = np.log1p(np.maximum(num[:, logm], 0.0))
    return num


class KddNet(nn.Module):
    """Raw KDD matrix → class logits (preprocessing included, see module docstring)."""

    num_idx: torch.Tensor
    log_mask: torch.Tensor
    mean: torch.Tensor
    inv_std: torch.Tensor
    use: torch.Tensor

    def __init__(
        self,
        mean: Sequence[float],
        std: Sequence[float],
        use: Sequence[float],
        n_classes: int,
        hidden: int = 256,
        layers: int = 4,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.register_buffer("num_idx", torch.tensor(NUM_COLUMNS, dtype=torch.long))
        self.register_buffer("log_mask", torch.tensor(LOG_COLUMNS, dtype=torch.bool))
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("inv_std", 1.0 / torch.tensor(std, dtype=torch.float32))
        self.register_buffer("use", torch.tensor(use, dtype=torch.float32))
        for k, size in enumerate(CAT_SIZES):
            self.register_buffer(f"eye{k}", torch.eye(size, dtype=torch.float32))
        width = len(NUM_COLUMNS) + sum(CAT_SIZES)
        blocks: list[nn.Module] = []
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden
        blocks.append(nn.Linear(width, n_classes))
        self.mlp = nn.Sequential(*blocks)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        num = torch.index_select(x, 1, self.num_idx)
        num = torch.where(self.log_mask, torch.log1p(torch.clamp(num, min=0.0)), num)
        parts = [(num - self.mean) * self.inv_std * self.use]
        for k, (col, size) in enumerate(zip(CAT_COLUMNS, CAT_SIZES, strict=True)):
            code = torch.clamp(x[:, col], 0, size - 1).long()
            parts.append(getattr(self, f"eye{k}")[code])
        return torch.cat(parts, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.encode(x))


class _Probabilities(nn.Module):
    def __init__(self, net: KddNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(x), dim=1)


def class_weights(y: npt.NDArray[np.int64], n_classes: int) -> npt.NDArray[np.float32]:
    """1/sqrt(class frequency), normalised to mean 1 over the samples.

    Square root: KDDTrain+ has 67,343 normal rows and 53 guess_passwd rows; fully
    balanced weights make the rare classes noisy, none lets the network ignore them.
    """
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    w = 1.0 / np.sqrt(np.maximum(counts, 1.0))
    w *= len(y) / float((w[y]).sum())
    return w.astype(np.float32)


def train_net(
    x: npt.NDArray[np.float32],
    y: npt.NDArray[np.int64],
    n_classes: int,
    use: Sequence[float],
    cfg: NetConfig,
    log: Callable[[str], None] = lambda s: None,
) -> KddNet:
    """Train on one thread with a fixed seed (same data, same seed: same weights)."""
    torch.set_num_threads(1)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    num = numeric_view(x)
    mean = num.mean(axis=0)
    std = num.std(axis=0)
    std[std == 0] = 1.0
    net = KddNet(mean.tolist(), std.tolist(), use, n_classes, cfg.hidden, cfg.layers, cfg.dropout)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(cfg.epochs, 1))
    loss_fn = nn.CrossEntropyLoss(weight=torch.from_numpy(class_weights(y, n_classes)))
    xt = torch.from_numpy(np.ascontiguousarray(x, np.float32))
    yt = torch.from_numpy(np.asarray(y, np.int64))
    n = len(y)
    for epoch in range(cfg.epochs):
        net.train()
        perm = torch.from_numpy(rng.permutation(n))
        total = 0.0
        for s in range(0, n, cfg.batch):
            idx = perm[s : s + cfg.batch]
            opt.zero_grad()
            loss = loss_fn(net(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        sched.step()
        log(f"epoch {epoch + 1}/{cfg.epochs}: loss {total / n:.4f}")
    net.eval()
    return net


def predict(net: KddNet, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Class probabilities from torch (eval mode), for checking the ONNX export."""
    net.eval()
    with torch.no_grad():
        p = torch.softmax(net(torch.from_numpy(np.ascontiguousarray(x, np.float32))), dim=1)
    return p.numpy()


def export_onnx(net: KddNet, n_features: int = len(KDD_FEATURES)) -> bytes:
    """ONNX graph: input ``kdd`` float32 [n, 41] → output ``proba`` float32 [n, classes].

    Uses torch's export-based exporter (the default since torch 2.9) with a dynamic
    batch dimension; its chatter about optional operator libraries is silenced.
    """
    net.eval()
    model = _Probabilities(net)
    example = torch.zeros((2, n_features), dtype=torch.float32)
    quiet = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo")]
    levels = [lg.level for lg in quiet]
    try:
        for lg in quiet:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model,
                (example,),
                input_names=["kdd"],
                output_names=["proba"],
                dynamic_shapes={"x": {0: torch.export.Dim("n")}},
                opset_version=18,
                dynamo=True,
                verbose=False,
            )
    finally:
        for lg, level in zip(quiet, levels, strict=True):
            lg.setLevel(level)
    if program is None:
        raise RuntimeError("torch.onnx.export returned no program")
    return bytes(program.model_proto.SerializeToString())
