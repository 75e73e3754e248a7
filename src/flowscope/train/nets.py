"""Neural flow classifiers in PyTorch (CPU): an MLP and a residual 1-D CNN (ResCNN).

The older dashboard meant to run a "ResCNN" on its features but shipped it untrained;
here it is trained and evaluated beside the MLP and the trees, and the evaluation
decides which one ships. Inputs are the raw features after the bundle's numpy
preprocessing (NaN → 0, signed log1p, standardisation on the training split), so the
exported graph sees exactly what the network saw in training. The graph ends in a
softmax: its output is class probabilities, like every other bundle's.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from flowscope.models.bundle import Step, preprocess
from flowscope.train.common import Trained
from flowscope.train.data import Dataset
from flowscope.train.split import cap_per_family, sample_weights


def preprocessing_for(x: npt.NDArray[np.float32]) -> list[Step]:
    """Steps fitted on training rows: NaN/inf → finite, signed log1p, standardise."""
    base = [Step(op="nan_to_num"), Step(op="signed_log1p")]
    z = preprocess(base, x).astype(np.float64)
    mean = z.mean(axis=0)
    scale = z.std(axis=0)
    scale[scale < 1e-6] = 1.0
    return [*base, Step(op="standardize", mean=mean.tolist(), scale=scale.tolist())]


def _modules() -> tuple[Any, Any]:
    import torch
    from torch import nn

    class MLP(nn.Module):
        def __init__(self, n_in: int, n_out: int) -> None:
            super().__init__()
            self.net = nn.Sequential(
                nn.Linear(n_in, 256),
                nn.ReLU(),
                nn.Dropout(0.1),
                nn.Linear(256, 128),
                nn.ReLU(),
                nn.Dropout(0.1),
                nn.Linear(128, 64),
                nn.ReLU(),
                nn.Linear(64, n_out),
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

    class Block(nn.Module):
        def __init__(self, c_in: int, c_out: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv1d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
            self.bn1 = nn.BatchNorm1d(c_out)
            self.conv2 = nn.Conv1d(c_out, c_out, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm1d(c_out)
            self.skip = (
                nn.Identity()
                if c_in == c_out and stride == 1
                else nn.Sequential(
                    nn.Conv1d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm1d(c_out)
                )
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.bn1(self.conv1(x)))
            h = self.bn2(self.conv2(h))
            return torch.relu(h + self.skip(x))

    class ResCNN(nn.Module):
        """Features as a 1-channel sequence; three residual stages; global pooling."""

        def __init__(self, n_in: int, n_out: int) -> None:
            super().__init__()
            # Narrow (16/32 channels): wider stages cost 4x the CPU time for no
            # validation gain on flow features.
            self.stem = nn.Sequential(
                nn.Conv1d(1, 16, 5, padding=2, bias=False), nn.BatchNorm1d(16), nn.ReLU()
            )
            self.blocks = nn.Sequential(Block(16, 16, 1), Block(16, 32, 2), Block(32, 32, 2))
            self.head = nn.Linear(32 * 2, n_out)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.blocks(self.stem(x.unsqueeze(1)))
            pooled = torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1)
            return self.head(pooled)

    return MLP, ResCNN


def train_net(
    algorithm: str,
    train: Dataset,
    val: Dataset,
    seed: int = 0,
    epochs: int = 30,
    batch: int = 512,
    patience: int = 4,
    threads: int = 1,
    log: Callable[[str], None] | None = None,
    max_per_family: int = 15_000,
) -> Trained:
    """Fit ``mlp`` or ``rescnn`` with weighted cross-entropy and early stopping on val loss."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    train = train.subset(cap_per_family(train, max_per_family, np.random.default_rng(seed)))
    mlp_cls, rescnn_cls = _modules()
    steps = preprocessing_for(train.x)
    xt = torch.from_numpy(preprocess(steps, train.x))
    yt = torch.from_numpy(train.y)
    xv = torch.from_numpy(preprocess(steps, val.x))
    yv = torch.from_numpy(val.y)
    k = len(train.classes)
    model = (mlp_cls if algorithm == "mlp" else rescnn_cls)(train.x.shape[1], k)
    loss_fn = nn.CrossEntropyLoss(reduction="none")
    wt = torch.from_numpy(sample_weights(train)).float()
    wv = torch.from_numpy(sample_weights(val)).float()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.3, patience=2)
    gen = torch.Generator().manual_seed(seed)
    best_loss, best_state, best_epoch, stale = float("inf"), None, 0, 0
    history: list[float] = []
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(order), batch):
            idx = order[i : i + batch]
            if len(idx) < 2:
                continue
            opt.zero_grad()
            loss = (loss_fn(model(xt[idx]), yt[idx]) * wt[idx]).sum() / wt[idx].sum()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            vl = float(
                sum(
                    (loss_fn(model(xv[i : i + 8192]), yv[i : i + 8192]) * wv[i : i + 8192]).sum()
                    for i in range(0, len(xv), 8192)
                )
                / max(float(wv.sum()), 1e-9)
            )
        history.append(round(vl, 5))
        if log is not None:
            log(f"  {algorithm} epoch {epoch + 1}: validation loss {vl:.4f}")
        sched.step(vl)
        if vl < best_loss - 1e-4:
            best_loss, best_epoch, stale = vl, epoch + 1, 0
            best_state = {n: t.detach().clone() for n, t in model.state_dict().items()}
        else:
            stale += 1
            if stale >= patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()

    class WithSoftmax(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.softmax(self.inner(x), dim=1)

    wrapped = WithSoftmax(model).eval()
    onnx_bytes = _export(wrapped, train.x.shape[1])

    def native(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        with torch.no_grad():
            out = [
                wrapped(torch.from_numpy(preprocess(steps, x[i : i + 8192]))).numpy()
                for i in range(0, len(x), 8192)
            ]
        return np.concatenate(out) if out else np.zeros((0, k), np.float32)

    n_params = sum(p.numel() for p in model.parameters())
    return Trained(
        algorithm=algorithm,
        onnx=onnx_bytes,
        native_proba=native,
        preprocessing=steps,
        explain="occlusion",
        output_name="probabilities",
        info={
            "epochs": best_epoch,
            "val_loss_history": history,
            "parameters": int(n_params),
            "optimizer": "AdamW lr 2e-3 wd 1e-4, ReduceLROnPlateau",
            "batch": batch,
            "max_train_rows_per_family": max_per_family,
        },
    )


def _export(model: Any, n_features: int) -> bytes:
    """ONNX with a dynamic batch dimension, via the dynamo exporter (legacy as fallback)."""
    import torch

    x = torch.zeros(4, n_features)
    try:
        prog = torch.onnx.export(
            model,
            (x,),
            input_names=["x"],
            output_names=["probabilities"],
            dynamic_shapes=({0: torch.export.Dim("n")},),
            dynamo=True,
            opset_version=18,
            verbose=False,
        )
        assert prog is not None
        return bytes(prog.model_proto.SerializeToString())
    except Exception:  # exporter internals vary by torch version
        buf = io.BytesIO()
        torch.onnx.export(
            model,
            (x,),
            buf,  # type: ignore[arg-type]
            input_names=["x"],
            output_names=["probabilities"],
            dynamic_axes={"x": {0: "n"}, "probabilities": {0: "n"}},
            dynamo=False,
            opset_version=17,
        )
        return buf.getvalue()
