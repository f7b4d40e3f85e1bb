"""The compiled walk (:mod:`isnet.compilation`): no graph break for any family, compiled equals
eager, a failed compile falls back to eager with one warning, and bf16 heatmaps stay finite.

Compiling costs seconds per tiny model on a loaded CPU: the Inductor comparisons are marked slow,
the graph-break checks run Dynamo (and AOTAutograd for the backward) without generating code.
"""

from __future__ import annotations

import copy
import logging

import pytest
import torch

import isnet
from isnet.compilation import EagerFallback, compile_mode
from isnet.loss import isnet_loss
from isnet.lrp.targets import stochastic_draws
from tests.conftest import SEED, randomize_batchnorm

FAMILIES = ["tiny_densenet", "tiny_resnet", "tiny_vgg"]


@pytest.fixture(autouse=True)
def fresh_dynamo():
    """Each test compiles from scratch: Dynamo keeps compiled code per code object (the walk's
    is shared by every ISNet of the process) and stops compiling after 8 variants."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _model(name: str, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """A tiny model of ``name``, 3 classes, random BatchNorm statistics and affine maps."""
    torch.manual_seed(SEED)
    model = isnet.create_model(name, num_classes=3).to(dtype)
    return randomize_batchnorm(model, torch.Generator().manual_seed(SEED))


def _batch(dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(SEED)
    images = torch.rand(4, 3, 32, 32, generator=generator, dtype=dtype)
    masks = torch.zeros(4, 1, 32, 32, dtype=dtype)
    masks[..., 8:24, 8:24] = 1
    return images, masks, torch.tensor([0, 1, 2, 0])


def _step(net: isnet.ISNet, images, masks, labels):
    """Logits, heatmaps, loss and every parameter's gradient of one ISNet training step."""
    net.backbone.zero_grad(set_to_none=True)
    logits, heatmaps = net(images)
    loss = isnet_loss(logits, labels, heatmaps, masks).total
    loss.backward()
    gradients = {name: p.grad.clone() for name, p in net.backbone.named_parameters()}
    return logits.detach(), heatmaps.detach(), loss.detach(), gradients


def _close(compiled: torch.Tensor, eager: torch.Tensor, what: str,
           exact: torch.Tensor | None = None, scale: float | None = None) -> None:
    """rtol 1e-4, with an absolute floor: 1e-4 of ``scale`` (default: the tensor's largest
    value; entries that are zero up to rounding have no relative precision), plus four times
    the rounding error eager float32 itself makes against the float64 result ``exact`` (a
    gradient through the walk's ε divisions carries ~1e-3 relative float32 error in places,
    which a reordered sum may land on either side of)."""
    floor = 1e-4 * (scale if scale is not None else float(eager.abs().max())) + 1e-12
    if exact is not None:
        floor += 4 * float((eager.double() - exact).abs().max())
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=floor,
                               msg=lambda message: f"{what}: {message}")


@pytest.mark.slow
@pytest.mark.parametrize(("name", "explain"), [(name, "selective") for name in FAMILIES]
                         + [("tiny_densenet", "stochastic")])  # the draws: as for any family
def test_the_training_walk_compiles_without_graph_breaks(name, explain):
    """fullgraph=True fails on any graph break; AOTAutograd traces the backward as well (the
    hand-written ε-message backward included)."""
    net = isnet.ISNet(_model(name).train(), explain=explain)
    images, masks, labels = _batch()
    draws = stochastic_draws(4, 3, torch.Generator()) if explain == "stochastic" else None
    walk = torch.compile(net._heat_forward, fullgraph=True, backend="aot_eager")
    logits, heatmaps = walk(images, None, draws)
    isnet_loss(logits, labels, heatmaps, masks).total.backward()
    assert all(p.grad is not None for p in net.backbone.parameters())


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("explain", ["predicted", "target", "all"])
def test_the_explaining_walk_compiles_without_graph_breaks(name, explain):
    net = isnet.ISNet(_model(name).eval(), explain=explain)
    images, _, labels = _batch()
    walk = torch.compile(net._heat_forward, fullgraph=True, backend="eager")
    with torch.no_grad():
        _, heatmaps = walk(images, labels if explain == "target" else None, None)
        _, expected = net(images, labels if explain == "target" else None)
    torch.testing.assert_close(heatmaps, expected)


def _aot_eager(function, **options):
    """Dynamo and AOTAutograd's traced forward and backward graphs, run without generating
    code: what the walk hands any backend, checked in seconds instead of Inductor's minutes."""
    return torch.compile(function, backend="aot_eager", fullgraph=True)


