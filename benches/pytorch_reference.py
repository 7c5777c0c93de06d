"""PyTorch reference for `rezero bench matmul`, `conv2d`, `resnet`, `attention` and `lm`.

Times the same work in PyTorch on the same machine, in FP32 with TF32 off (rezero's kernels
are plain FP32), so the ratio in BENCHMARKS.md compares like with like:
  * torch.mm at the matmul shapes given (M x N x K, ":nt" etc. for transposed operands);
  * conv2d forward, backward to the input and backward to the weights at the ResNet layer
    shapes of `rezero bench conv2d` (GFLOP/s, the same FLOP count: 2·outputs·c_in·k·k);
  * a whole ResNet training step (forward in training mode, cross-entropy, backward, SGD
    with momentum 0.9 and weight decay 1e-4) for the standard and rezero blocks of
    src/nn/resnet.rs, at the depths and batch given (images/s).

  * with --half: torch.mm in f16 and bf16, and the Transformer step under torch.autocast
    (f16) with a GradScaler, beside rezero's f16 rows.

Usage: python3 benches/pytorch_reference.py [--matmul 1024,4096x2048x512:nt] [--depths 20,56,110]
       [--batch 128] [--device cuda] [--skip-conv] [--half]
Prints one JSON object per line.
"""

import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

CONV_SHAPES = [  # batch, c_in, size, c_out, kernel, stride (padding kernel // 2)
    (128, 16, 32, 16, 3, 1),
    (128, 16, 32, 32, 3, 2),
    (128, 32, 16, 32, 3, 1),
    (128, 32, 16, 64, 3, 2),
    (128, 64, 8, 64, 3, 1),
    (128, 16, 32, 32, 1, 2),
]


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def median_seconds(fn, device, warmup=3, runs=10):
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]


def bench_matmul(device, sizes, half=False):
    """torch.mm on random operands stored as rezero stores them (":nt": B is [n, k]), in
    f32; with `half` also in f16 and bf16 (variant "f16", "bf16": tensor cores, what
    rezero's `f16:` rows are set beside)."""
    dtypes = [(torch.float32, None)]
    if half:
        dtypes += [(torch.float16, "f16"), (torch.bfloat16, "bf16")]
    for text in sizes:
        dims, _, layout = text.partition(":")
        layout = layout or "nn"
        parts = [int(d) for d in dims.split("x")]
        m, n, k = (parts * 3)[:3] if len(parts) == 1 else parts
        for dtype, variant in dtypes:
            def rand(rows, cols):
                return torch.randn(rows, cols, device=device, dtype=dtype)
            a = rand(k, m).t() if layout[0] == "t" else rand(m, k)
            b = rand(n, k).t() if layout[1] == "t" else rand(k, n)
            s = median_seconds(lambda: torch.mm(a, b), device, warmup=5, runs=20)
            shape = f"{m}x{n}x{k}" + ("" if layout == "nn" else f":{layout}")  # as rezero names it
            row = {"framework": "pytorch", "kernel": "matmul", "shape": shape,
                   "ms": s * 1e3, "gflops": 2.0 * m * n * k / s / 1e9}
            if variant:
                row["variant"] = variant
            print(json.dumps(row), flush=True)


def bench_conv(device):
    for batch, c_in, size, c_out, k, stride in CONV_SHAPES:
        pad = k // 2
        x = torch.randn(batch, c_in, size, size, device=device)
        w = torch.randn(c_out, c_in, k, k, device=device)
        y = F.conv2d(x, w, stride=stride, padding=pad)
        dy = torch.randn_like(y)
        flops = 2.0 * y.numel() * c_in * k * k
        shape = f"{batch}x{c_in}x{size}x{c_out}x{k}x{stride}"
        passes = {
            "conv2d_fwd": lambda: F.conv2d(x, w, stride=stride, padding=pad),
            "conv2d_bwd_input": lambda: torch.nn.grad.conv2d_input(
                x.shape, w, dy, stride=stride, padding=pad
            ),
            "conv2d_bwd_weight": lambda: torch.nn.grad.conv2d_weight(
                x, w.shape, dy, stride=stride, padding=pad
            ),
        }
        for kernel, fn in passes.items():
            s = median_seconds(fn, device)
            print(json.dumps({"framework": "pytorch", "kernel": kernel, "shape": shape,
                              "ms": s * 1e3, "gflops": flops / s / 1e9}), flush=True)


