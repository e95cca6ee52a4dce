"""PyTorch's time for one training step of the MNIST CNN of examples/cnn.rs (Adam, random
data), the baseline for `wgtrain bench`'s cnn-step on the same GPU. Median of 50 steps after
10 warm-up steps, each step synchronised. TF32 is off, so both sides multiply in full f32.
Usage: python3 torch_cnn_step.py [batch ...]"""
import sys, time
import torch, torch.nn as nn, torch.nn.functional as F

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
dev = "cuda" if torch.cuda.is_available() else "cpu"
for batch in [int(b) for b in sys.argv[1:]] or [64, 256]:
    net = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Dropout(0.25), nn.Flatten(), nn.Linear(9216, 128), nn.ReLU(), nn.Dropout(0.5),
                        nn.Linear(128, 10)).to(dev)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    x = torch.rand(batch, 1, 28, 28, device=dev)
    y = torch.randint(0, 10, (batch,), device=dev)
    times = []
    for i in range(60):
        t = time.perf_counter()
        loss = F.cross_entropy(net(x), y); opt.zero_grad(); loss.backward(); opt.step()
        if dev == "cuda":
            torch.cuda.synchronize()
        if i >= 10:
            times.append(time.perf_counter() - t)
    s = sorted(times)[len(times) // 2]
    print(f"torch cnn-step b{batch} ({dev}, {torch.__version__}): {1 / s:.1f} steps/s  {batch / s:.0f} samples/s")
