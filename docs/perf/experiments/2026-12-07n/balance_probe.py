"""Is a split-KV call's tail set by slow SMs? Per-CTA spans and SMs of the heads_n decode, several calls.

    cp -r templates /tmp/tl0 && TL_T0=0 TL_NT=4 python tools/timeline_patch.py /tmp/tl0
    TL_T0=0 TL_NT=4 MLAGEN_TEMPLATE_DIR=/tmp/tl0 python docs/perf/experiments/2026-12-07n/balance_probe.py \
        --out DIR 1,32768 1,131072 4,32768 128,4096

Each cell (batch, s_k; h_q 16, s_q 1, page 64, bf16: the bench's inputs) runs CALLS stamped calls. From the
stamps of tools/timeline_patch.py (window tile 0 of every part): the TMA warp's start and last copy
(%globaltimer) and the SM (%smid). With the static split every CTA of a batch-1 call gets the same number
of tiles (+-1), so a CTA's pace (span / tiles) says how fast its SM was fed. Printed per cell: the spread
of the last copies (median, p90, max, from the first start), the time a perfect balance would save
(max - mean over CTAs of the last copy), and whether the slow SMs are the same ones on every call
(the correlation of per-SM pace between calls). Raw arrays go to DIR/<cell>.npz.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[4] / "tools"))
from timeline_cell import ring_geometry, run_stamped  # noqa: E402
from timeline_patch import TL_FIELDS, TL_NT  # noqa: E402


def tiles_per_part(lens, parts: int, block_n: int) -> np.ndarray:
    tiles = np.maximum((np.asarray(lens) + block_n - 1) // block_n, 1)
    total = int(tiles.sum())
    used = min(parts, total)
    bounds = [(p * total) // used for p in range(used + 1)]
    out = np.zeros(parts, dtype=np.int64)
    out[:used] = np.diff(bounds)
    return out


def main() -> None:
    import mlagen.jit
    from mlagen.bench import cell_spec, make_inputs, seqlens_for
    from mlagen.plan import plan_for

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cells", nargs="+", help="batch,s_k")
    ap.add_argument("--calls", type=int, default=6)
    ap.add_argument("--out", default=".")
    args = ap.parse_args()
    if "TL_T0" not in (Path(os.environ.get("MLAGEN_TEMPLATE_DIR", "templates")) / "sm90" / "_heads_n.py.j2").read_text():
        raise SystemExit("balance_probe: set MLAGEN_TEMPLATE_DIR to templates stamped by tools/timeline_patch.py")
    spec = cell_spec(dict(h_q=16, s_q=1, page=64, cache=None))
    plan = plan_for(spec)
    kernel = mlagen.jit.compile(spec, plan, tuned=False)
    ring, chunks = ring_geometry(spec, plan, None, None)
    for cell in args.cells:
        batch, s_k = (int(x) for x in cell.split(","))
        lens = seqlens_for(batch, 1, s_k)
        inputs = make_inputs(spec, batch, 1, lens, sets=1)[0]
        parts = kernel.num_parts(1)
        tiles = tiles_per_part(lens.cpu().numpy() if hasattr(lens, "cpu") else lens, parts, plan.block_n)
        starts, ends, sms = [], [], []
        for _ in range(args.calls):
            words, parts = run_stamped(kernel, inputs, batch, 1, parts * TL_NT * chunks * TL_FIELDS)
            st = words.reshape(parts, TL_NT, chunks, TL_FIELDS)
            starts.append(st[:, 0, 1, 7].copy())
            ends.append(st[:, 0, 2, 7].copy())
            sms.append(st[:, 0, 3, 7].copy())
        starts, ends, sms = np.array(starts), np.array(ends), np.array(sms)
        np.savez(Path(args.out) / f"b{batch}_s{s_k}.npz", starts=starts, ends=ends, sms=sms, tiles=tiles)
        ok = tiles > 0
        print(f"== batch {batch}, s_k {s_k}: {parts} parts, tiles per part {tiles[ok].min()}..{tiles[ok].max()}")
        paces = np.full((args.calls, 160), np.nan)
        for c in range(args.calls):
            t0 = starts[c][ok].min()
            last = (ends[c][ok] - t0) / 1e3
            span = (ends[c][ok] - starts[c][ok]) / 1e3
            pace = span / tiles[ok]
            paces[c, sms[c][ok]] = pace
            print(f"  call {c}: last copy median {np.median(last):6.1f} p10 {np.percentile(last, 10):6.1f} "
                  f"p90 {np.percentile(last, 90):6.1f} max {last.max():6.1f} mean {last.mean():6.1f} us; "
                  f"max - mean {last.max() - last.mean():5.1f} us; pace per tile median {np.median(pace):.2f} "
                  f"p10 {np.percentile(pace, 10):.2f} p90 {np.percentile(pace, 90):.2f} us; "
                  f"slowest SMs {list(sms[c][ok][np.argsort(-pace)][:6])}")
        corr = []
        for a in range(args.calls):
            for b in range(a + 1, args.calls):
                both = ~np.isnan(paces[a]) & ~np.isnan(paces[b])
                if both.sum() > 10:
                    ra = np.argsort(np.argsort(paces[a][both]))
                    rb = np.argsort(np.argsort(paces[b][both]))
                    corr.append(np.corrcoef(ra, rb)[0, 1])
        if corr:
            print(f"  per-SM pace, rank correlation between calls: median {np.median(corr):.2f} "
                  f"(min {min(corr):.2f}, max {max(corr):.2f}; 1 = the same SMs slow every call)")


if __name__ == "__main__":
    main()
