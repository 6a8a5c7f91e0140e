"""Models as functions: an ONNX model (or a scikit-learn / PyTorch model converted to ONNX)
deployed like code. ``fx.deploy("onnx", model, name="iris", example=X[:1])``.

``model`` is an ``onnx.ModelProto``, the ``.onnx`` bytes, a path to a ``.onnx`` file, a
scikit-learn estimator or pipeline (converted by ``skl2onnx``; ``example`` gives the input's
type and width, or ``flags={"input_type": "float32", "features": 4}``), or a PyTorch
``nn.Module`` with an ``example`` input (exported by ``torch.onnx.export`` with a dynamic
batch dimension), when those libraries are installed.

The ONNX bytes are the artifact (content-addressed in the store like compiled code); the
signature comes from the model's inputs and outputs. The source stored with the version is
a short description of the model (what it was converted from, its sha256, opsets, inputs
and outputs), so re-deploying the same bytes finds the same version.

Flags (JSON, stored with the version): ``input_type`` (``"float32"`` / ``"float64"`` /
``"int64"``: the input element type of a converted scikit-learn model; default the example's
dtype), ``features`` (the input width when no example is given), ``opset`` (the ONNX opset to
convert to), ``zipmap`` (False by default: a classifier's probabilities are one array, not a
list of dicts).
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

from ..errors import BadArguments, CompileError, ToolchainMissing
from ..models import Artifact, Param, Signature
from ..runtimes.onnx import (
    ELEMENT_DTYPES,
    INSTALL_HINT,
    TensorSpec,
    inspect_model,
    result_type,
)
from .base import Language, Toolchain

#: ``input_type`` flag values -> skl2onnx tensor type names.
SKL_TYPES = {"float32": "FloatTensorType", "float64": "DoubleTensorType",
             "int64": "Int64TensorType", "str": "StringTensorType"}
#: ONNX domains whose operators ONNX Runtime has built in (nothing else is loadable).
BUILTIN_DOMAINS = {"", "ai.onnx", "ai.onnx.ml", "com.microsoft", "ai.onnx.preview.training"}


class Onnx(Language):
    """ONNX models (and scikit-learn / PyTorch models converted to ONNX)."""

    name = "onnx"
    runtime = "onnx"
    extension = ".onnx"
    install_hint = INSTALL_HINT

    def _discover(self) -> Toolchain:
        from importlib.metadata import PackageNotFoundError, version

        try:  # onnx and skl2onnx take seconds to import: their versions are enough here
            onnx_version = version("onnx")
            import onnxruntime as ort
        except (ImportError, PackageNotFoundError) as exc:
            return Toolchain(self.name, False, install=INSTALL_HINT,
                             detail=f"{getattr(exc, 'name', None) or exc} is not installed")
        from ..runtimes.onnx import cuda_device_count, runtime

        try:
            extra = f", skl2onnx {version('skl2onnx')}"
        except PackageNotFoundError:
            extra = ", no skl2onnx (scikit-learn models cannot be converted)"
        cuda = cuda_device_count(ort)
        detail = (f"providers available: {', '.join(ort.get_available_providers())}; used: "
                  f"{', '.join(runtime().providers)}"
                  + ("" if cuda else "; CUDA: no (needs onnxruntime-gpu and a CUDA device)"))
        return Toolchain(self.name, True, f"onnxruntime {ort.__version__}, onnx "
                         f"{onnx_version}{extra}", path=os.path.dirname(ort.__file__),
                         detail=detail)

    # a model is not source text: deploy converts it first ---------------------------------
    def convert(self, model: Any, name: str, flags: dict[str, Any], example: Any = None,
                memory_mb: int | None = None) -> Artifact:
        """``model`` (any kind the module docstring lists) as an :class:`Artifact` whose
        code is the checked ONNX bytes. Raises :class:`BadArguments` for a value that is
        no model or a model above ``memory_mb``, :class:`CompileError` for a model ONNX
        Runtime cannot run."""
        started = time.perf_counter()
        check_model_flags(flags)
        code, origin = to_onnx_bytes(model, flags, example)
        if memory_mb is not None:
            check_size(code, memory_mb)
        signature, summary = self.check(code, name)
        digest = hashlib.sha256(code).hexdigest()
        source = (f"# ONNX model {digest}, {len(code)} bytes, from {origin}\n"
                  f"# {summary}\n{signature}\n")
        tc = self.require_toolchain()
        return Artifact(language=self.name, runtime=self.runtime, source=source, code=code,
                        signature=signature, toolchain={self.name: tc.version}, flags=flags,
                        compile_ms=(time.perf_counter() - started) * 1000)

    def check(self, code: bytes, name: str) -> tuple[Signature, str]:
        """The model's signature and a one-line summary; refuses a model that is corrupt,
        keeps external data, uses operators ONNX Runtime lacks, or does not load."""
        try:
            model, _ = inspect_model(code)
        except ValueError as exc:
            raise self.error(f"the model is refused: {exc}", name) from None
        import onnx

        try:
            onnx.checker.check_model(model)
        except Exception as exc:  # noqa: BLE001 - onnx.checker.ValidationError and friends
            raise self.error(f"the model is not valid ONNX: {exc}", name) from None
        domains = {o.domain for o in model.opset_import} | {n.domain for n in model.graph.node}
        custom = sorted(domains - BUILTIN_DOMAINS)
        if custom:
            raise self.error(f"the model uses operators of domain(s) {', '.join(custom)}, "
                             "which need custom-operator libraries; functions-nb never loads "
                             "those", name)
        from ..runtimes.onnx import require_onnxruntime

        ort = require_onnxruntime()
        options = ort.SessionOptions()
        options.log_severity_level = 4
        try:
            session = ort.InferenceSession(code, sess_options=options,
                                           providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime's load errors
            raise self.error(f"ONNX Runtime cannot load the model: {exc}", name) from None
        inputs = [_spec(i) for i in session.get_inputs()]
        outputs = [_spec(o) for o in session.get_outputs()]
        params = tuple(Param(i.name, "json", i.type) for i in inputs)
        signature = Signature(name, params, "json", result_type(outputs))
        opsets = ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in model.opset_import)
        producer = f"{model.producer_name} {model.producer_version}".strip() or "unknown"
        return signature, f"producer {producer}; opsets {opsets}"

    def code_hash(self, source: str, name: str, flags: dict[str, Any],
                  line_offset: int = 0) -> str:
        """What identifies a deployed model: its bytes (their sha256 opens the description
        :meth:`convert` writes), whatever they were converted from."""
        first = source.split("\n", 1)[0]
        digest = first.split()[3] if first.startswith("# ONNX model ") else source
        return hashlib.sha256(f"onnx\0{name}\0{digest}".encode()).hexdigest()

    # the Language interface: source text is a path to an .onnx file ----------------------
    def parse_signature(self, source: str, name: str) -> Signature:
        code, _ = to_onnx_bytes(source, {}, None)
        return self.check(code, name)[0]

    def _build(self, source: str, signature: Signature, workdir: Path,
               flags: dict[str, Any]) -> tuple[bytes, str]:
        return to_onnx_bytes(source.lstrip("\n"), flags, None)[0], ""


#: Deploy flags of a model and what each takes.
FLAGS = {"input_type": f"one of {', '.join(SKL_TYPES)}", "features": "a whole number >= 1",
         "opset": "a whole number >= 1", "zipmap": "true or false"}


def check_model_flags(flags: dict[str, Any]) -> None:
    """Refuse a deploy flag a model does not take, or a value it cannot use."""
    for key, value in flags.items():
        if key not in FLAGS:
            raise BadArguments(f"onnx does not accept the deploy flag {key!r}; it accepts: "
                               + "; ".join(f"{k} ({v})" for k, v in FLAGS.items()))
        ok = {"input_type": value in SKL_TYPES,
              "zipmap": type(value) is bool}.get(key, type(value) is int and value >= 1)
        if not ok:
            raise BadArguments(f"onnx flag {key}={value!r:.40}: expected {FLAGS[key]}")


def check_size(code: bytes, memory_mb: int) -> None:
    """Refuse a model that alone needs more than ``memory_mb`` (its bytes, plus the
    fixed-size values a run holds)."""
    need = len(code)
    if need <= memory_mb << 20:
        try:
            need += inspect_model(code)[1].static_bytes
        except ValueError:
            return  # refused by check() with the reason
    if need > memory_mb << 20:
        raise BadArguments(f"the model needs {-(-need >> 20)} MB or more, above memory_mb="
                           f"{memory_mb}; deploy it with a larger memory_mb")


def _spec(node: Any) -> TensorSpec:
    """An ONNX Runtime input/output description as a :class:`TensorSpec`."""
    text = node.type
    if not text.startswith("tensor("):
        raise CompileError(f"input/output {node.name!r} is a {text}, not a tensor; only tensor "
                           "inputs and outputs are supported (convert classifiers with "
                           "zipmap=False)", language="onnx")
    element = text[len("tensor("):-1]
    dtype = ELEMENT_DTYPES.get(element)
    if dtype is None:
        raise CompileError(f"input/output {node.name!r} has element type {element}, which "
                           "functions-nb does not pass", language="onnx")
    shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in (node.shape or ()))
    return TensorSpec(node.name, dtype, shape)


# -- what a model can be ----------------------------------------------------------------------

def to_onnx_bytes(model: Any, flags: dict[str, Any], example: Any) -> tuple[bytes, str]:
    """The ONNX bytes of ``model`` and a phrase saying where they came from."""
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model), "bytes"
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        try:
            return path.read_bytes(), f"file {path.name}"
        except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
            raise BadArguments(f"cannot read the model file {str(model)[:200]!r}: "
                               f"{getattr(exc, 'strerror', None) or exc}") from None
    kind = type(model)
    module = kind.__module__ or ""
    if module.startswith("onnx") and hasattr(model, "SerializeToString"):
        return model.SerializeToString(), "onnx.ModelProto"
    if module.startswith("sklearn") or _is_estimator(model):
        return _from_sklearn(model, flags, example), f"scikit-learn {_describe(model)}"
    if any(c.__module__.startswith("torch.nn") for c in kind.__mro__):
        return _from_torch(model, flags, example), f"PyTorch {kind.__name__}"
    raise BadArguments(f"cannot deploy a {kind.__name__} as a model: pass an onnx.ModelProto, "
                       "the .onnx bytes, a path to a .onnx file, a scikit-learn estimator or "
                       "pipeline (with example=...) or a torch.nn.Module (with example=...)")


def _is_estimator(model: Any) -> bool:
    return hasattr(model, "get_params") and (hasattr(model, "predict")
                                             or hasattr(model, "transform"))


def _describe(model: Any) -> str:
    steps = getattr(model, "steps", None)
    if steps:
        return f"{type(model).__name__}({', '.join(type(s).__name__ for _, s in steps)})"
    return type(model).__name__


def _from_sklearn(model: Any, flags: dict[str, Any], example: Any) -> bytes:
    try:
        import skl2onnx
        from skl2onnx import common
    except ImportError as exc:
        raise ToolchainMissing(f"skl2onnx is needed to deploy scikit-learn models ({exc}); "
                               f"install it with: {INSTALL_HINT}") from None
    import numpy as np

    input_type = flags.get("input_type")
    features = flags.get("features")
    if example is not None:
        arr = np.asarray(example)
        if arr.ndim == 1:
            arr = arr[None, :]
        input_type = input_type or {"f": str(arr.dtype) if arr.dtype.itemsize in (4, 8) else None,
                                    "i": "int64", "u": "int64"}.get(arr.dtype.kind)
        features = features or (arr.shape[1] if arr.ndim == 2 else None)
    elif features is None:
        features = getattr(model, "n_features_in_", None)
    input_type = input_type or "float64"
    if input_type not in SKL_TYPES:
        raise BadArguments(f"input_type {input_type!r}: one of {', '.join(SKL_TYPES)}")
    if type(features) is not int or features < 1:
        raise BadArguments("a scikit-learn model needs example=X[:1] (or "
                           "flags={'features': N}) to know its input width")
    tensor_type = getattr(common.data_types, SKL_TYPES[input_type])
    options = None
    if hasattr(model, "predict_proba"):
        options = {"zipmap": bool(flags.get("zipmap", False))}
    opset = flags.get("opset")
    try:
        onx = skl2onnx.convert_sklearn(model, name=_describe(model),  # else a random uuid
                                       initial_types=[("X", tensor_type([None, features]))],
                                       options={id(model): options} if options else None,
                                       target_opset=opset)
    except Exception as exc:  # noqa: BLE001 - skl2onnx raises many kinds
        raise CompileError(f"skl2onnx could not convert {_describe(model)} with {input_type} "
                           f"input: {type(exc).__name__}: {exc}", language="onnx") from None
    return onx.SerializeToString()


def _from_torch(model: Any, flags: dict[str, Any], example: Any) -> bytes:
    import io
    import warnings

    import torch

    if example is None:
        raise BadArguments("a PyTorch model needs example=<an input tensor or array> to export")
    x = example if isinstance(example, torch.Tensor) else torch.as_tensor(example)
    buf = io.BytesIO()
    model.eval()
    try:
        with warnings.catch_warnings():
            # the TorchScript exporter (dynamo=False: the torch.export one needs onnxscript)
            # warns that it is deprecated, on every deploy; its model is the same ONNX
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
            warnings.filterwarnings("ignore", category=DeprecationWarning,
                                    message=r".*legacy TorchScript-based ONNX export")
            torch.onnx.export(model, (x,), buf, input_names=["input"], output_names=["output"],
                              dynamic_axes={"input": {0: "N"}, "output": {0: "N"}},
                              opset_version=flags.get("opset") or 17, dynamo=False)
    except Exception as exc:  # noqa: BLE001 - the exporter's many errors
        raise CompileError(f"torch.onnx.export failed: {type(exc).__name__}: {exc}",
                           language="onnx") from None
    return buf.getvalue()
