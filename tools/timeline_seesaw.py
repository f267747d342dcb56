"""Where a pair of KV tiles' time goes in the seesaw schedule: clock64 stamps per pair, per role.

    python tools/timeline_seesaw.py patch /tmp/tls          # a stamped copy of templates/ in /tmp/tls
    MLAGEN_TEMPLATE_DIR=/tmp/tls python tools/timeline_seesaw.py run --h-q 128 --s-k 16384

The stamped kernel writes, for pairs TL_P0 .. TL_P0 + TL_NP - 1 of every part's m-block-0, KV-head-0 CTA
(counted from the CTA's first pair, over all its segments), the SM's clock64 at the points below into
the split-KV workspace past the region the kernel and the combine use (the runner allocates it):

  TMA warp        0/1 a-left: before its slot wait / copies issued    2/3 a-rest    4/5 b-right
                  6/7 b-rest                                          8 %globaltimer with 1
  warpgroup A     10 Q.K^T of a called   11 a-left seen full   12 a-rest seen full   13 S_a done
                  14 a's P stored, P.V_a (left) issued   15 B's stats of b seen (S1)
                  16 P.V_a done, a-left released   17 b's P seen (P1)   18 P.V_b (left) done
  warpgroup B     20 Q.K^T of b called   21 b-right seen full   22 b-rest seen full   23 S_b done
                  24 A's stats of a seen (S0)   25 a's P seen, P.V_a (right) issued   26 b's P stored
                  27 P.V_a done, a-rest released   28 P.V_b (right) done

The runner prints, over all stamped pairs, the median and 10th/90th percentile of each step: the pair's
pace, the TMA warp's slot waits, each group's trip from copy issue to "seen full" (the load latency a
warpgroup actually sees: zero wait means the data was there first), and each warpgroup's steps, so
it shows whether the pair waits for data, for the other warpgroup, or for the tensor pipe. The stamps
are a measurement aid applied to a copy of the templates, never part of a product kernel; on top of an
ablation or variant patch too (apply it to the copy first).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timeline_cell import run_stamped  # noqa: E402
from timeline_patch import CLOCK_HELPERS  # noqa: E402
from timeline_patch import _rep as _rep_in  # noqa: E402

TL_P0, TL_NP, TL_FIELDS = 24, 32, 32

# (name, from field, to field[, to the next pair]): the steps the runner reports
STEPS = (
    ("pair pace (A's Q.K^T call to the next)", 10, 10, 1),
    ("TMA: slot wait + issue, a-left", 0, 1, 0),
    ("TMA: slot wait + issue, a-rest", 2, 3, 0),
    ("TMA: slot wait + issue, b-right", 4, 5, 0),
    ("TMA: slot wait + issue, b-rest", 6, 7, 0),
    ("load: a-left issued -> A sees it full", 1, 11, 0),
    ("load: a-rest issued -> A sees it full", 3, 12, 0),
    ("load: b-right issued -> B sees it full", 5, 21, 0),
    ("load: b-rest issued -> B sees it full", 7, 22, 0),
    ("A: Q.K^T call -> a-left full (data wait)", 10, 11, 0),
    ("A: a-left full -> a-rest full", 11, 12, 0),
    ("A: a-rest full -> S_a done", 12, 13, 0),
    ("A: softmax, P stored, P.V_a issued", 13, 14, 0),
    ("A: -> B's stats (S1)", 14, 15, 0),
    ("A: -> P.V_a done", 15, 16, 0),
    ("A: -> b's P (P1)", 16, 17, 0),
    ("A: P.V_b", 17, 18, 0),
    ("A: P.V_b done -> next Q.K^T call", 18, 10, 1),
    ("B: Q.K^T call -> b-right full (data wait)", 20, 21, 0),
    ("B: b-right full -> b-rest full", 21, 22, 0),
    ("B: b-rest full -> S_b done", 22, 23, 0),
    ("B: -> A's stats (S0)", 23, 24, 0),
    ("B: -> a's P, P.V_a issued", 24, 25, 0),
    ("B: softmax of b, P stored", 25, 26, 0),
    ("B: -> P.V_a done", 26, 27, 0),
    ("B: -> P.V_b done", 27, 28, 0),
    ("B: P.V_b done -> next Q.K^T call", 28, 20, 1),
    ("A's S_a done -> B's S_b done", 13, 23, 0),
)


def _rep(s: str, old: str, new: str, count: int = 1) -> str:
    return _rep_in(s, old, new, count, tool="timeline_seesaw")


def patch(template_dir: Path) -> None:
    """Add the stamps to ``template_dir``'s seesaw template (a copy of templates/)."""
    p = template_dir / "sm90" / "_seesaw.py.j2"
    s = p.read_text()
    s = _rep(s, "def _warp_any(flag):", f'''TL_P0, TL_NP, TL_FIELDS = {TL_P0}, {TL_NP}, {TL_FIELDS}  # timeline stamps (tools/timeline_seesaw.py)


{CLOCK_HELPERS}

def _warp_any(flag):''')
    s = _rep(s, '''    @cute.jit
    def qk(self, qk_mma, sQ, sK, wtid, acc_s, pipes, first_state, second_state, buf: cutlass.Constexpr):''', '''    @cute.jit
    def stamp(self, tl, field: cutlass.Constexpr):
        """Timeline: clock64 into field ``field`` of pair tl[4]'s record of part tl[1], if the caller is
        the stamping thread (tl[5]) and the pair is in the window."""
        ws_o_ptr, part, num_parts, m_blocks, pseq, on = tl
        if on:
            if pseq >= TL_P0 and pseq < TL_P0 + TL_NP:
                words = cute.recast_ptr(ws_o_ptr, dtype=Int64)
                base = (num_parts * 2 * H_KV * m_blocks * BLOCK_M * LATENT) // 2
                idx = base + (part * TL_NP + pseq - TL_P0) * TL_FIELDS + field
                cute.make_tensor(words + idx, cute.make_layout((1,)))[0] = _clock64()
                if field == 1:
                    cute.make_tensor(words + idx + 7, cute.make_layout((1,)))[0] = _globaltimer()

    @cute.jit
    def qk(self, qk_mma, sQ, sK, wtid, acc_s, pipes, first_state, second_state, buf: cutlass.Constexpr, tl):''')
    s = _rep(s, '''            pipes[2 * buf + grp].consumer_wait(first_state if grp == 0 else second_state)
''', '''            pipes[2 * buf + grp].consumer_wait(first_state if grp == 0 else second_state)
            self.stamp(tl, (11 if buf == 0 else 21) + grp)
''')
    # TMA warp: a pair counter and stamps around each group's load
    # (the walk of the TMA warp: the fp8 converting warps walk the tiles with the same first lines)
    s = _rep(s, '''        req = first_req
        tile0 = first_tile
        while req < last_req or (req == last_req and tile0 < end_tile):
            seq_len = mLens[req]
            req_tiles = (seq_len + BLOCK_N - 1) // BLOCK_N
            seg_end = end_tile
            if req < last_req:
                seg_end = cutlass.max(req_tiles, 1)
            tile_end = cutlass.min(seg_end, req_tiles)
{% if c.q_tma %}''', '''        pseq = Int32(0)  # pairs issued so far
        tl_on = (cute.arch.lane_idx() == 0) & (m_block == 0) & (kv_head == 0)
        req = first_req
        tile0 = first_tile
        while req < last_req or (req == last_req and tile0 < end_tile):
            seq_len = mLens[req]
            req_tiles = (seq_len + BLOCK_N - 1) // BLOCK_N
            seg_end = end_tile
            if req < last_req:
                seg_end = cutlass.max(req_tiles, 1)
            tile_end = cutlass.min(seg_end, req_tiles)
{% if c.q_tma %}''')
    for name, buf, grp, f0 in (("p0a", 0, 0, 0), ("p0b", 0, 1, 2), ("p1a", 1, 0, 4), ("p1b", 1, 1, 6)):
        tile = "tile_a" if buf == 0 else "tile_a + 1"
        pipe = 2 * buf + grp
        indent = " " * (16 if buf == 0 else 20)
        head = f"{indent}{name} = self.load_group(tma_atom, tKgK, tKsK, pipes[{pipe}], {name}, mBT, req, seq_len, {tile}, {buf}, {grp},"
        s = _rep(s, head, f"{indent}self.stamp(tl + (pseq, tl_on), {f0})\n{head}")
        tail_old = f"{head}\n{indent}{' ' * 22}kv_head, num_pages, cta_rank)\n"
        s = _rep(s, tail_old, f"{tail_old}{indent}self.stamp(tl + (pseq, tl_on), {f0 + 1})\n")
    s = _rep(s, '''                                          kv_head, num_pages, cta_rank)
                    self.stamp(tl + (pseq, tl_on), 7)
            req += 1''', '''                                          kv_head, num_pages, cta_rank)
                    self.stamp(tl + (pseq, tl_on), 7)
                pseq += 1
            req += 1''')
    # the kernel hands (ws_o_ptr, part, num_parts, m_blocks) to both roles
    s = _rep(s, '''        if wg_idx == 0:
            cute.arch.setmaxregister_decrease(PRODUCER_REGS)''', '''        tl = (ws_o_ptr, part, num_parts, m_blocks)
        if wg_idx == 0:
            cute.arch.setmaxregister_decrease(PRODUCER_REGS)''')
    # (the 16-bit producer's call and signature: the fp8 ones sit in {% if c.fp8 %} blocks beside them)
    s = _rep(s, '''                             num_pages, s_q, m_block, kv_head, work)
{% endif %}
        else:''', '''                             num_pages, s_q, m_block, kv_head, work, tl)
{% endif %}
        else:''')
    s = _rep(s, '''                         part, work)
{% if plan.cluster > 1 %}
        # no CTA exits''', '''                         part, work, tl)
{% if plan.cluster > 1 %}
        # no CTA exits''')
    s = _rep(s, '''                s_q, m_block, kv_head, work):
{% endif %}
        first_req, first_tile, last_req, end_tile, cum_first, cum_last, total, parts = work
{% if plan.cluster > 1 %}
        cta_rank''', '''                s_q, m_block, kv_head, work, tl):
{% endif %}
        first_req, first_tile, last_req, end_tile, cum_first, cum_last, total, parts = work
{% if plan.cluster > 1 %}
        cta_rank''')
    s = _rep(s, '''out_ptr, lse_ptr, ws_o_ptr, ws_lse_ptr, meta_ptr, s_q, m_block, m_blocks, kv_head, part, work):
        first_req, first_tile, last_req, end_tile, cum_first, cum_last, total, parts = work
        tidx, _, _ = cute.arch.thread_idx()''', '''out_ptr, lse_ptr, ws_o_ptr, ws_lse_ptr, meta_ptr, s_q, m_block, m_blocks, kv_head, part, work, tl):
        first_req, first_tile, last_req, end_tile, cum_first, cum_last, total, parts = work
        tidx, _, _ = cute.arch.thread_idx()
        pseq = Int32(0)  # pairs consumed so far''')
    # consumers: the pair counter, and `tl` with it into both warpgroups' pair functions
    s = _rep(s, '''                        has_b, s_q, m_block, wtid)
                else:''', '''                        has_b, s_q, m_block, wtid, tl + (pseq, (wtid == 0) & (m_block == 0) & (kv_head == 0)))
                else:''')
    s = _rep(s, '''                        has_b, s_q, m_block, wtid)
{% if c.q_tma %}''', '''                        has_b, s_q, m_block, wtid, tl + (pseq, (wtid == 0) & (m_block == 0) & (kv_head == 0)))
                pseq += 1
{% if c.q_tma %}''')
    s = _rep(s, '''               m_block, wtid):
        self.qk(qk_mma, sQ, sK, wtid, acc_s, pipes, c0a, c0b, 0)
''', '''               m_block, wtid, tl):
        self.stamp(tl, 10)
        self.qk(qk_mma, sQ, sK, wtid, acc_s, pipes, c0a, c0b, 0, tl)
        self.stamp(tl, 13)
''')
    s = _rep(s, '''        cute.arch.barrier_arrive(barrier_id=BAR_P0, number_of_threads=CONSUMER_THREADS)
        self.pv(pv_ss, acc_o, sPA, sVt, wtid, 0)
        # B continues the running max with tile b: move O and the sums to it once P.V is done
        cute.arch.barrier(barrier_id=BAR_S1, number_of_threads=CONSUMER_THREADS)
''', '''        cute.arch.barrier_arrive(barrier_id=BAR_P0, number_of_threads=CONSUMER_THREADS)
        self.pv(pv_ss, acc_o, sPA, sVt, wtid, 0)
        self.stamp(tl, 14)
        # B continues the running max with tile b: move O and the sums to it once P.V is done
        cute.arch.barrier(barrier_id=BAR_S1, number_of_threads=CONSUMER_THREADS)
        self.stamp(tl, 15)
''')
    s = _rep(s, '''        warpgroup.wait_group(0)
        pipes[0].consumer_release(c0a)
''', '''        warpgroup.wait_group(0)
        self.stamp(tl, 16)
        pipes[0].consumer_release(c0a)
''')
    s = _rep(s, '''        cute.arch.barrier(barrier_id=BAR_P1, number_of_threads=CONSUMER_THREADS)
        if has_b:
            pipes[3].consumer_wait(c1b)   # b's left values and b's P
            self.pv(pv_ss, acc_o, sP1, sVt, wtid, 1)
            warpgroup.wait_group(0)
''', '''        cute.arch.barrier(barrier_id=BAR_P1, number_of_threads=CONSUMER_THREADS)
        self.stamp(tl, 17)
        if has_b:
            pipes[3].consumer_wait(c1b)   # b's left values and b's P
            self.pv(pv_ss, acc_o, sP1, sVt, wtid, 1)
            warpgroup.wait_group(0)
            self.stamp(tl, 18)
''')
    s = _rep(s, '''               m_block, wtid):
        tile_b = tile_a + 1''', '''               m_block, wtid, tl):
        tile_b = tile_a + 1''')
    s = _rep(s, '''        if has_b:
            self.qk(qk_mma, sQ, sK, wtid, acc_s, pipes, c1a, c1b, 1)
''', '''        if has_b:
            self.stamp(tl, 20)
            self.qk(qk_mma, sQ, sK, wtid, acc_s, pipes, c1a, c1b, 1, tl)
            self.stamp(tl, 23)
''')
    s = _rep(s, '''        cute.arch.barrier(barrier_id=BAR_S0, number_of_threads=CONSUMER_THREADS)
        max_log2 = cute.make_rmem_tensor((2,), Float32)''', '''        cute.arch.barrier(barrier_id=BAR_S0, number_of_threads=CONSUMER_THREADS)
        self.stamp(tl, 24)
        max_log2 = cute.make_rmem_tensor((2,), Float32)''')
    s = _rep(s, '''        pipes[1].consumer_wait(c0b)   # a's right values
        self.pv(pv_ss, acc_o, sPA, sVt, wtid, 0)
''', '''        pipes[1].consumer_wait(c0b)   # a's right values
        self.pv(pv_ss, acc_o, sPA, sVt, wtid, 0)
        self.stamp(tl, 25)
''')
    s = _rep(s, '''            cute.arch.barrier(barrier_id=BAR_B, number_of_threads=WG_THREADS)
''', '''            cute.arch.barrier(barrier_id=BAR_B, number_of_threads=WG_THREADS)
            self.stamp(tl, 26)
''')
    s = _rep(s, '''        warpgroup.wait_group(0)
        pipes[1].consumer_release(c0b)
''', '''        warpgroup.wait_group(0)
        self.stamp(tl, 27)
        pipes[1].consumer_release(c0b)
''')
    s = _rep(s, '''            self.pv(pv_ss, acc_o, sP1, sVt, wtid, 1)
            warpgroup.wait_group(0)
            pipes[2].consumer_release(c1a)
''', '''            self.pv(pv_ss, acc_o, sP1, sVt, wtid, 1)
            warpgroup.wait_group(0)
            self.stamp(tl, 28)
            pipes[2].consumer_release(c1a)
''')
    p.write_text(s)


