"""The rembg foreground path with a model file the user points at (needs the `rembg` extra and `onnx`).

Tests cannot download a matting model, so the test writes a real, tiny ONNX model with
the u2net interface (1x3x320x320 in, 1x1x320x320 out): "darker than the background is
object", which is right for MVTec AD capsules on their light background.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

pytest.importorskip("rembg")
onnx = pytest.importorskip("onnx")

from daad.core.images import load_image  # noqa: E402
from daad.synthesis import CAI, Pattern  # noqa: E402
from daad.synthesis.cai.foreground import AutoForeground, OtsuForeground, RembgForeground, make_masker  # noqa: E402


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 320, 320])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 1, 320, 320])
    nodes = [helper.make_node("ReduceMean", ["input"], ["m"], axes=[1], keepdims=1), helper.make_node("Neg", ["m"], ["out"])]
    model = helper.make_model(helper.make_graph(nodes, "darkness", [x], [y]), opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = tmp_path_factory.mktemp("rembg_model") / "dark.onnx"
    onnx.save(model, str(path))
    return path


def test_rembg_masker_uses_the_given_model_file(shared_data, model_file):
    capsule = np.asarray(load_image(shared_data / "mvtec_ad/capsule/test/good/001.png").resize((256, 256)))
    masker = RembgForeground(model_file)
    mask = masker(capsule)
    otsu = OtsuForeground()(capsule)
    assert mask.shape == (256, 256) and mask.dtype == bool
    assert (mask & otsu).sum() / (mask | otsu).sum() > 0.7  # the same capsule, found another way
    assert np.array_equal(pickle.loads(pickle.dumps(masker))(capsule), mask)  # rebuilt in worker processes
    auto = AutoForeground(model_file)
    auto(capsule)
    assert auto.last_method == "rembg"
    out = CAI([Pattern(capsule, otsu, id="self")], foreground=make_masker("rembg", model_file), size=256)(capsule, key="c")
    assert len(out) == 10 and all(i.provenance["foreground"] == "rembg" for i in out)


def test_rembg_needs_a_model_file(tmp_path):
    with pytest.raises(ValueError, match="needs a model file"):
        make_masker("rembg")
    with pytest.raises(FileNotFoundError, match="rembg model file not found"):
        RembgForeground(tmp_path / "missing.onnx")
