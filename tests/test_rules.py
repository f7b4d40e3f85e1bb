"""Each single-layer rule against a naive re-derivation (loops or dense matrices)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from isnet.lrp.rules import (
    avg_pool_transpose,
    conv_transpose,
    max_pool_transpose,
    stabilize,
    zbox_rule,
)


def test_stabilize_takes_sign_of_zero_as_plus_one():
    z = torch.tensor([-2.0, 0.0, 3.0], dtype=torch.float64)
    assert stabilize(z, 0.5).tolist() == [-2.5, 0.5, 3.5]


def _vjp(function, inputs, cotangent):
    inputs = inputs.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(function(inputs), inputs, cotangent)
    return grad


def test_conv_transpose_is_the_vjp_of_conv_for_odd_sizes_and_strides(generator):
    x = torch.rand(2, 3, 11, 9, generator=generator, dtype=torch.float64)
    weight = torch.randn(5, 3, 3, 3, generator=generator, dtype=torch.float64)
    out = F.conv2d(x, weight, stride=2, padding=1)
    ratio = torch.randn(2, 4, *out.shape[1:], generator=generator, dtype=torch.float64)  # M = 4
    ours = conv_transpose(ratio, weight, (11, 9), stride=2, padding=1)
    for m in range(4):
        naive = _vjp(lambda t: F.conv2d(t, weight, stride=2, padding=1), x, ratio[:, m])
        torch.testing.assert_close(ours[:, m], naive)


def test_avg_pool_transpose_is_the_vjp_of_avg_pool_including_dropped_rows(generator):
    x = torch.rand(1, 2, 7, 6, generator=generator, dtype=torch.float64)
    ratio = torch.randn(1, 1, 2, 3, 3, generator=generator, dtype=torch.float64)
    naive = _vjp(lambda t: F.avg_pool2d(t, 2), x, ratio[:, 0])
    torch.testing.assert_close(avg_pool_transpose(ratio, (7, 6), 2)[:, 0], naive)


def test_max_pool_transpose_sums_windows_that_share_a_winner():
    # a single bright pixel wins every overlapping 3×3/2 window that contains it
    x = torch.zeros(1, 1, 6, 6, dtype=torch.float64)
    x[0, 0, 3, 3] = 5.0
    x[0, 0, 4, 5] = 1.0
    pooled, indices = F.max_pool2d(x, 3, 2, 1, return_indices=True)  # (1, 1, 3, 3)
    ratio = torch.arange(1.0, 10.0, dtype=torch.float64).reshape(1, 1, 1, 3, 3)
    ours = max_pool_transpose(ratio, indices, (6, 6))[0, 0, 0]
    naive = torch.zeros(36, dtype=torch.float64)
    for i in range(3):
        for j in range(3):
            naive[indices[0, 0, i, j]] += ratio[0, 0, 0, i, j]
    torch.testing.assert_close(ours.flatten(), naive)
    # windows (1,1), (1,2), (2,1), (2,2) all pick pixel (3, 3): 5 + 6 + 8 + 9
    assert ours[3, 3].item() == 28.0


def _dense_matrix(weight, size, stride, padding):
    """The convolution as a (in_features, out_features) matrix, one basis image at a time."""
    channels = weight.shape[1]
    basis = torch.eye(channels * size[0] * size[1], dtype=weight.dtype)
    columns = F.conv2d(basis.reshape(-1, channels, *size), weight, stride=stride, padding=padding)
    return columns.flatten(1)  # (J, K)


def test_zbox_rule_with_the_full_bias_matches_the_matrix_form(generator):
    size, stride, padding = (5, 5), 2, 1
    x = torch.rand(1, 2, *size, generator=generator, dtype=torch.float64)
    weight = torch.randn(3, 2, 3, 3, generator=generator, dtype=torch.float64)
    bias = torch.randn(3, generator=generator, dtype=torch.float64) * 0.1
    low = torch.tensor([-0.5, 0.0], dtype=torch.float64).reshape(1, 2, 1, 1)
    high = torch.tensor([1.0, 2.0], dtype=torch.float64).reshape(1, 2, 1, 1)
    out_shape = F.conv2d(x, weight, stride=stride, padding=padding).shape[1:]
    relevance = torch.randn(1, 1, *out_shape, generator=generator, dtype=torch.float64)
    ours = zbox_rule(x, weight, bias, relevance, low, high, stride, padding, 0.01,
                     bias_convention="full").flatten()

    matrix = _dense_matrix(weight, size, stride, padding)  # (J, K)
    positive = _dense_matrix(weight.clamp(min=0), size, stride, padding)
    negative = _dense_matrix(weight.clamp(max=0), size, stride, padding)
    xj = x.flatten()
    lj = (torch.ones_like(x) * low).flatten()
    hj = (torch.ones_like(x) * high).flatten()
    bias_k = bias.repeat_interleave(out_shape[1] * out_shape[2])
    contributions = (xj[:, None] * matrix - lj[:, None] * positive
                     - hj[:, None] * negative)  # (J, K)
    z = contributions.sum(0) + bias_k
    z = z + 0.01 * torch.where(z >= 0, 1.0, -1.0)
    naive = (contributions * (relevance.flatten() / z)[None, :]).sum(1)
    torch.testing.assert_close(ours, naive)


def test_fused_epsilon_message_equals_the_plain_expression_and_its_gradients(generator):
    from isnet.lrp.rules import epsilon_message

    def tensors():
        torch.manual_seed(2)
        return [torch.rand(2, 3, 4, 4, dtype=torch.float64),  # activation
                torch.randn(2, 5, 3, 4, 4, dtype=torch.float64),  # transposed, M = 5
                torch.randn(2, 3, 4, 4, dtype=torch.float64),  # BatchNorm input
                torch.rand(3, dtype=torch.float64) + 0.5,  # scale
                torch.randn(3, dtype=torch.float64) * 0.2]  # shift

    fused_inputs = [t.requires_grad_(True) for t in tensors()]
    plain_inputs = [t.requires_grad_(True) for t in tensors()]
    a, t, x, s, b = plain_inputs
    z = x * s.view(1, -1, 1, 1) + b.view(1, -1, 1, 1)
    plain = (a.unsqueeze(1) * t) / stabilize(z, 0.1).unsqueeze(1) * s.view(1, 1, -1, 1, 1)
    fused = epsilon_message(*fused_inputs, 0.1)
    torch.testing.assert_close(fused, plain)
    weights = torch.randn(plain.shape, dtype=torch.float64)
    (plain * weights).sum().backward()
    (fused * weights).sum().backward()
    for mine, reference in zip(fused_inputs, plain_inputs, strict=True):
        torch.testing.assert_close(mine.grad, reference.grad)
    assert torch.autograd.gradcheck(lambda *ins: epsilon_message(*ins, 0.1),
                                    [t.detach().requires_grad_(True) for t in tensors()])


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("affine", [True, False], ids=["batchnorm", "identity"])
def test_fused_epsilon_message_with_one_map_has_the_plain_gradients(layout, affine):
    """One map (M = 1), as the bundled recipe trains, takes its own backward
    (``_single_map_gradients``): its gradients must be autograd's of the plain expression."""
    from isnet.lrp.rules import epsilon_message

    def tensors():
        torch.manual_seed(4)
        layout_of = {"contiguous": torch.contiguous_format,
                     "channels_last": torch.channels_last}[layout]
        activation, inputs = (torch.randn(2, 3, 4, 5, dtype=torch.float64)
                              .contiguous(memory_format=layout_of) for _ in range(2))
        transposed = torch.randn(2, 1, 3, 4, 5, dtype=torch.float64)  # M = 1
        scale = torch.rand(3, dtype=torch.float64) + 0.5 if affine else None
        shift = torch.randn(3, dtype=torch.float64) * 0.2 if affine else None
        return [activation.relu(), transposed, inputs, scale, shift]

    fused_inputs = [t.requires_grad_(True) if t is not None else None for t in tensors()]
    plain_inputs = [t.requires_grad_(True) if t is not None else None for t in tensors()]
    a, t, x, s, b = plain_inputs
    z = x * s.view(1, -1, 1, 1) + b.view(1, -1, 1, 1) if affine else x
    plain = (a.unsqueeze(1) * t) / stabilize(z, 0.1).unsqueeze(1)
    if affine:
        plain = plain * s.view(1, 1, -1, 1, 1)
    fused = epsilon_message(*fused_inputs, 0.1)
    assert fused.shape == (2, 1, 3, 4, 5)
    torch.testing.assert_close(fused, plain)
    weights = torch.randn(plain.shape, dtype=torch.float64)
    (plain * weights).sum().backward()
    (fused * weights).sum().backward()
    for mine, reference in zip(fused_inputs, plain_inputs, strict=True):
        if reference is not None:
            torch.testing.assert_close(mine.grad, reference.grad)
    used = [t.detach().requires_grad_(True) if t is not None else None for t in tensors()]
    assert torch.autograd.gradcheck(lambda *ins: epsilon_message(*ins, 0.1), used)
    for only in range(5 if affine else 3):  # each gradient on its own (the others not asked)
        alone = [t.detach().requires_grad_(i == only) if t is not None else None
                 for i, t in enumerate(tensors())]
        (gradient,) = torch.autograd.grad((epsilon_message(*alone, 0.1) * weights).sum(),
                                          alone[only])
        torch.testing.assert_close(gradient, plain_inputs[only].grad)


