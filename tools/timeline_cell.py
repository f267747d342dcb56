"""Where a KV chunk's time goes in the heads_n pipeline: run one bench cell with a timeline-stamped kernel.

    cp -r templates /tmp/tl && python tools/timeline_patch.py /tmp/tl
    MLAGEN_TEMPLATE_DIR=/tmp/tl python tools/timeline_cell.py --h-q 16 --s-k 16384 --cache fp8_e4m3

(on top of an ablation too: apply e.g. docs/perf/experiments/2026-12-04/ablate-headsn-stream.patch to the
copy before tools/timeline_patch.py). The stamped kernel writes clock64 at six points of every ring chunk's
trip for tiles TL_T0 .. TL_T0 + TL_NT - 1 of each CTA (64-95: steady state, so a CTA needs 96 tiles, e.g.
batch 128 at s_k >= 8192; see tools/timeline_patch.py); this runner gives it
room past the split-KV workspace, runs the bench's inputs, and prints per step the median, 10th and
90th percentile over all CTAs, in SM cycles and in ns at --mhz:

  TMA wait for a free slot (0->1), issue -> converter sees it landed (1->2), conversion (2->3),
  -> MMA sees it full (3->4, or 1->4 without converters), MMA hold until release (4->5),
  release -> the TMA warp's next copy into that slot (5 -> 1 of the chunk RING later),
  the pace of tiles (TMA issue of chunk 0, MMA's first full chunk: tile to tile, and each CTA's mean
  over the window), and the TMA warp's time from one copy's issue to its next wait (within a tile;
  at a tile boundary, where it also reads the block table and issues the scale copies);
then, from %globaltimer stamps, the SM clock over the window and each CTA's span (the TMA warp's
start to its last copy).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

# must match tools/timeline_patch.py
from timeline_patch import TL_FIELDS, TL_NT, TL_T0

STEPS = (
    ("TMA wait for a free slot", 0, 1),
    ("issue -> landed (converter)", 1, 2),
    ("conversion", 2, 3),
    ("converted -> MMA sees full", 3, 4),
    ("issue -> MMA sees full", 1, 4),
    ("MMA hold until release", 4, 5),
)


def summarise(stamps: np.ndarray, ring: int, mhz: float) -> list[tuple[str, int, float, float, float]]:
    """Per step: (name, samples, median, p10, p90) in cycles, from stamps of shape (parts, NT, chunks,
    fields); a zero stamp means "not recorded" (a CTA with fewer tiles, or a role without that step)."""
    parts, nt, chunks, _ = stamps.shape
    rows = []

    def add(name, vals):
        vals = np.asarray(vals, dtype=np.float64)
        if vals.size:
            rows.append((name, int(vals.size), float(np.median(vals)), float(np.percentile(vals, 10)),
                         float(np.percentile(vals, 90))))

    for name, a, b in STEPS:
        x, y = stamps[..., a], stamps[..., b]
        ok = (x != 0) & (y != 0)
        add(name, (y - x)[ok])
    # a slot's recycling: chunk g released (5) -> chunk g + ring issued (1); same CTA, both in the window
    flat = stamps.reshape(parts, nt * chunks, -1)
    rel, iss = flat[:, : nt * chunks - ring, 5], flat[:, ring:, 1]
    ok = (rel != 0) & (iss != 0)
    add("release -> next copy into the slot", (iss - rel)[ok])
    for name, field in (("tile pace, TMA (chunk 0 issued)", 1), ("tile pace, MMA (chunk 0 full)", 4)):
        t = stamps[:, :, 0, field]
        ok = (t[:, 1:] != 0) & (t[:, :-1] != 0)
        add(name, (t[:, 1:] - t[:, :-1])[ok])
    # The TMA warp's own time between copies: chunk g issued (1) -> its wait for chunk g + 1 begins (0).
    # Within a tile that is one copy's issue; across a tile boundary it also holds the block-table
    # read and the scale copies (fp8), so the two are reported apart.
    gap_in = flat[:, 1:, 0] - flat[:, :-1, 1]
    ok = (flat[:, 1:, 0] != 0) & (flat[:, :-1, 1] != 0)
    boundary = (np.arange(1, nt * chunks) % chunks) == 0
    add("TMA issue -> next wait, within a tile", gap_in[:, ~boundary][ok[:, ~boundary]])
    add("TMA issue -> next wait, tile boundary", gap_in[:, boundary][ok[:, boundary]])
    # The mean pace of each CTA over the window (first to last tile's chunk 0 issue): the median of the
    # tile-to-tile pace above hides slow tiles, and the kernel's time is the mean
    t = stamps[:, :, 0, 1]
    full = (t != 0).all(axis=1)
    add("mean tile pace per CTA (TMA)", (t[full, -1] - t[full, 0]) / max(nt - 1, 1))
    return rows


def spans(stamps: np.ndarray) -> list[str]:
    """What %globaltimer (ns) says: the SM clock over each CTA's window (clock64 cycles per ns of chunk 0's
    issues, first to last tile), and each CTA's span from its TMA warp's start to its last copy, which
    shows how evenly the parts end (the kernel's time is the last one's end)."""
    lines = []
    clk, gt = stamps[:, :, 0, 1], stamps[:, :, 0, 6]
    full = ((clk != 0) & (gt != 0)).all(axis=1)
    if full.any():
        dt_ns = (gt[full, -1] - gt[full, 0]).astype(np.float64)
        mhz = (clk[full, -1] - clk[full, 0]) / np.maximum(dt_ns, 1) * 1e3
        lines.append(f"SM clock over the window (from %globaltimer): median {np.median(mhz):.0f} MHz "
                     f"(p10 {np.percentile(mhz, 10):.0f}, p90 {np.percentile(mhz, 90):.0f}); mean tile pace "
                     f"{np.median(dt_ns) / max(stamps.shape[1] - 1, 1):.0f} ns (median over CTAs)")
    start, end = stamps[:, 0, 1, 7], stamps[:, 0, 2, 7]
    ok = (start != 0) & (end != 0)
    if ok.any():
        t0 = start[ok].min()
        s_us, e_us = (start[ok] - t0) / 1e3, (end[ok] - t0) / 1e3
        d = e_us - s_us
        lines.append(f"TMA warps' spans ({int(ok.sum())} parts, us from the first start): starts {s_us.min():.1f}-"
                     f"{s_us.max():.1f}; last copies p10 {np.percentile(e_us, 10):.1f}, median "
                     f"{np.median(e_us):.1f}, p90 {np.percentile(e_us, 90):.1f}, max {e_us.max():.1f}; "
                     f"span median {np.median(d):.1f}")
    return lines


def by_chunk(stamps: np.ndarray) -> list[tuple[int, float, float]]:
    """Per ring chunk of a tile (0 .. chunks-1): median TMA wait for its slot (0->1) and median round
    trip from issue to release (1->5), in cycles. If the ring's reuse distance sets the pace, the
    waits gather on the chunks whose slots were last used two tiles back (a tile's last chunks)."""
    out = []
    for c in range(stamps.shape[2]):
        rec = stamps[:, :, c, :]
        med = []
        for a, b in ((0, 1), (1, 5)):
            ok = (rec[..., a] != 0) & (rec[..., b] != 0)
            med.append(float(np.median((rec[..., b] - rec[..., a])[ok])) if ok.any() else float("nan"))
        out.append((c, med[0], med[1]))
    return out


def format_rows(rows, mhz: float) -> str:
    lines = [f"{'step':40s} {'n':>6s} {'median':>9s} {'p10':>9s} {'p90':>9s}   (SM cycles; ns at {mhz:.0f} MHz)"]
    for name, n, med, p10, p90 in rows:
        ns = 1e3 / mhz
        lines.append(f"{name:40s} {n:6d} {med:9.0f} {p10:9.0f} {p90:9.0f}   "
                     f"{med * ns:7.0f} ns  ({p10 * ns:.0f}-{p90 * ns:.0f})")
    return "\n".join(lines)


def ring_geometry(spec, plan, ring: int | None = None, tile_chunks: int | None = None) -> tuple[int, int]:
    """(ring slots, chunks per tile) the stamped kernel indexes its stamps by: the plan's, unless the
    templates (an ablation) re-cut the ring, which the caller then states."""
    from mlagen.plan import heads_n_tile_chunks

    for name, value in (("--ring", ring), ("--tile-chunks", tile_chunks)):
        if value is not None and value < 1:
            raise SystemExit(f"timeline_cell: {name} must be positive, got {value}")
    chunks = tile_chunks or heads_n_tile_chunks(spec)
    ring = ring or plan.stages
    if ring < chunks:
        raise SystemExit(f"timeline_cell: a ring of {ring} slots cannot hold a tile of {chunks} chunks")
    return ring, chunks


def run_stamped(kernel, inputs, batch: int, s_q: int, words: int):
    """Run a stamped kernel on ``inputs`` with ``words`` int64 stamp words past its split-KV workspace
    (where the stamping templates write them): three warm-up calls, then one on zeroed stamps.
    Returns the stamps (int64, on the host) and the number of parts it ran with."""
    import torch

    q, cache, bt, ln = inputs
    parts = kernel.num_parts(s_q)
    ws = kernel.workspace(batch, s_q, q.device, parts)
    base = ws.partial_out.numel()
    ws.partial_out = torch.zeros(base + 2 * words, dtype=torch.float32, device=q.device)
    for _ in range(3):
        kernel(q, cache, bt, ln, workspace=ws, num_parts=parts, validate=False)
    ws.partial_out[base:].zero_()
    kernel(q, cache, bt, ln, workspace=ws, num_parts=parts, validate=False)
    torch.cuda.synchronize()
    return ws.partial_out[base:].view(torch.int64).cpu().numpy(), parts


def main() -> None:

    import mlagen.jit
    from mlagen.bench import cell_spec, make_inputs, seqlens_for
    from mlagen.plan import plan_for

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--h-q", type=int, default=16)
    ap.add_argument("--s-q", type=int, default=1)
    ap.add_argument("--s-k", type=int, default=16384)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--page", type=int, default=64)
    ap.add_argument("--cache", default=None, help="fp8_e4m3 for the packed fp8 cache")
    ap.add_argument("--mhz", type=float, default=1980.0, help="SM clock for the ns column (cycles are exact)")
    # the stamps are indexed by the template's own ring geometry: an ablation that changes it (e.g.
    # docs/perf/experiments/2026-12-05/ablate-headsn-stream-fp8ring50.patch: 50 slots, 10 chunks per tile)
    # must say so, or the stamps are read with the wrong shape
    ap.add_argument("--ring", type=int, default=None, help="ring slots, if the templates change the plan's")
    ap.add_argument("--tile-chunks", type=int, default=None, help="ring chunks per tile, if the templates change it")
    ap.add_argument("--save", default=None, help="also save the raw stamps here (numpy .npy)")
    args = ap.parse_args()
    tdir = os.environ.get("MLAGEN_TEMPLATE_DIR")
    if not tdir or "TL_T0" not in (Path(tdir) / "sm90" / "_heads_n.py.j2").read_text():
        raise SystemExit("timeline_cell: set MLAGEN_TEMPLATE_DIR to templates stamped by tools/timeline_patch.py")
    spec = cell_spec(dict(h_q=args.h_q, s_q=args.s_q, page=args.page, cache=args.cache))
    plan = plan_for(spec)
    if plan.schedule != "heads_n":
        raise SystemExit(f"timeline_cell: {spec.key} plans {plan.tag}; the stamps are in the heads_n schedule only")
    kernel = mlagen.jit.compile(spec, plan, tuned=False)
    lens = seqlens_for(args.batch, args.s_q, args.s_k)
    inputs = make_inputs(spec, args.batch, args.s_q, lens, sets=1)[0]
    ring, chunks = ring_geometry(spec, plan, args.ring, args.tile_chunks)
    parts = kernel.num_parts(args.s_q)
    words, parts = run_stamped(kernel, inputs, args.batch, args.s_q, parts * TL_NT * chunks * TL_FIELDS)
    stamps = words.reshape(parts, TL_NT, chunks, TL_FIELDS)
    recorded = int((stamps[:, :, 0, 1] != 0).any(axis=1).sum())
    if recorded == 0:
        raise SystemExit(f"timeline_cell: no CTA reached tile {TL_T0 + TL_NT - 1} of its share: the window needs "
                         f"at least {TL_T0 + TL_NT} tiles per CTA (batch 128 at s_k 8192 or more; or stamp the "
                         f"first tiles: TL_T0=0 TL_NT=4 for both tools/timeline_patch.py and this runner)")
    print(f"{spec.key} plan {plan.tag}, batch {args.batch}, s_k {args.s_k}: {recorded}/{parts} CTAs stamped "
          f"tiles {TL_T0}..{TL_T0 + TL_NT - 1}; ring {ring} chunks of {chunks} per tile")
    print(format_rows(summarise(stamps, ring, args.mhz), args.mhz))
    for line in spans(stamps):
        print(line)
    if args.save:
        np.save(args.save, stamps)
        print(f"raw stamps (parts, tiles, chunks, fields) saved to {args.save}")
    print("per ring chunk of a tile: median TMA wait for its slot, median issue -> release (cycles)")
    for c, wait, trip in by_chunk(stamps):
        print(f"  chunk {c}: wait {wait:8.0f}   round trip {trip:8.0f}")


if __name__ == "__main__":
    main()
