"""Decode a few steps of a tiny random-weight MLA layer on the GPU with the generated kernel.

    python examples/tiny_decode.py [--steps 16] [--batch 4] [--page 16] [--heads 16] [--cache-dtype fp8_e4m3]

Builds :class:`mlagen.nn.MultiHeadLatentAttention` (DeepSeek-style weights: 512-wide latent,
64-wide RoPE, small hidden size), prefills prompts of different lengths into a paged latent
cache (bf16 rows, or FlashMLA's packed fp8 rows with ``--cache-dtype fp8_e4m3``), then decodes. Every step runs the kernel path (absorbed weights,
``torch.ops.mlagen.mla_decode``) and the plain-PyTorch non-absorbed path on the same cache and
prints the largest difference (relative to the largest output) and the time per step of each.
Needs a Hopper GPU; the kernel is compiled on first use (or loaded from $MLAGEN_CACHE_DIR).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--page", type=int, default=16)
    parser.add_argument("--heads", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dtype", choices=["bf16", "fp8_e4m3"], default="bf16",
                        help="the latent cache's storage (default: the layer's bf16)")
    args = parser.parse_args(argv)

    import torch

    from mlagen.nn import MultiHeadLatentAttention

    if not torch.cuda.is_available():
        print("needs a CUDA (Hopper) GPU", file=sys.stderr)
        return 1
    torch.manual_seed(args.seed)
    layer = MultiHeadLatentAttention(hidden=args.hidden, heads=args.heads, q_lora=128, kv_lora=512, rope=64,
                                     nope=64, v_head=64, page=args.page, dtype=torch.bfloat16, device="cuda",
                                     cache_dtype=None if args.cache_dtype == "bf16" else args.cache_dtype)
    print(layer)
    print(f"kernel spec: {layer.spec.key}")
    prompts = [10 + 13 * i for i in range(args.batch)]
    pages = sum(-(-(n + args.steps) // args.page) for n in prompts) + 4
    cache = layer.make_cache(pages)
    ids = [cache.add_sequence() for _ in prompts]

    def sync_time(fn):
        torch.cuda.synchronize()
        start = time.perf_counter()
        result = fn()
        torch.cuda.synchronize()
        return result, time.perf_counter() - start

    with torch.no_grad():
        layer.prefill([torch.randn(n, args.hidden, device="cuda", dtype=torch.bfloat16) for n in prompts], ids, cache)
        # first kernel call compiles or loads the kernel: keep it out of the timings
        t = time.perf_counter()
        torch.ops.mlagen.mla_decode(
            torch.zeros(1, 1, layer.heads, layer.spec.d_qk, device="cuda", dtype=torch.bfloat16), cache.kv,
            *cache.kernel_inputs(ids[:1]), layer.op_key)
        torch.cuda.synchronize()
        print(f"kernel ready in {time.perf_counter() - t:.1f} s; prompts {prompts}, {cache.num_pages} pages of {args.page}")
        worst = 0.0
        for step in range(args.steps):
            x = torch.randn(len(ids), 1, args.hidden, device="cuda", dtype=torch.bfloat16)
            q_nope, q_rope = layer.append_tokens(x, ids, cache)
            kernel, t_kernel = sync_time(lambda: layer.attend(q_nope, q_rope, ids, cache, path="kernel"))
            naive, t_naive = sync_time(lambda: layer.attend(q_nope, q_rope, ids, cache, path="naive"))
            err = (kernel.float() - naive.float()).abs().max().item() / naive.float().abs().max().item()
            worst = max(worst, err)
            print(f"step {step:3d}: lengths {cache.lengths(ids)}, free pages {cache.num_free_pages:3d}, "
                  f"max |kernel - torch| / max |torch| = {err:.2e}, "
                  f"kernel path {1e3 * t_kernel:.2f} ms, torch path {1e3 * t_naive:.2f} ms")
    print(f"worst relative difference {worst:.2e}")
    return 0 if worst <= 3e-2 else 1


if __name__ == "__main__":
    sys.exit(main())
