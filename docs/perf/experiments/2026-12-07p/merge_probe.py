"""Where the many-pieces merge's time goes: %globaltimer stamps in each SplitCombineMany CTA (h_q 16, s_q 1).

    cp -r templates /tmp/mg && python docs/perf/experiments/2026-12-07p/merge_probe.py patch /tmp/mg
    MLAGEN_TEMPLATE_DIR=/tmp/mg MLAGEN_CACHE_DIR=/tmp/c-mg \
        python docs/perf/experiments/2026-12-07p/merge_probe.py run 1,32768 1,131072 4,32768

Stamps per merge CTA (thread 0): launch (before griddepcontrol.wait), entry (after it), meta (its request's
piece count read), then the fourth: for the merge before 2026-12-07q (two LSE passes, then rounds of copies) the
row's merged LSE known ("lse"), for the one-round merge adopted there its first round's copies landed ("round1");
loop (every piece weighed in, before the warps' sum), end (its columns stored). `patch` recognises which merge the
templates have. They go to rows the call does not use: at 16 heads and one query token a merge
reads rows 0-15 of each piece's 64, so CTA (row g, slice c) writes into row 16 + g of part 0's first piece,
columns 16c.. (int64 pairs of floats). Each cell is batch,s_k (the bench's lengths); per call, phase times in us
from the earliest entry, median over calls of (median / max over the CTAs), and the decode kernel's last
activity is not stamped: the call's `tools/call_breakdown.py` gives the kernel durations beside it.
A measurement aid for one experiment, never part of a product kernel.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[4] / "tools"))
from timeline_patch import CLOCK_HELPERS, _rep  # noqa: E402

ORDER = ("launch", "entry", "meta", "lse", "loop", "end")  # the merge before 2026-12-07q
ORDER_ONE_ROUND = ("launch", "entry", "meta", "round1", "loop", "end")  # the one-round merge since then
FIRST_ROW, LATENT, ROWS, SLICES = 16, 512, 64, 4   # h_q 16 s_q 1: 16 rows used of an m-block's 64


def is_one_round(template_dir: Path) -> bool:
    """Whether the templates' many-pieces merge is the one-round kernel of 2026-12-07q (no LSE pass)."""
    return "def merged_lse(" not in (template_dir / "sm90" / "_combine.py.j2").read_text()


def order_of(template_dir: Path) -> tuple[str, ...]:
    return ORDER_ONE_ROUND if is_one_round(template_dir) else ORDER


_STORE_STAMPS = """            if tid == 0 and g < HPK:
                words = cute.recast_ptr(ws_o_ptr, dtype=Int64)
                at = ((HPK + g) * LATENT + (gs % COMBINE_SLICES) * 16) // 2
                t_end = _globaltimer()
                cute.make_tensor(words + at, cute.make_layout((1,)))[0] = t_launch
                cute.make_tensor(words + at + 1, cute.make_layout((1,)))[0] = t_entry
                cute.make_tensor(words + at + 2, cute.make_layout((1,)))[0] = t_meta
                cute.make_tensor(words + at + 3, cute.make_layout((1,)))[0] = T_FOURTH
                cute.make_tensor(words + at + 4, cute.make_layout((1,)))[0] = t_loop
                cute.make_tensor(words + at + 5, cute.make_layout((1,)))[0] = t_end
"""


def patch(template_dir: Path) -> None:
    if is_one_round(template_dir):
        _patch_one_round(template_dir)
    else:
        _patch_two_pass(template_dir)


def _patch_one_round(template_dir: Path) -> None:
    p = template_dir / "sm90" / "_combine.py.j2"
    s = p.read_text()
    s = _rep(s, "class SplitCombine:\n", CLOCK_HELPERS + "\n\nclass SplitCombine:\n", tool="merge_probe")
    s = _rep(s, """        # launched as a programmatic dependent, as SplitCombine
        cute.arch.griddepcontrol_wait()
        WARPS = self.warps
""", """        t_launch = _globaltimer()
        # launched as a programmatic dependent, as SplitCombine
        cute.arch.griddepcontrol_wait()
        t_entry = _globaltimer()
        WARPS = self.warps
""", tool="merge_probe")
    s = _rep(s, """            warp = tid // 32
            rows_ws = m_blocks * BLOCK_M
""", """            warp = tid // 32
            t_meta = _globaltimer()
            t_round = Int64(0)
            rows_ws = m_blocks * BLOCK_M
""", tool="merge_probe")
    s = _rep(s, """                cute.arch.cp_async_wait_group(0)
                for c in cutlass.range_constexpr(COLS):
                    acc[c] = acc[c] * rescale
""", """                cute.arch.cp_async_wait_group(0)
                if t_round == 0:
                    t_round = _globaltimer()
                for c in cutlass.range_constexpr(COLS):
                    acc[c] = acc[c] * rescale
""", tool="merge_probe")
    s = _rep(s, """            # the warps' sums meet in their own staging space""", """            t_loop = _globaltimer()
            # the warps' sums meet in their own staging space""", tool="merge_probe")
    s = _rep(s, """
                    dst_lse[0] = merged
{% endif %}
""", """
                    dst_lse[0] = merged
{% endif %}
""" + _STORE_STAMPS.replace("T_FOURTH", "t_round"), tool="merge_probe")
    p.write_text(s)


