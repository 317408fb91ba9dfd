"""Build the same ResNet50 v1 as lucy, as an ONNX graph, from lucy's own f32 bundle
(weights/resnet50-f32.safetensors + head-imagenet.safetensors: batch-norm already folded),
so peers run exactly the weights lucy runs."""

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