class ConvLayer(nn.Module):
    """Convolution, then BatchNorm (or a bias when there is none), as in src/nn/resnet.rs."""

    def __init__(self, c_in, c_out, k, stride, batchnorm):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=not batchnorm)
        self.bn = nn.BatchNorm2d(c_out) if batchnorm else None
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) if self.bn is not None else y


class Block(nn.Module):
    def __init__(self, c_in, c_out, stride, variant):
        super().__init__()
        bn = variant != "rezero-nobn"
        self.conv1 = ConvLayer(c_in, c_out, 3, stride, bn)
        self.conv2 = ConvLayer(c_out, c_out, 3, 1, bn)
        self.shortcut = (ConvLayer(c_in, c_out, 1, stride, bn)
                         if stride != 1 or c_in != c_out else None)
        self.variant = variant
        self.alpha = nn.Parameter(torch.zeros(())) if variant != "standard" else None

    def forward(self, x):
        f = self.conv2(F.relu(self.conv1(x)))
        skip = self.shortcut(x) if self.shortcut is not None else x
        if self.alpha is None:
            return F.relu(f + skip)
        return skip + self.alpha * F.relu(f)


class Resnet(nn.Module):
    def __init__(self, depth, variant, classes=10, in_channels=3):
        super().__init__()
        n = (depth - 2) // 6
        self.stem = ConvLayer(in_channels, 16, 3, 1, variant != "rezero-nobn")
        blocks, c_in = [], 16
        for stage, c_out in enumerate([16, 32, 64]):
            for i in range(n):
                blocks.append(Block(c_in, c_out, 2 if stage > 0 and i == 0 else 1, variant))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        h = self.blocks(F.relu(self.stem(x)))
        return self.fc(h.mean(dim=(2, 3)))


def bench_resnet(device, depths, batch):
    for depth in depths:
        for variant in ["standard", "rezero"]:
            torch.manual_seed(0)
            model = Resnet(depth, variant).to(device)
            decay = [p for n, p in model.named_parameters() if n.endswith("conv.weight") or n == "fc.weight"]
            rest = [p for n, p in model.named_parameters() if not (n.endswith("conv.weight") or n == "fc.weight")]
            opt = torch.optim.SGD([{"params": decay, "weight_decay": 1e-4},
                                   {"params": rest, "weight_decay": 0.0}], lr=0.1, momentum=0.9)
            x = torch.randn(batch, 3, 32, 32, device=device)
            y = torch.arange(batch, device=device) % 10

            def step():
                opt.zero_grad(set_to_none=True)
                loss = F.cross_entropy(model(x), y)
                loss.backward()
                opt.step()

            s = median_seconds(step, device, warmup=3, runs=10)
            print(json.dumps({"framework": "pytorch", "kernel": "resnet_step",
                              "shape": f"{depth}x{batch}", "variant": variant,
                              "ms": s * 1e3, "images_per_s": batch / s}), flush=True)


def bench_attention(device, sizes):
    """SDPA, causal, FP32: the forward, and the forward with the backward to q, k and v."""
    for text in sizes:
        bh, t, d = (int(x) for x in text.split("x"))
        q, k, v = (torch.randn(1, bh, t, d, device=device, requires_grad=True) for _ in range(3))
        causal = 4.0 * bh * t * (t + 1) / 2 * d  # QKᵀ and PV over the causal half
        forward = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True)
        do = torch.randn(1, bh, t, d, device=device)

        def both():
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            torch.autograd.grad(out, (q, k, v), do)

        with torch.no_grad():
            s = median_seconds(forward, device)
        print(json.dumps({"framework": "pytorch", "kernel": "attention_fwd", "shape": text,
                          "ms": s * 1e3, "gflops": causal / s / 1e9}), flush=True)
        s = median_seconds(both, device)
        print(json.dumps({"framework": "pytorch", "kernel": "attention_fwd_bwd", "shape": text,
                          "ms": s * 1e3, "gflops": 3.0 * causal / s / 1e9}), flush=True)


