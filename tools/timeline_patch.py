"""Add clock64 stamps of every KV chunk's trip through the heads_n pipeline to a copy of the templates.

    cp -r templates /tmp/tl && python tools/timeline_patch.py /tmp/tl
    MLAGEN_TEMPLATE_DIR=/tmp/tl python tools/timeline_cell.py --h-q 16 --s-k 16384 --cache fp8_e4m3

The stamped kernel writes, for part p's tiles TL_T0 .. TL_T0 + TL_NT - 1 (counted from the CTA's first
tile) and each of their ring chunks, the SM's clock64 at six points into the split-KV workspace,
past the region the kernel and the combine use (the runner allocates the room):
  0 TMA warp, before its wait for the chunk's ring slot    1 TMA warp, slot free, copy issued next
  2 converting warp, the fp8 chunk has landed (fp8 only)   3 converting warp, chunk converted (fp8)
  4 MMA warpgroup (thread 0), chunk seen full              5 MMA warpgroup (thread 0), chunk released
  6 with stamp 1 of chunk 0: %globaltimer (ns), so the SM clock in the window is measured, not assumed
and, in window tile 0 of every part (a CTA of any length), field 7 of chunk 1 / chunk 2: %globaltimer
when the TMA warp starts its work / after its last copy, for the CTAs' spans and the kernel's makespan,
and field 7 of chunk 3: the SM the CTA ran on (%smid).
The stamps are a measurement aid, never part of a product kernel: the edits apply to a copy (also
on top of the ablation patches of docs/perf/experiments/, e.g. ablate-headsn-stream.patch).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# the window: steady state by default; TL_T0=0 TL_NT=4 (environment, read by the patch and the runner alike) stamps
# a CTA's first tiles instead, for where a short segment's time goes (pipeline fill, first Q, first tiles)
TL_T0, TL_NT, TL_FIELDS = int(os.environ.get("TL_T0", 64)), int(os.environ.get("TL_NT", 32)), 8


# the clock readers a stamped template gets (shared with tools/timeline_seesaw.py)
CLOCK_HELPERS = '''def _clock64():
    return Int64(llvm.inline_asm(T.i64(), [], "mov.u64 $0, %clock64;", "=l", has_side_effects=True))


def _globaltimer():
    return Int64(llvm.inline_asm(T.i64(), [], "mov.u64 $0, %globaltimer;", "=l", has_side_effects=True))


def _smid():
    return Int32(llvm.inline_asm(T.i32(), [], "mov.u32 $0, %smid;", "=r", has_side_effects=True))
'''


def _rep(s: str, old: str, new: str, count: int = 1, tool: str = "timeline_patch") -> str:
    n = s.count(old)
    if n != count:
        raise SystemExit(f"{tool}: expected {count} of {old[:70]!r}, found {n}")
    return s.replace(old, new)


def patch(template_dir: Path) -> None:
    p = template_dir / "sm90" / "_heads_n.py.j2"
    s = p.read_text()
    s = _rep(s, "def _any_thread(flag, barrier_id, threads):", f'''TL_T0, TL_NT, TL_FIELDS = {TL_T0}, {TL_NT}, {TL_FIELDS}  # timeline stamps (tools/timeline_patch.py)


{CLOCK_HELPERS}

def _any_thread(flag, barrier_id, threads):''')
    # a stamp helper on the class, next to ring_slot
    s = _rep(s, '''    @cute.jit
    def ring_slot(self, chunk):''', '''    @cute.jit
    def stamp(self, tl, seq, chunk, field):
        """Timeline: clock64 into part tl[1]'s record of (tile seq, chunk), if in the window."""
        ws_o_ptr, part, num_parts, m_blocks = tl
        if seq >= TL_T0 and seq < TL_T0 + TL_NT:
            words = cute.recast_ptr(ws_o_ptr, dtype=Int64)
            base = (num_parts * 2 * H_KV * m_blocks * BLOCK_M * LATENT) // 2
            idx = base + ((part * TL_NT + seq - TL_T0) * TILE_CHUNKS + chunk) * TL_FIELDS + field
            cute.make_tensor(words + idx, cute.make_layout((1,)))[0] = _clock64()
            if field == 1 and chunk == 0:
                cute.make_tensor(words + idx + 5, cute.make_layout((1,)))[0] = _globaltimer()

    @cute.jit
    def stamp_at(self, tl, chunk, field, value):
        """Timeline: ``value`` into (chunk, field) of part tl[1]'s window tile 0 (any CTA has that record)."""
        ws_o_ptr, part, num_parts, m_blocks = tl
        words = cute.recast_ptr(ws_o_ptr, dtype=Int64)
        base = (num_parts * 2 * H_KV * m_blocks * BLOCK_M * LATENT) // 2
        idx = base + (part * TL_NT * TILE_CHUNKS + chunk) * TL_FIELDS + field
        cute.make_tensor(words + idx, cute.make_layout((1,)))[0] = value

    @cute.jit
    def stamp_span(self, tl, which):
        """Timeline: %globaltimer into field 7 of part tl[1]'s window tile 0, chunk 1 + which (0 start, 1 end)."""
        self.stamp_at(tl, 1 + which, 7, _globaltimer())
        if const_expr(which == 0 and TILE_CHUNKS > 3):
            # and the SM it runs on (field 7 of chunk 3, where a tile has one): is a slow CTA's SM slow on every call?
            self.stamp_at(tl, 3, 7, Int64(_smid()))

    @cute.jit
    def ring_slot(self, chunk):''')
    # the kernel hands (ws_o_ptr, part, num_parts, m_blocks) to every role (m-block 0 and kv head 0 stamp)
    s = _rep(s, '''        if wg_idx < PRODUCER_WGS:
            cute.arch.setmaxregister_decrease(PRODUCER_REGS)''', '''        tl = (ws_o_ptr, part, num_parts, m_blocks)
        if wg_idx < PRODUCER_WGS:
            cute.arch.setmaxregister_decrease(PRODUCER_REGS)''')
    # every role's signature and call take `tl` too
    threaded = (
        ("kv_head, work)\n            else:\n                self.convert(sRaw, sScale, sKw, bars, mLens, work,",
         "kv_head, work, tl)\n            else:\n                self.convert(sRaw, sScale, sKw, bars, mLens, work, tl,"),
        ("                             num_pages, s_q, m_block, kv_head, work)\n",
         "                             num_pages, s_q, m_block, kv_head, work, tl)\n"),
        ("tma_atom_q, mQ, sQ, q_pipe, bt_ptr, mLens, bt_stride, num_pages, s_q, m_block, kv_head, work):",
         "tma_atom_q, mQ, sQ, q_pipe, bt_ptr, mLens, bt_stride, num_pages, s_q, m_block, kv_head, work,\n                tl):"),
        ("                s_q, m_block, kv_head, work):\n        \"\"\"Per segment its Q rows",
         "                s_q, m_block, kv_head, work, tl):\n        \"\"\"Per segment its Q rows"),
        ("lse_ptr, ws_o_ptr, ws_lse_ptr, meta_ptr, s_q, m_block, m_blocks, kv_head, part, work)\n",
         "lse_ptr, ws_o_ptr, ws_lse_ptr, meta_ptr, s_q, m_block, m_blocks, kv_head, part, work, tl)\n"),
        ("                lse_ptr, ws_o_ptr, ws_lse_ptr, meta_ptr, s_q, m_block, m_blocks, kv_head, part, work):",
         "                lse_ptr, ws_o_ptr, ws_lse_ptr, meta_ptr, s_q, m_block, m_blocks, kv_head, part, work, tl):"),
    )
    for old, new in threaded:
        s = _rep(s, old, new)
    # TMA warp: around each ring-slot wait (latent, RoPE, and the 16-bit path's chunks)
    for chunk_expr in ("c", "LAT_CHUNKS + e"):
        old = (f"                    slot, phase = self.ring_slot(seq * TILE_CHUNKS + {chunk_expr})\n"
               "                    cute.arch.mbarrier_wait(ring_empty + slot, phase ^ 1)\n")
        new = (f"                    slot, phase = self.ring_slot(seq * TILE_CHUNKS + {chunk_expr})\n"
               f"                    if cute.arch.lane_idx() == 0 and m_block == 0 and kv_head == 0:\n"
               f"                        self.stamp(tl, seq, {chunk_expr}, 0)\n"
               "                    cute.arch.mbarrier_wait(ring_empty + slot, phase ^ 1)\n"
               f"                    if cute.arch.lane_idx() == 0 and m_block == 0 and kv_head == 0:\n"
               f"                        self.stamp(tl, seq, {chunk_expr}, 1)\n")
        s = _rep(s, old, new, count=s.count(old) if chunk_expr == "c" else 1)
    # TMA warp: its first and last moments (globaltimer), for each CTA's span
    s = _rep(s, "        seq = Int32(0)  # tiles issued so far\n",
             "        seq = Int32(0)  # tiles issued so far\n"
             "        if cute.arch.lane_idx() == 0 and m_block == 0 and kv_head == 0:\n"
             "            self.stamp_span(tl, 0)\n")
    s = _rep(s, "            tile0 = Int32(0)\n\n{% if c.fp8 %}\n    # ----",
             "            tile0 = Int32(0)\n"
             "        if cute.arch.lane_idx() == 0 and m_block == 0 and kv_head == 0:\n"
             "            self.stamp_span(tl, 1)\n\n{% if c.fp8 %}\n    # ----")
    # converting warps: pass the tile's seq down; stamp after the waits and before the ring-full arrive
    if "def convert(" in s:
        s = _rep(s, "    def convert(self, sRaw, sScale, sKw, bars, mLens, work, cwarp):",
                 "    def convert(self, sRaw, sScale, sKw, bars, mLens, work, tl, cwarp):")
        s = _rep(s, "                                       seq_len - tile * BLOCK_N, lane)",
                 "                                       seq_len - tile * BLOCK_N, lane, tl, seq)")
        s = _rep(s, "                      valid_rows, lane):", "                      valid_rows, lane, tl, seq):")
        s = _rep(s, "\n        cute.arch.mbarrier_wait(scale_full + s_stage, s_phase)\n",
                 "\n        cute.arch.mbarrier_wait(scale_full + s_stage, s_phase)\n"
                 "        m_block, kv_head, _ = cute.arch.block_idx()\n"
                 "        if lane == 0 and m_block == 0 and kv_head == 0:\n"
                 "            self.stamp(tl, seq, c, 2)\n")
        s = _rep(s, "\n        cute.arch.mbarrier_arrive(ring_full + slot)\n",
                 "\n        if lane == 0 and m_block == 0 and kv_head == 0:\n"
                 "            self.stamp(tl, seq, c, 3)\n"
                 "        cute.arch.mbarrier_arrive(ring_full + slot)\n")
    # MMA warpgroup: each chunk seen full, and each release
    s = _rep(s, "                    slot, phase = self.ring_slot(chunk0 + c)\n"
                "                    cute.arch.mbarrier_wait(ring_full + slot, phase)\n",
             "                    slot, phase = self.ring_slot(chunk0 + c)\n"
             "                    cute.arch.mbarrier_wait(ring_full + slot, phase)\n"
             "                    if ctid == 0 and m_block == 0 and kv_head == 0:\n"
             "                        self.stamp(tl, seq, c, 4)\n")
    old = ("                    slot, phase = self.ring_slot(chunk0 + LAT_CHUNKS + e)\n"
           "                    cute.arch.mbarrier_arrive(ring_empty + slot)\n")
    s = _rep(s, old, "                    slot, phase = self.ring_slot(chunk0 + LAT_CHUNKS + e)\n"
                     "                    if ctid == 0 and m_block == 0 and kv_head == 0:\n"
                     "                        self.stamp(tl, seq, LAT_CHUNKS + e, 5)\n"
                     "                    cute.arch.mbarrier_arrive(ring_empty + slot)\n")
    old = ("                    slot, phase = self.ring_slot(chunk0 + m)\n"
           "                    cute.arch.mbarrier_arrive(ring_empty + slot)\n")
    s = _rep(s, old, "                    slot, phase = self.ring_slot(chunk0 + m)\n"
                     "                    if ctid == 0 and m_block == 0 and kv_head == 0:\n"
                     "                        self.stamp(tl, seq, m, 5)\n"
                     "                    cute.arch.mbarrier_arrive(ring_empty + slot)\n")
    p.write_text(s)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    patch(Path(sys.argv[1]))
    print(f"timeline stamps added to {sys.argv[1]}/sm90/_heads_n.py.j2")