@pytest.mark.slow
@pytest.mark.timeout(900)  # Inductor writes and builds C++ for forward and backward (over
@pytest.mark.parametrize(("name", "backend"), [("tiny_densenet", "inductor"),  # 300 s at load 18
                                               ("tiny_resnet", "aot_eager"),
                                               ("tiny_vgg", "aot_eager")])
def test_compiled_training_step_equals_eager(name, backend):
    """Compiled walk vs eager, float32: heatmaps, loss, every parameter's gradient. Inductor
    for the paper's family; the traced graphs (AOTAutograd, no code generation) for the others,
    so the suite stays within minutes on a 2-core CPU. (VGG's dropout is off: compiled code
    draws its masks from another random stream.)"""
    model = _model(name).train()
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.eval()
    eager = isnet.ISNet(copy.deepcopy(model), explain="selective")
    exact = _step(isnet.ISNet(copy.deepcopy(model).double(), explain="selective"),
                  *(t.double() if t.is_floating_point() else t for t in _batch()))
    compiled = isnet.ISNet(model, explain="selective", compile=True)
    if backend == "aot_eager":
        compiled.compiled_walk = EagerFallback(compiled._heat_forward, "the ISNet walk",
                                               compiler=_aot_eager)
    batch = _batch()
    expected = _step(eager, *batch)
    result = _step(compiled, *batch)
    assert compiled.compiled_walk is not None and compiled.compiled_walk.failed is None
    assert compiled.compiled_walk.first_call_seconds is not None
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1  # it did compile
    for what, got, want, oracle in zip(("logits", "heatmaps", "loss"), result[:3], expected[:3],
                                       exact[:3], strict=True):
        _close(got, want, what, oracle)
    assert result[3].keys() == expected[3].keys()
    largest = max(float(gradient.abs().max()) for gradient in expected[3].values())
    for parameter, gradient in expected[3].items():
        _close(result[3][parameter], gradient, f"gradient of {parameter}", exact[3][parameter],
               scale=largest)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_compiled_heatmaps_equal_eager_in_eval():
    model = _model("tiny_densenet").eval()
    images = _batch()[0]
    with torch.no_grad():
        _, expected = isnet.ISNet(model, explain="predicted")(images)
        _, heatmaps = isnet.ISNet(model, explain="predicted", compile=True)(images)
    _close(heatmaps, expected, "heatmaps")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_fixed_shape_mode_runs_on_the_cpu():
    """compile="reduce-overhead" (CUDA graphs on a GPU) compiles like the default mode on the
    CPU and gives the eager maps, call after call (each call marks a new CUDA-graph step)."""
    model = _model("tiny_vgg").eval()
    images = _batch()[0]
    net = isnet.ISNet(model, explain="predicted", compile="reduce-overhead")
    with torch.no_grad():
        _, expected = isnet.ISNet(model, explain="predicted")(images)
        for _ in range(2):
            _, heatmaps = net(images)
            _close(heatmaps, expected, "heatmaps")
    assert net.compiled_walk.failed is None and net.compiled_walk.mode == "reduce-overhead"


def _raising_compiler(function, **options):
    raise RuntimeError("no C compiler found")


def _failing_at_first_call(function, **options):
    def compiled(*args, **kwargs):
        raise RuntimeError("Inductor cannot lower this operator")
    return compiled


@pytest.mark.parametrize("compiler", [_raising_compiler, _failing_at_first_call])
def test_a_failed_compile_runs_eagerly_with_one_warning(compiler, caplog):
    model = _model("tiny_densenet").train()
    eager = isnet.ISNet(copy.deepcopy(model), explain="selective")
    fallen = isnet.ISNet(model, explain="selective")
    fallen.compiled_walk = EagerFallback(fallen._heat_forward, "the ISNet walk",
                                         compiler=compiler)
    batch = _batch()
    with caplog.at_level(logging.WARNING, logger="isnet.compilation"):
        for _ in range(2):  # the second step neither retries the compile nor warns again
            expected, result = _step(eager, *batch), _step(fallen, *batch)
            for got, want in zip(result[:3], expected[:3], strict=True):
                torch.testing.assert_close(got, want, rtol=0, atol=0)
    warnings = [r for r in caplog.records if r.name == "isnet.compilation"]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert "running it eagerly" in warnings[0].getMessage()
    assert isinstance(fallen.compiled_walk.failed, RuntimeError)