class RezeroBlock(nn.Module):
    """x + α·attention(x), then x + α·feed_forward(x), one α per block (src/nn/transformer.rs)."""

    def __init__(self, d_model, heads, d_ff):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.ff1 = nn.Linear(d_model, d_ff)
        self.ff2 = nn.Linear(d_ff, d_model)
        for linear in (self.qkv, self.proj, self.ff1, self.ff2):
            nn.init.xavier_normal_(linear.weight)
            nn.init.zeros_(linear.bias)

    def forward(self, x, alpha):
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        heads = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + alpha * self.proj(heads.transpose(1, 2).reshape(b, t, d))
        return x + alpha * self.ff2(F.gelu(self.ff1(x), approximate="tanh"))


class RezeroTransformer(nn.Module):
    def __init__(self, layers, d_model, seq):
        super().__init__()
        self.tokens = nn.Parameter(torch.randn(256, d_model) * 0.02)
        self.positions = nn.Parameter(torch.randn(seq, d_model) * 0.02)
        self.blocks = nn.ModuleList(
            RezeroBlock(d_model, max(d_model // 64, 1), 4 * d_model) for _ in range(layers))
        self.alphas = nn.Parameter(torch.zeros(layers))
        self.out = nn.Linear(d_model, 256)
        nn.init.xavier_normal_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, ids):
        x = self.tokens[ids] + self.positions[: ids.shape[1]]
        for i, block in enumerate(self.blocks):
            x = block(x, self.alphas[i])
        return self.out(x)


def bench_lm(device, sizes, compile_too, autocast=False):
    """Training steps of the ReZero Transformer: eager at every size first, then under
    torch.autocast in f16 with a GradScaler (when asked: mixed precision as rezero's
    `--precision f16` does it), then compiled (when asked and it works), so a slow compile
    cannot cost an eager row."""
    modes = ["eager"] + (["autocast"] if autocast else []) + (["compiled"] if compile_too else [])
    for mode in modes:
        for text in sizes:
            layers, d_model, seq, batch = (int(x) for x in text.split("x"))
            torch.manual_seed(1)
            model = RezeroTransformer(layers, d_model, seq).to(device)
            net = torch.compile(model) if mode == "compiled" else model
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
            ids = (torch.arange(batch * seq, device=device) * 7 + 3).remainder(256).view(batch, seq)
            targets = (ids + 1).remainder(256)
            half = mode == "autocast"
            scaler = torch.amp.GradScaler(device.type, enabled=half)

            def step():
                opt.zero_grad(set_to_none=True)
                with torch.autocast(device.type, dtype=torch.float16, enabled=half):
                    loss = F.cross_entropy(net(ids).view(-1, 256), targets.view(-1))
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()

            try:
                s = median_seconds(step, device, warmup=2, runs=5)
            except Exception as e:  # torch.compile where the device has no compiler
                print(json.dumps({"framework": "pytorch", "kernel": "lm_step", "shape": text,
                                  "mode": mode, "error": str(e)[:200]}), flush=True)
                continue
            variant = {"eager": "rezero", "autocast": "rezero-autocast-f16",
                       "compiled": "rezero-compiled"}[mode]
            print(json.dumps({"framework": "pytorch", "kernel": "lm_step", "shape": text,
                              "variant": variant, "ms": s * 1e3,
                              "tokens_per_s": batch * seq / s}), flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--depths", default="20,56,110")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--skip-conv", action="store_true")
    parser.add_argument("--matmul", default="", help="comma-separated matmul shapes")
    parser.add_argument("--skip-resnet", action="store_true")
    parser.add_argument("--attention", default="", help="comma-separated BHxTxD shapes")
    parser.add_argument("--lm", default="", help="comma-separated LAYERSxD_MODELxSEQxBATCH")
    parser.add_argument("--compile", action="store_true", help="also torch.compile the lm step")
    parser.add_argument("--half", action="store_true",
                        help="also torch.mm in f16 and bf16, and the lm step under autocast")
    args = parser.parse_args()
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    device = torch.device(args.device)
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    print(json.dumps({"framework": "pytorch", "version": torch.__version__, "device": name,
                      "tf32": False}), flush=True)
    if args.matmul:
        bench_matmul(device, args.matmul.split(","), args.half)
    if not args.skip_conv:
        bench_conv(device)
    if not args.skip_resnet:
        bench_resnet(device, [int(d) for d in args.depths.split(",")], args.batch)
    if args.attention:
        bench_attention(device, args.attention.split(","))
    if args.lm:
        bench_lm(device, args.lm.split(","), args.compile, args.half)


if __name__ == "__main__":
    main()
