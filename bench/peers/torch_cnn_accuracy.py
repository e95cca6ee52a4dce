"""PyTorch's test accuracy for the MNIST CNN of examples/cnn.rs under the recipes its README
compares (12 epochs on the bundled 8,000/2,000 split, Adam, batch 64, every image shifted by
up to ±2 px, zero-filled, like wgtrain's augmentation): whether BatchNorm2d after each
convolution and a cosine-annealed rate help in PyTorch too. Runs on CUDA where present.
Usage: python3 torch_cnn_accuracy.py DATA_DIR [seeds...]"""
import gzip, math, struct, sys
import numpy as np
import torch, torch.nn as nn, torch.nn.functional as F

dev = "cuda" if torch.cuda.is_available() else "cpu"
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False


def idx(path):
    b = gzip.open(path).read()
    nd = b[3]; dims = struct.unpack(">" + "I" * nd, b[4:4 + 4 * nd])
    return np.frombuffer(b, np.uint8, offset=4 + 4 * nd).reshape(dims)


def load(d, prefix):
    x = torch.tensor(idx(f"{d}/{prefix}-images-idx3-ubyte.gz"), dtype=torch.float32)[:, None] / 255
    y = torch.tensor(idx(f"{d}/{prefix}-labels-idx1-ubyte.gz"), dtype=torch.long)
    return x.to(dev), y.to(dev)


def shift(x, m=2):
    """Each image moved by its own (dy, dx) in [-m, m]^2, zeros filled in."""
    n = x.shape[0]
    padded = F.pad(x, (m, m, m, m))
    dy = torch.randint(0, 2 * m + 1, (n,), device=x.device)
    dx = torch.randint(0, 2 * m + 1, (n,), device=x.device)
    rows = (dy[:, None] + torch.arange(28, device=x.device)[None])[:, :, None]
    cols = (dx[:, None] + torch.arange(28, device=x.device)[None])[:, None, :]
    return padded[torch.arange(n, device=x.device)[:, None, None], 0, rows, cols][:, None]


def net(bn):
    norm = (lambda c: [nn.BatchNorm2d(c)]) if bn else (lambda c: [])
    return nn.Sequential(nn.Conv2d(1, 32, 3), *norm(32), nn.ReLU(), nn.Conv2d(32, 64, 3), *norm(64), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Dropout(0.25), nn.Flatten(), nn.Linear(9216, 128), nn.ReLU(),
                         nn.Dropout(0.5), nn.Linear(128, 10)).to(dev)


def run(d, seed, bn, lr, cosine, epochs=12):
    torch.manual_seed(seed)
    xtr, ytr = load(d, "train"); xte, yte = load(d, "t10k")
    model = net(bn); opt = torch.optim.Adam(model.parameters(), lr)
    steps = epochs * math.ceil(len(xtr) / 64)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps) if cosine else None
    accs = []
    for _ in range(epochs):
        model.train(); perm = torch.randperm(len(xtr), device=dev)
        for i in range(0, len(xtr), 64):
            b = perm[i:i + 64]
            loss = F.cross_entropy(model(shift(xtr[b])), ytr[b])
            opt.zero_grad(); loss.backward(); opt.step()
            if sched: sched.step()
        model.eval()
        with torch.no_grad():
            accs.append((model(xte).argmax(1) == yte).float().mean().item() * 100)
    return accs


if __name__ == "__main__":
    d = sys.argv[1]
    seeds = [int(s) for s in sys.argv[2:]] or [0]
    for name, bn, lr, cosine in [("recipe", False, 1e-3, False), ("recipe + BatchNorm2d", True, 1e-3, False),
                                 ("lr 2e-3 cosine", False, 2e-3, True), ("lr 2e-3 cosine + BatchNorm2d", True, 2e-3, True)]:
        for seed in seeds:
            accs = run(d, seed, bn, lr, cosine)
            print(f"torch {name} seed {seed}: " + " ".join(f"{a:.2f}%" for a in accs), flush=True)