def test_a_copied_isnet_compiles_its_own_walk():
    net = isnet.ISNet(_model("tiny_densenet"), explain="selective", compile=True)
    twin = copy.deepcopy(net)
    assert twin.compiled_walk is not net.compiled_walk
    assert twin.compiled_walk.eager.__self__ is twin and twin.compiled_walk.mode == "default"


def test_compile_switch_values():
    assert compile_mode(False) is None and compile_mode(None) is None
    assert compile_mode(True) == "default"
    assert compile_mode("reduce-overhead") == "reduce-overhead"
    with pytest.raises(ValueError, match="compile must be"):
        compile_mode("fast")


def test_bf16_heatmaps_are_finite_and_follow_float32():
    """CPU bf16 autocast on a small DenseNet: the ε stabiliser keeps every denominator away from
    zero (``|z + ε·sign(z)| ≥ ε``), so the maps stay finite and correlate with float32's."""
    model = _model("tiny_densenet").eval()
    images = _batch()[0]
    net = isnet.ISNet(model, explain="predicted")
    with torch.no_grad():
        _, expected = net(images)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            _, heatmaps = net(images)
    assert torch.isfinite(heatmaps).all()
    pair = torch.stack([heatmaps.float().flatten(), expected.flatten()])
    assert torch.corrcoef(pair)[0, 1] >= 0.99


def test_bf16_training_step_is_finite():
    model = _model("tiny_densenet").train()
    net = isnet.ISNet(model, explain="selective")
    images, masks, labels = _batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, heatmaps = net(images)
        loss = isnet_loss(logits.float(), labels, heatmaps.float(), masks).total
    loss.backward()
    assert torch.isfinite(heatmaps).all() and torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_the_train_command_and_its_config_carry_the_switch():
    from isnet.train import build_parser, config_from_args
    from isnet.training.config import TrainConfig
    from isnet.training.loop import build_network

    parse = build_parser().parse_args
    assert config_from_args(parse(["--out", "x"]))[0].compile is None
    assert config_from_args(parse(["--out", "x", "--compile"]))[0].compile == "default"
    config = config_from_args(parse(["--out", "x", "--compile", "reduce-overhead"]))[0]
    assert config.compile == "reduce-overhead"
    assert TrainConfig.from_dict(config.to_dict()).compile == "reduce-overhead"
    with pytest.raises(ValueError, match="TrainConfig.compile"):
        TrainConfig(compile="fastest")
    network = build_network(_model("tiny_densenet"), TrainConfig(model="tiny_densenet",
                                                                 num_classes=3,
                                                                 compile="default"))
    assert network.compiled_walk is not None and network.compiled_walk.mode == "default"
    assert build_network(_model("tiny_densenet"),
                         TrainConfig(model="tiny_densenet", num_classes=3)).compiled_walk is None


def test_explain_uses_a_compiled_walk_kept_on_the_model():
    """compile_explain (app.py --compile) keeps the compiled walk on the model; explain then
    gives the same maps and conservation readout; False takes it off again."""
    from isnet.compilation import COMPILED_EXPLAIN, compile_explain

    model = _model("tiny_resnet").eval()
    images = _batch()[0]
    with torch.no_grad():
        expected = isnet.explain(model, images, return_conservation=True)
        compile_explain(model, True)
        model.compiled_explain.compiled = torch.compile(model.compiled_explain.eager,
                                                        backend="eager", fullgraph=True)
        result = isnet.explain(model, images, return_conservation=True)
    torch.testing.assert_close(result[1], expected[1])
    assert result[2][0][0].ratio == pytest.approx(expected[2][0][0].ratio, rel=1e-5)
    assert copy.deepcopy(model).compiled_explain is not model.compiled_explain
    assert not hasattr(compile_explain(model, False), COMPILED_EXPLAIN)


def test_bad_input_raises_its_own_error_and_keeps_the_compiled_function(caplog):
    """An input the eager walk rejects too is the caller's error: it is raised, no warning, and
    the compiled function is kept for the next call."""
    net = isnet.ISNet(_model("tiny_densenet").eval(), explain="target")
    net.compiled_walk = EagerFallback(net._heat_forward, "the ISNet walk",
                                      compiler=_failing_at_first_call)
    with caplog.at_level(logging.WARNING, logger="isnet.compilation"), \
            pytest.raises(ValueError, match="explain='target' needs target="):
        net(_batch()[0])
    assert not caplog.records and net.compiled_walk.compiled is not None