def summarise(stamps: np.ndarray) -> list[tuple[str, int, float, float, float]]:
    """Per step of STEPS: (name, samples, median, p10, p90) in cycles from stamps (parts, pairs, fields);
    a zero stamp is "not recorded" (a CTA with fewer pairs, a pair without tile b)."""
    rows = []
    for name, a, b, nxt in STEPS:
        x = stamps[:, : stamps.shape[1] - nxt, a]
        y = stamps[:, nxt:, b]
        ok = (x != 0) & (y != 0)
        vals = (y - x)[ok].astype(np.float64)
        if vals.size:
            rows.append((name, int(vals.size), float(np.median(vals)), float(np.percentile(vals, 10)),
                         float(np.percentile(vals, 90))))
    return rows


def clock_mhz(stamps: np.ndarray) -> float | None:
    """The SM clock over the window, from clock64 and %globaltimer both taken at field 1."""
    clk, ns = stamps[:, :, 1], stamps[:, :, 8]
    full = ((clk != 0) & (ns != 0)).all(axis=1)
    if not full.any():
        return None
    dt = (ns[full, -1] - ns[full, 0]).astype(np.float64)
    return float(np.median((clk[full, -1] - clk[full, 0]) / np.maximum(dt, 1) * 1e3))


def format_rows(rows, mhz: float) -> str:
    lines = [f"{'step':44s} {'n':>6s} {'median':>8s} {'p10':>8s} {'p90':>8s}   (SM cycles; ns at {mhz:.0f} MHz)"]
    for name, n, med, p10, p90 in rows:
        lines.append(f"{name:44s} {n:6d} {med:8.0f} {p10:8.0f} {p90:8.0f}   {med * 1e3 / mhz:7.0f} ns")
    return "\n".join(lines)


