"""A network in the format it is served in, behind one call: ``(batch, window, feat_dim)`` float32
windows in, ``(batch, num_pdfs)`` logits out.

Formats (by file suffix): ``.pt`` (an asr_kd checkpoint, PyTorch), ``.ts`` (TorchScript, traced),
``.onnx`` (ONNX, run by onnxruntime; ``.int8.onnx``: onnxruntime's dynamic int8 quantisation of
the weights). Every model type exports the same way: the window is the model's whole input.
Cost figures come from a forward pass over one window (``flops_per_frame``): what inference here
actually computes per frame, not an estimate.
"""

import warnings
from pathlib import Path
from typing import Callable, Dict

import numpy as np
import torch

from asr_kd.nnet.checkpoint import load_model, read_checkpoint

FORMATS = ("pt", "ts", "onnx", "int8.onnx")


def window_shape(model) -> tuple:
    return (2 * model.context + 1, model.feat_dim)


def load_network(ckpt) -> torch.nn.Module:
    """The checkpoint's network in eval mode, with ``feat_dim`` attached (export needs the shape)."""
    ck = read_checkpoint(ckpt)
    model = load_model(ckpt)
    model.feat_dim = int(ck["feat_dim"])
    return model


def export_torchscript(model, path) -> Path:
    x = torch.zeros(2, *window_shape(model))
    with torch.no_grad():
        traced = torch.jit.trace(model, x)
    traced.save(str(path))
    return Path(path)


def export_onnx(model, path, opset: int = 17) -> Path:
    x = torch.zeros(2, *window_shape(model))
    with warnings.catch_warnings():  # the TorchScript-based exporter (no onnxscript needed) warns it is legacy
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (x,),
            str(path),
            dynamo=False,
            input_names=["windows"],
            output_names=["logits"],
            dynamic_axes={"windows": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=opset,
        )
    return Path(path)


def quantize_onnx(src, dst) -> Path:
    """onnxruntime's dynamic quantisation: int8 weights, activations quantised on the fly."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()  # it logs a pre-processing hint on the root logger: silenced here only
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
    return Path(dst)


def runtime(path, threads: int = 1) -> Callable[[np.ndarray], np.ndarray]:
    """windows -> logits for a network file, in the runtime its suffix names, on ``threads`` threads."""
    path = str(path)
    if path.endswith(".onnx"):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        return lambda x: session.run(None, {"windows": np.ascontiguousarray(x, np.float32)})[0]
    torch.set_num_threads(threads)
    model = torch.jit.load(path) if path.endswith(".ts") else load_model(path)
    model.eval()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(np.ascontiguousarray(x, np.float32))).numpy()

    return run


def num_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


def flops_per_frame(model, feat_dim: int) -> int:
    """Floating-point operations (a multiply-add is 2) of the linear and convolution layers for one
    output frame, counted on a forward pass over one window."""
    total = [0]

    def count(module, inputs, output):
        if isinstance(module, torch.nn.Linear):
            total[0] += 2 * module.in_features * module.out_features * output.shape[0]
        elif isinstance(module, torch.nn.Conv1d):
            total[0] += (
                2
                * module.in_channels
                * module.out_channels
                * module.kernel_size[0]
                * output.shape[0]
                * output.shape[-1]
            )

    hooks = [
        m.register_forward_hook(count) for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv1d))
    ]
    with torch.no_grad():
        model(torch.zeros(1, 2 * model.context + 1, feat_dim))
    for h in hooks:
        h.remove()
    return total[0]


def export_all(ckpt, out_stem, formats=FORMATS) -> Dict[str, Path]:
    """``out_stem``.{pt,ts,onnx,int8.onnx} as asked; the ``.pt`` keeps only what rebuilds the network."""
    out_stem = Path(out_stem)
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    model = load_network(ckpt)
    written = {}
    if "pt" in formats:
        ck = read_checkpoint(ckpt)
        torch.save({k: ck[k] for k in ("model", "model_cfg", "feat_dim", "num_pdfs")}, f"{out_stem}.pt")
        written["pt"] = Path(f"{out_stem}.pt")
    if "ts" in formats:
        written["ts"] = export_torchscript(model, f"{out_stem}.ts")
    if "onnx" in formats or "int8.onnx" in formats:
        written["onnx"] = export_onnx(model, f"{out_stem}.onnx")
    if "int8.onnx" in formats:
        written["int8.onnx"] = quantize_onnx(written["onnx"], f"{out_stem}.int8.onnx")
    return written
