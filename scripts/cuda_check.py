"""Check the engine's CUDA path against the CPU: ``python -m scripts.cuda_check``.

Same DenseNet121 weights and images on both devices (float64): logits and LRP heatmaps must agree;
one ISNet training step must run and give finite gradients on CUDA. Prints the differences.
"""

from __future__ import annotations

import time

import torch

import isnet
from isnet.loss import isnet_loss


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA device")
        return 1
    torch.manual_seed(0)
    model = isnet.densenet121(num_classes=10).double().eval()
    images = torch.rand(4, 3, 64, 64, dtype=torch.float64)
    logits_cpu, maps_cpu = isnet.explain(model, images, mode="all")
    gpu = model.cuda()
    logits_gpu, maps_gpu = isnet.explain(gpu, images.cuda(), mode="all")
    scale = maps_cpu.abs().max()
    print(f"logits max |cpu - cuda| = {(logits_cpu - logits_gpu.cpu()).abs().max():.3e}")
    print(f"heatmaps max |cpu - cuda| / max|R| = "
          f"{float((maps_cpu - maps_gpu.cpu()).abs().max() / scale):.3e}")
    net = isnet.ISNet(isnet.densenet121(num_classes=10).cuda().train(), explain="selective")
    x = torch.rand(32, 3, 64, 64, device="cuda")
    masks = (torch.rand(32, 1, 64, 64, device="cuda") > 0.5).float()
    labels = torch.randint(0, 10, (32,), device="cuda")
    for step in range(6):
        torch.cuda.synchronize()
        start = time.perf_counter()
        logits, heatmaps = net(x)
        isnet_loss(logits, labels, heatmaps, masks).total.backward()
        torch.cuda.synchronize()
        finite = all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)
        print(f"ISNet step {step} on {torch.cuda.get_device_name()}: "
              f"{1000 * (time.perf_counter() - start):.1f} ms, finite gradients: {finite}")
        net.zero_grad()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
