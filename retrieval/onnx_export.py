"""The embedding model exported to an ONNX graph (fp32, or int8 by dynamic quantization), once per
machine.

The exported graph is cached in a stable folder, one subfolder per weights and variant (fp32, int8), so
each machine exports once. Two processes may start at the same moment (the bot and `qwenbot index`):
a file lock makes one of them export while the other waits, and the folder appears by an atomic rename,
so nobody ever loads a half-written model.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch  # this module is imported only when a model is loaded, which needs torch anyway

MODEL_FILE = "model.onnx"


def default_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/qwenbot/onnx` (~/.cache/qwenbot/onnx): survives reboots, unlike a temp folder."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "qwenbot" / "onnx"


def exported_model(transformer: Any, model_path: str, quantize: str, cache_dir: Path) -> Path:
    """The model's ONNX file for `quantize` ("none" or "int8"), exported once per weights and versions."""
    import onnxruntime

    weights = sorted(p for p in Path(model_path).glob("*") if p.suffix in {".safetensors", ".bin"})
    identity = [str(Path(model_path).expanduser().resolve()), torch.__version__, onnxruntime.__version__]
    identity += [f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in weights]
    key = hashlib.sha1("|".join(identity).encode()).hexdigest()[:16]
    variant = "fp32" if quantize == "none" else quantize
    folder = cache_dir / key / variant
    if (folder / MODEL_FILE).is_file():
        return folder / MODEL_FILE
    # int8 is made from the fp32 file, obtained first: taking the lock again inside it would deadlock.
    source = None if variant == "fp32" else exported_model(transformer, model_path, "none", cache_dir)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process exporting the same weights: wait for it
        if not (folder / MODEL_FILE).is_file():
            staging = Path(tempfile.mkdtemp(prefix=f".{variant}-", dir=folder.parent))
            try:
                if source is None:
                    _export(transformer, staging / MODEL_FILE)
                else:
                    _quantize(source, staging / MODEL_FILE)
                staging.chmod(0o755)  # mkdtemp makes it private; the cache is shared like any other
                os.rename(staging, folder)  # atomic: the folder appears whole or not at all
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    return folder / MODEL_FILE


def _export(transformer: Any, path: Path) -> None:
    from onnxruntime.transformers.optimizer import optimize_model

    sample = torch.ones((1, 4), dtype=torch.long)
    axes = {0: "batch", 1: "tokens"}
    raw = path.with_name("raw.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _LastHiddenState(transformer.eval()),
            (sample, sample, torch.zeros_like(sample)),
            str(raw),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["hidden"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes, "hidden": axes},
            opset_version=17,
            dynamo=False,
        )
    # Fuses each layer's attention and layer norms into ONNX Runtime's own BERT kernels: most of the
    # speed-up over PyTorch on CPU; the sizes (0) are read from the graph.
    optimize_model(str(raw), model_type="bert", num_heads=0, hidden_size=0).save_model_to_file(str(path))
    raw.unlink()


def _quantize(source: Path, path: Path) -> None:
    """Dynamic int8 quantization of the weights (activations quantized per batch at run time). Per
    channel: one scale per output column keeps the vectors at a cosine of about 0.98-0.99 to fp32's,
    where one scale per matrix drops to 0.90 on some texts."""
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The fused BERT operators have no shape inference: their outputs are float tensors.
    extra = {"DefaultTensorType": TensorProto.FLOAT}
    quantize_dynamic(str(source), str(path), weight_type=QuantType.QInt8, per_channel=True, extra_options=extra)


class _LastHiddenState(torch.nn.Module):
    """The transformer with positional inputs and one output, the shape torch.onnx.export wants."""

    def __init__(self, transformer: Any) -> None:
        super().__init__()
        self.transformer = transformer

    def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
        return self.transformer(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