def run(argv: list[str]) -> None:
    import mlagen.jit
    from mlagen.bench import cell_spec, make_inputs, seqlens_for
    from mlagen.plan import parse_knobs, plan_for

    ap = argparse.ArgumentParser(prog="timeline_seesaw.py run")
    ap.add_argument("--h-q", type=int, default=128)
    ap.add_argument("--s-q", type=int, default=1)
    ap.add_argument("--s-k", type=int, default=16384)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--page", type=int, default=64)
    ap.add_argument("--plan", default="", help="knob=value[,...] for plan_for (the seesaw must result)")
    ap.add_argument("--save", default=None, help="also save the raw stamps here (numpy .npy)")
    args = ap.parse_args(argv)
    tdir = os.environ.get("MLAGEN_TEMPLATE_DIR")
    if not tdir or "TL_P0" not in (Path(tdir) / "sm90" / "_seesaw.py.j2").read_text():
        raise SystemExit("timeline_seesaw: set MLAGEN_TEMPLATE_DIR to templates stamped by `timeline_seesaw.py patch`")
    spec = cell_spec(dict(h_q=args.h_q, s_q=args.s_q, page=args.page, cache=None))
    plan = plan_for(spec, **parse_knobs(args.plan))
    if plan.schedule != "seesaw":
        raise SystemExit(f"timeline_seesaw: {spec.key} plans {plan.tag}; the stamps are in the seesaw schedule only")
    kernel = mlagen.jit.compile(spec, plan, tuned=False)
    lens = seqlens_for(args.batch, args.s_q, args.s_k)
    inputs = make_inputs(spec, args.batch, args.s_q, lens, sets=1)[0]
    parts = kernel.num_parts(args.s_q)
    # the stamps go past the split-KV partial outputs, whose size the template computes as below
    m_blocks = -(-args.s_q * spec.heads_per_kv // plan.block_m)
    held = kernel.workspace(args.batch, args.s_q, inputs[0].device, parts).partial_out.numel()
    if held != parts * 2 * spec.kv_heads * m_blocks * plan.block_m * spec.latent:
        raise SystemExit(f"timeline_seesaw: the workspace holds {held} floats, not what the stamps assume")
    words, parts = run_stamped(kernel, inputs, args.batch, args.s_q, parts * TL_NP * TL_FIELDS)
    stamps = words.reshape(parts, TL_NP, TL_FIELDS)
    recorded = int((stamps[:, :, 10] != 0).any(axis=1).sum())
    if recorded == 0:
        raise SystemExit(f"timeline_seesaw: no CTA reached pair {TL_P0 + TL_NP - 1}: the window needs "
                         f"{2 * (TL_P0 + TL_NP)} tiles per CTA (batch 128 at s_k 8192 or more)")
    mhz = clock_mhz(stamps) or 1980.0
    print(f"{spec.key} plan {plan.tag}, batch {args.batch}, s_k {args.s_k}: {recorded}/{parts} CTAs stamped pairs "
          f"{TL_P0}..{TL_P0 + TL_NP - 1}; SM clock over the window {mhz:.0f} MHz")
    print(format_rows(summarise(stamps), mhz))
    if args.save:
        np.save(args.save, stamps)
        print(f"raw stamps (parts, pairs, fields) saved to {args.save}")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["patch"] and len(argv) == 2:
        patch(Path(argv[1]))
        print(f"timeline stamps added to {argv[1]}/sm90/_seesaw.py.j2")
    elif argv[:1] == ["run"]:
        run(argv[1:])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