def _patch_two_pass(template_dir: Path) -> None:
    p = template_dir / "sm90" / "_combine.py.j2"
    s = p.read_text()
    s = _rep(s, "class SplitCombine:\n", CLOCK_HELPERS + "\n\nclass SplitCombine:\n", tool="merge_probe")
    s = _rep(s, """        # (a no-op where it is not launched as a programmatic dependent; where it is, as SplitCombine's)
        cute.arch.griddepcontrol_wait()
        WARPS = COMBINE_THREADS // 32
""", """        t_launch = _globaltimer()
        # (a no-op where it is not launched as a programmatic dependent; where it is, as SplitCombine's)
        cute.arch.griddepcontrol_wait()
        t_entry = _globaltimer()
        WARPS = COMBINE_THREADS // 32
""", tool="merge_probe")
    s = _rep(s, """        num_splits = mMeta[1]
        if num_splits > 1:
            first_part = mMeta[0]
            first_slot = mMeta[2]
            lane = tid % 32
            warp = tid // 32
            row_ok = g < s_q * HPK
""", """        num_splits = mMeta[1]
        if num_splits > 1:
            t_meta = _globaltimer()
            first_part = mMeta[0]
            first_slot = mMeta[2]
            lane = tid % 32
            warp = tid // 32
            row_ok = g < s_q * HPK
""", tool="merge_probe")
    s = _rep(s, """            if row_ok:
                merged = self.merged_lse(ws_lse_ptr, first_part, first_slot, last, kv_head, rows_ws, g, lane)
""", """            if row_ok:
                merged = self.merged_lse(ws_lse_ptr, first_part, first_slot, last, kv_head, rows_ws, g, lane)
            t_lse = _globaltimer()
""", tool="merge_probe")
    s = _rep(s, """            # the warps add up their partial sums through their staging space
            cute.arch.sync_threads()
""", """            t_loop = _globaltimer()
            # the warps add up their partial sums through their staging space
            cute.arch.sync_threads()
""", tool="merge_probe")
    s = _rep(s, """                    dst_lse[0] = merged
{% endif %}

    @cute.jit
    def merged_lse(""", """                    dst_lse[0] = merged
{% endif %}
""" + _STORE_STAMPS.replace("T_FOURTH", "t_lse") + """
    @cute.jit
    def merged_lse(""", tool="merge_probe")
    p.write_text(s)


def stamps_of(partial_out_words: np.ndarray) -> np.ndarray:
    """(row, slice, phase) int64 stamps from part 0's first piece rows 16-31, as the patched merge writes them."""
    rows = partial_out_words[: ROWS * LATENT // 2].reshape(ROWS, LATENT // 2)[FIRST_ROW:2 * FIRST_ROW]
    return np.stack([rows[:, c * 8:c * 8 + len(ORDER)] for c in range(SLICES)], axis=1)


def summarise(st: np.ndarray, order: tuple[str, ...] = ORDER) -> dict[str, tuple[float, float]]:
    """Per phase, (median, max) in us from the call's earliest entry over the CTAs that stamped."""
    flat = st.reshape(-1, len(order)).astype(np.int64)
    flat = flat[flat[:, -1] != 0]
    t0 = flat[:, 1].min()
    return {name: (float(np.median((flat[:, k] - t0) / 1e3)), float(((flat[:, k] - t0) / 1e3).max()))
            for k, name in enumerate(order)}


def run(cells: list[str], calls: int) -> None:
    import torch

    import mlagen.jit
    from mlagen.bench import cell_spec, make_inputs, seqlens_for
    from mlagen.plan import plan_for

    tdir = Path(os.environ.get("MLAGEN_TEMPLATE_DIR", "templates"))
    if "t_launch = _globaltimer()" not in (tdir / "sm90" / "_combine.py.j2").read_text():
        raise SystemExit("merge_probe: set MLAGEN_TEMPLATE_DIR to templates stamped by `merge_probe.py patch`")
    order = order_of(tdir)
    spec = cell_spec(dict(h_q=16, s_q=1, page=64, cache=None))
    kernel = mlagen.jit.compile(spec, plan_for(spec), tuned=False)
    for cell in cells:
        batch, s_k = (int(x) for x in cell.split(","))
        q, cache, bt, ln = make_inputs(spec, batch, 1, seqlens_for(batch, 1, s_k), sets=1)[0]
        parts = kernel.num_parts(1)
        if parts < 4 * batch:
            raise SystemExit(f"merge_probe: batch {batch} is merged by the few-pieces kernel ({parts} parts)")
        ws = kernel.workspace(batch, 1, q.device, parts)
        out = []
        for _ in range(3 + calls):
            ws.partial_out.zero_()
            kernel(q, cache, bt, ln, workspace=ws, num_parts=parts, validate=False)
            torch.cuda.synchronize()
            out.append(summarise(stamps_of(ws.partial_out.view(torch.int64).cpu().numpy()), order))
        out = out[3:]
        print(f"== merge of h_q 16, batch {batch}, s_k {s_k}: {parts} pieces a row; us from the earliest entry "
              f"(after griddepcontrol.wait), median over {calls} calls of (median / max over the CTAs)")
        for name in order:
            med = np.median(np.array([c[name] for c in out]), axis=0)
            print(f"  {name:8s} {med[0]:8.2f} {med[1]:8.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("patch", help="stamp the merge in a copy of the templates")
    p.add_argument("template_dir", type=Path)
    r = sub.add_parser("run", help="run stamped calls (GPU)")
    r.add_argument("cells", nargs="+", help="batch,s_k")
    r.add_argument("--calls", type=int, default=8)
    args = ap.parse_args()
    if args.cmd == "patch":
        patch(args.template_dir)
        print(f"merge stamps added to {args.template_dir / 'sm90' / '_combine.py.j2'}")
    else:
        run(args.cells, args.calls)


if __name__ == "__main__":
    main()
