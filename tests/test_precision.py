"""Float precision of the training and TTT loops (robustcs.precision): fp32 and tf32 are the plain float32
arithmetic on the CPU, bf16 really runs the networks in bfloat16 and still trains them to about the same
reconstructions, fp16 needs CUDA, and a bad setting names its config field."""

import numpy as np
import pytest
import torch

from robustcs.masks import MaskSpec
from robustcs.precision import PRECISIONS, MixedPrecision
from conftest import variant_error
from robustcs.configcheck import load_schema
from robustcs.study import SCHEMA
from robustcs.study import Study
from robustcs.networks import reconstruct, spec_from_config
from robustcs.training import train
from robustcs.ttt import TTTSpec, adapt_slice

from test_ttt import MASK, SEED, UNET_C, VARNET, _batch, _item, data  # noqa: F401 (the module's data fixture)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_settings_are_one_list():
    schema = load_schema(SCHEMA)  # the variants' (trained_precision) and the ttt block's enum
    assert list(PRECISIONS) == schema["$defs"]["trained_precision"]["enum"] == schema["properties"]["ttt"][
        "properties"]["precision"]["enum"]


def test_bf16_autocast_runs_convolutions_in_bfloat16_and_fp32_does_not():
    conv = torch.nn.Conv2d(1, 2, 3)
    x = torch.randn(1, 1, 8, 8)
    with MixedPrecision("bf16", "cpu").autocast():
        assert conv(x).dtype == torch.bfloat16
    for name in ("fp32", "tf32"):
        with MixedPrecision(name, "cpu").autocast():
            assert conv(x).dtype == torch.float32


def test_fp16_needs_cuda_and_bad_names_are_refused():
    with pytest.raises(ValueError, match="models \\(unet\\): precision: fp16 needs a CUDA device"):
        MixedPrecision("fp16", "cpu", "models (unet): precision")
    with pytest.raises(ValueError, match="ttt: precision: expected one of"):
        MixedPrecision("fp8", "cpu", "ttt: precision")
    # a variant's precision: config/schema.yaml's trained_precision, checked at start-up
    assert "config methods.v.precision: 'half' is not allowed" in variant_error({**UNET_C, "precision": "half"})


def test_the_config_takes_precision_on_network_variants_and_ttt():
    from robustcs.configcheck import strict_load
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    config = strict_load(root / "config" / "config.yaml")
    network = next(m for m, v in config["methods"].items() if v["family"] in ("unet", "varnet"))
    config["methods"][network]["precision"] = "bf16"
    config.setdefault("ttt", {})["precision"] = "tf32"
    study = Study.from_config(config)
    assert study.spec(network).precision == "bf16"
    shift = config["ttt"]["shifts"][0]
    assert study.ttt_settings(shift)["spec"]["precision"] == "tf32"
    config["methods"][network]["precision"] = "double"
    with pytest.raises(ValueError, match="precision"):
        Study.from_config(config)
    config["methods"][network]["precision"] = "fp32"
    config["ttt"]["precision"] = "fp64"
    with pytest.raises(ValueError, match="ttt.precision"):
        Study.from_config(config)


def _trained(data, precision, tmp_path):  # noqa: F811
    table, maps = data
    spec = spec_from_config({**VARNET, "epochs": 2, "precision": precision})
    model, history = train(spec, table, MASK, SEED, tmp_path / precision, "cpu", maps=maps)
    return spec, model, history


def _recon(spec, model, item):
    k, m, sens = _batch(item)
    with torch.no_grad():
        return reconstruct(model, spec, k, m[0], item.target_shape, item.num_low_frequencies, sens[0])[0].numpy()


def test_tf32_is_fp32_on_the_cpu_and_bf16_trains_to_nearly_the_same_network(data, tmp_path):  # noqa: F811
    item = _item(*data)
    spec32, model32, hist32 = _trained(data, "fp32", tmp_path)
    spec_tf, model_tf, hist_tf = _trained(data, "tf32", tmp_path)
    for (k, a), b in zip(model32.state_dict().items(), model_tf.state_dict().values()):
        assert torch.equal(a, b), k  # the same arithmetic, bit for bit
    assert hist32["train_loss"].tolist() == hist_tf["train_loss"].tolist()
    spec16, model16, hist16 = _trained(data, "bf16", tmp_path)
    # bfloat16 steps: other weights (it is not a silent float32 run) ...
    assert any(not torch.equal(a, b) for a, b in zip(model32.state_dict().values(), model16.state_dict().values()))
    # ... but about the same network: losses within 5 % and reconstructions within 2 % of the image's range
    np.testing.assert_allclose(hist16["train_loss"], hist32["train_loss"], rtol=0.05)
    a, b = _recon(spec32, model32, item), _recon(spec16, model16, item)
    assert b.dtype == np.float32
    assert np.abs(a - b).max() <= 0.02 * a.max()


@pytest.mark.parametrize("family", ["unet", "varnet"])
def test_ttt_in_bf16_adapts_like_fp32(family, data):  # noqa: F811
    table, maps = data
    spec = spec_from_config(UNET_C if family == "unet" else VARNET)
    from robustcs.networks import init_model

    model = init_model(spec, 0).eval()
    item = _item(table, maps)
    runs = {}
    for precision in ("fp32", "bf16"):
        ttt = TTTSpec(max_steps=10, window=2, lr={"unet": 3e-3, "varnet": 3e-3}, precision=precision)
        runs[precision] = adapt_slice(model, spec, item, ttt, seed=5)
    a, b = runs["fp32"], runs["bf16"]
    assert b.magnitude.dtype == np.float32
    assert b.train_loss[-1] < b.train_loss[0]
    assert b.train_loss != a.train_loss  # the steps ran in bfloat16
    np.testing.assert_allclose(b.train_loss[:3], a.train_loss[:3], rtol=0.05)
    rel = np.linalg.norm(a.magnitude - b.magnitude) / np.linalg.norm(a.magnitude)
    print(family, "relative difference of the adapted reconstructions", rel)
    assert rel <= 0.05


@pytest.mark.skipif(not torch.cuda.is_available(), reason="fp16 and TensorFloat-32 need CUDA")
def test_fp16_and_tf32_on_cuda(data, tmp_path):  # noqa: F811
    MixedPrecision("tf32", "cuda")
    assert torch.backends.cuda.matmul.fp32_precision == "tf32"
    MixedPrecision("fp32", "cuda")
    assert torch.backends.cudnn.conv.fp32_precision == "ieee"
    table, maps = data
    spec = spec_from_config({**VARNET, "epochs": 2, "precision": "fp16"})
    model, history = train(spec, table, MASK, SEED, tmp_path / "fp16", "cuda", maps=maps)
    assert np.isfinite(history["train_loss"]).all()
