"""Accuracy anchors measured with PyTorch on CPU, on the same data wgtrain bundles.
  cnn: the PyTorch examples/mnist network on data/mnist-10k (8000 train / 2000 test),
       Adam 1e-3, batch 64, +-2 px random shifts, E epochs; prints test accuracy per epoch.
  gpt: nanoGPT's "baby GPT" CPU configuration (4 layers, 4 heads, 128 wide, block 64, batch 12,
       lr 1e-3, AdamW, dropout 0, 2000 iterations) on data/shakespeare (first 90% train);
       prints train/val loss (nats per character, 200 random val blocks) every 250 iterations.
Usage: python3 torch_cpu_anchors.py cnn [epochs] | gpt [iters]"""
import gzip, math, os, struct, sys, time
import numpy as np
import torch, torch.nn as nn, torch.nn.functional as F

torch.manual_seed(0); np.random.seed(0)
# The repository's data/ (a copy of the shared datasets, so a clone runs offline).
SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "data")


def idx(path):
    b = gzip.open(path).read()
    nd = b[3]; dims = struct.unpack(">" + "I" * nd, b[4:4 + 4 * nd])
    return np.frombuffer(b, np.uint8, offset=4 + 4 * nd).reshape(dims)


def cnn(epochs=10):
    d = os.path.join(SHARED, "mnist-10k")
    xtr = torch.tensor(idx(f"{d}/train-images-idx3-ubyte.gz"), dtype=torch.float32)[:, None] / 255
    ytr = torch.tensor(idx(f"{d}/train-labels-idx1-ubyte.gz"), dtype=torch.long)
    xte = torch.tensor(idx(f"{d}/t10k-images-idx3-ubyte.gz"), dtype=torch.float32)[:, None] / 255
    yte = torch.tensor(idx(f"{d}/t10k-labels-idx1-ubyte.gz"), dtype=torch.long)
    print(f"cnn: {len(xtr)} train, {len(xte)} test", flush=True)
    net = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.25),
                        nn.Flatten(), nn.Linear(9216, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10))
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    for e in range(epochs):
        net.train(); t = time.time(); perm = torch.randperm(len(xtr))
        for i in range(0, len(xtr), 64):
            b = perm[i:i + 64]; x = xtr[b]
            dx, dy = np.random.randint(-2, 3, 2)
            x = torch.roll(x, (int(dx), int(dy)), (2, 3))
            loss = F.cross_entropy(net(x), ytr[b]); opt.zero_grad(); loss.backward(); opt.step()
        net.eval()
        with torch.no_grad():
            acc = (net(xte).argmax(1) == yte).float().mean().item()
        print(f"cnn epoch {e + 1}: test accuracy {acc * 100:.2f}%  ({time.time() - t:.0f} s)", flush=True)


class Block(nn.Module):
    def __init__(s, c, h):
        super().__init__(); s.h = h
        s.ln_1 = nn.LayerNorm(c); s.c_attn = nn.Linear(c, 3 * c); s.c_proj = nn.Linear(c, c)
        s.ln_2 = nn.LayerNorm(c); s.fc = nn.Linear(c, 4 * c); s.proj = nn.Linear(4 * c, c)

    def forward(s, x):
        B, T, C = x.shape
        q, k, v = s.c_attn(s.ln_1(x)).split(C, 2)
        q, k, v = (t.view(B, T, s.h, C // s.h).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, C)
        x = x + s.c_proj(y)
        return x + s.proj(F.gelu(s.fc(s.ln_2(x)), approximate="tanh"))


def gpt(iters=2000, L=4, H=4, C=128, T=64, B=12):
    text = open(os.path.join(SHARED, "shakespeare", "input.txt")).read()
    chars = sorted(set(text)); stoi = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([stoi[c] for c in text], dtype=torch.long); n = int(0.9 * len(data))
    tr, va = data[:n], data[n:]; V = len(chars)
    wte, wpe = nn.Embedding(V, C), nn.Embedding(T, C)
    blocks = nn.ModuleList(Block(C, H) for _ in range(L)); ln_f = nn.LayerNorm(C); head = nn.Linear(C, V, bias=False)
    params = [p for m in (wte, wpe, blocks, ln_f, head) for p in m.parameters()]
    print(f"gpt: {sum(p.numel() for p in params) / 1e6:.2f} M parameters, vocab {V}", flush=True)
    opt = torch.optim.AdamW(params, 1e-3, betas=(0.9, 0.99), weight_decay=0.1)

    def batch(d, b):
        ix = torch.randint(len(d) - T - 1, (b,))
        return torch.stack([d[i:i + T] for i in ix]), torch.stack([d[i + 1:i + T + 1] for i in ix])

    def loss_of(x, y):
        h = wte(x) + wpe(torch.arange(T))
        for blk in blocks:
            h = blk(h)
        return F.cross_entropy(head(ln_f(h)).view(-1, V), y.view(-1))

    t = time.time()
    for it in range(iters + 1):
        if it % 250 == 0:
            with torch.no_grad():
                vl = sum(loss_of(*batch(va, B)).item() for _ in range(200 // B + 1)) / (200 // B + 1)
                tl = sum(loss_of(*batch(tr, B)).item() for _ in range(200 // B + 1)) / (200 // B + 1)
            print(f"gpt iter {it}: train loss {tl:.4f}  val loss {vl:.4f}  ({time.time() - t:.0f} s)", flush=True)
        if it == iters:
            break
        lr = 1e-3 * min(1, (it + 1) / 100) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * it / iters)))
        for g in opt.param_groups:
            g["lr"] = lr
        loss = loss_of(*batch(tr, B)); opt.zero_grad(); loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0); opt.step()


if __name__ == "__main__":
    what = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else None
    (cnn(n or 10) if what == "cnn" else gpt(n or 2000))
