"""Build the same ResNet50 v1 as lucy, as an ONNX graph, from lucy's own f32 bundle
(weights/resnet50-f32.safetensors + head-imagenet.safetensors: batch-norm already folded),
so peers run exactly the weights lucy runs; and ONNX Runtime's int8 model from it."""

import hashlib
import json
import struct
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

STAGES = [(2, 3, 64, 256, 1), (3, 4, 128, 512, 2), (4, 6, 256, 1024, 2), (5, 3, 512, 2048, 2)]


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    body = data[8 + n :]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", f"{name}: {info['dtype']}"
        start, end = info["data_offsets"]
        out[name] = np.frombuffer(body[start:end], dtype="<f4").reshape(info["shape"])
    return out


def build(weights_dir: Path) -> onnx.ModelProto:
    w = read_safetensors(weights_dir / "resnet50-f32.safetensors")
    head = read_safetensors(weights_dir / "head-imagenet.safetensors")
    nodes, inits = [], []

    def conv(x, name, stride, pad):
        inits.append(numpy_helper.from_array(w[f"{name}.weight"], f"{name}.weight"))
        inits.append(numpy_helper.from_array(w[f"{name}.bias"], f"{name}.bias"))
        nodes.append(helper.make_node("Conv", [x, f"{name}.weight", f"{name}.bias"], [name],
                                      strides=[stride] * 2, pads=[pad] * 4, dilations=[1, 1], group=1,
                                      kernel_shape=list(w[f"{name}.weight"].shape[2:])))
        return name

    def relu(x):
        nodes.append(helper.make_node("Relu", [x], [x + "_relu"]))
        return x + "_relu"

    x = relu(conv("input", "conv1", 2, 3))
    nodes.append(helper.make_node("MaxPool", [x], ["pool1"], kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4))
    x = "pool1"
    for stage, blocks, _, _, first_stride in STAGES:
        for b in range(blocks):
            bid = f"{stage}{chr(ord('a') + b)}"
            s = first_stride if b == 0 else 1
            shortcut = conv(x, f"res{bid}_branch1", s, 0) if b == 0 else x
            y = relu(conv(x, f"res{bid}_branch2a", s, 0))
            y = relu(conv(y, f"res{bid}_branch2b", 1, 1))
            y = conv(y, f"res{bid}_branch2c", 1, 0)
            nodes.append(helper.make_node("Add", [y, shortcut], [f"add{bid}"]))
            x = relu(f"add{bid}")
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"]))
    nodes.append(helper.make_node("Flatten", ["gap"], ["features"]))
    inits.append(numpy_helper.from_array(head["weight"], "fc.weight"))
    inits.append(numpy_helper.from_array(head["bias"], "fc.bias"))
    nodes.append(helper.make_node("Gemm", ["features", "fc.weight", "fc.bias"], ["logits"]))
    nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1))
    graph = helper.make_graph(
        nodes, "resnet50_v1_folded",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 1000])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9  # what every peer reads (onnxruntime-web 1.30 stops at 13)
    onnx.checker.check_model(model)
    return model


# ONNX Runtime's int8 model: its own static quantization of the graph above (after its
# quant_pre_process, as its docs ask), QDQ format, int8 weights per output channel, activations
# per tensor from MinMax calibration. The backbone is quantized; the ImageNet head (Gemm,
# Softmax) stays f32 as lucy's does (quantized probabilities tie at the top, which costs top-1
# agreement). uint8 activations by default: ~2.3x faster than int8 ones with ONNX Runtime 1.32
# on an AVX-512 VNNI x86-64 (VNNI multiplies u8 by s8).
INT8_OPS = ["Conv", "Relu", "Add", "MaxPool", "GlobalAveragePool"]


def build_int8(weights_dir: Path, calibration: list[Path], out_dir: Path, activations: str = "uint8") -> Path:
    """The int8 model calibrated on these photos, cached in out_dir under a name keyed by the
    weights' sha256 and the settings (a stale one is rebuilt)."""
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from photos import preprocess

    sha256 = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()
    settings = {
        "weights": [sha256(weights_dir / f) for f in ["resnet50-f32.safetensors", "head-imagenet.safetensors"]],
        "calibration": [sha256(p) for p in calibration],
        "pre_process": True, "format": "QDQ", "per_channel": True, "weights_type": "int8", "activations": activations,
        "method": "MinMax", "ops": INT8_OPS, "onnxruntime": ort.__version__,
    }
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    out = out_dir / f"resnet50-int8-{key}.onnx"
    if out.exists():
        return out

    class Photos(CalibrationDataReader):
        def __init__(self):
            self.inputs = (x[None] for x in map(preprocess, calibration) if x is not None)

        def get_next(self):
            x = next(self.inputs, None)
            return None if x is None else {"input": x}

    out_dir.mkdir(parents=True, exist_ok=True)
    partial, prepared = out.with_suffix(".partial"), out.with_suffix(".prepared")
    # Shapes are static but for the batch: ONNX's shape inference suffices (no sympy).
    quant_pre_process(build(weights_dir), prepared, skip_symbolic_shape=True)
    quantize_static(prepared, partial, Photos(), quant_format=QuantFormat.QDQ, per_channel=True,
                    weight_type=QuantType.QInt8,
                    activation_type=QuantType.QUInt8 if activations == "uint8" else QuantType.QInt8,
                    op_types_to_quantize=INT8_OPS)
    prepared.unlink()
    partial.rename(out)
    return out