def test_relu_epsilon_message_equals_the_epsilon_message_when_the_activation_is_the_relu():
    from isnet.lrp.rules import epsilon_message, relu_epsilon_message

    torch.manual_seed(3)
    inputs = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    scale = torch.rand(3, dtype=torch.float64) + 0.5
    shift = torch.randn(3, dtype=torch.float64) * 0.2
    activation = torch.relu(inputs * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1))
    transposed = torch.randn(2, 5, 3, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(relu_epsilon_message(activation, transposed, scale, 0.1),
                               epsilon_message(activation, transposed, inputs, scale, shift, 0.1))


def test_zbox_rule_with_per_channel_bounds_matches_the_three_term_formula(generator):
    x = torch.rand(2, 3, 9, 9, generator=generator, dtype=torch.float64)
    weight = torch.randn(4, 3, 3, 3, generator=generator, dtype=torch.float64)
    relevance = torch.rand(2, 2, 4, 4, 4, generator=generator, dtype=torch.float64)
    low = torch.tensor([-1.0, -0.5, 0.0], dtype=torch.float64).view(1, 3, 1, 1)
    high = torch.tensor([1.0, 0.5, 2.0], dtype=torch.float64).view(1, 3, 1, 1)
    plus, minus = weight.clamp(min=0), weight.clamp(max=0)
    lows, highs = low.expand_as(x), high.expand_as(x)
    z = (F.conv2d(x, weight, stride=2) - F.conv2d(lows, plus, stride=2)
         - F.conv2d(highs, minus, stride=2))
    ratio = relevance / stabilize(z, 0.1).unsqueeze(1)
    naive = torch.stack([x * _vjp(lambda v: F.conv2d(v, weight, stride=2), x, ratio[:, m])
                         - lows * _vjp(lambda v: F.conv2d(v, plus, stride=2), x, ratio[:, m])
                         - highs * _vjp(lambda v: F.conv2d(v, minus, stride=2), x, ratio[:, m])
                         for m in range(2)], 1)
    ours = zbox_rule(x, weight, None, relevance, low, high, 2, 0, 0.1)
    torch.testing.assert_close(ours, naive)
