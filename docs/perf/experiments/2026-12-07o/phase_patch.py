"""Where a heads_n decode kernel's fixed time goes: %globaltimer stamps at the phases of each CTA.

    cp -r templates /tmp/ph && python docs/perf/experiments/2026-12-07o/phase_patch.py /tmp/ph
    MLAGEN_TEMPLATE_DIR=/tmp/ph MLAGEN_CACHE_DIR=/tmp/c-ph python docs/perf/experiments/2026-12-07o/phase_probe.py 1,1 1,32768

On top of tools/timeline_patch.py (window = each CTA's first tile, TL_T0=0 TL_NT=1), the kernel writes
%globaltimer (ns) into free fields of that window's record (chunk, field):
  (4, 7) kernel entry (every CTA, before anything)       (5, 7) work split found (find_work returned)
  (1, 7) TMA warp starts (timeline_patch)                 (2, 7) TMA warp's last copy issued (timeline_patch)
  (6, 7) MMA warpgroup: first segment's Q in shared memory and the consumers' barrier passed
  (7, 7) MMA warpgroup: every chunk of the CTA's first tile full
  (1, 6) MMA warpgroup: every chunk of its latest tile full (so: the last tile)
  (3, 6) MMA warpgroup: last P.V done, the segment's epilogue (finish_columns) starts
  (8, 7) MMA warpgroup: consume returned (its stores issued)
A measurement aid for one experiment (the 16-bit heads_n schedule, a tile of at least 9 chunks), never
part of a product kernel.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TL_T0", "0")
os.environ.setdefault("TL_NT", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[4] / "tools"))
import timeline_patch  # noqa: E402
from timeline_patch import _rep  # noqa: E402

# (chunk, field) of window tile 0 per phase, shared with phase_probe.py
SLOTS = {"entry": (4, 7), "work": (5, 7), "tma_start": (1, 7), "last_copy": (2, 7), "q_ready": (6, 7),
         "first_full": (7, 7), "last_full": (1, 6), "epilogue": (3, 6), "end": (8, 7)}


def patch(template_dir: Path) -> None:
    if (timeline_patch.TL_T0, timeline_patch.TL_NT) != (0, 1):
        raise SystemExit("phase_patch: needs TL_T0=0 TL_NT=1 (the window is each CTA's first tile)")
    timeline_patch.patch(template_dir)
    p = template_dir / "sm90" / "_heads_n.py.j2"
    s = p.read_text()
    # (self.stamp_at, the store into window tile 0's record, comes with timeline_patch)
    s = _rep(s, "        m_block, kv_head, part = cute.arch.block_idx()\n",
             "        m_block, kv_head, part = cute.arch.block_idx()\n        t_entry = _globaltimer()\n",
             tool="phase_patch")
    s = _rep(s, "        work = self.find_work(mLens, batch, num_parts, part, s_work, s_scratch)\n",
             "        work = self.find_work(mLens, batch, num_parts, part, s_work, s_scratch)\n"
             "        t_work = _globaltimer()\n", tool="phase_patch")
    s = _rep(s, "        tl = (ws_o_ptr, part, num_parts, m_blocks)\n",
             "        tl = (ws_o_ptr, part, num_parts, m_blocks)\n"
             "        if warp_idx == 0 and m_block == 0 and kv_head == 0:\n"
             "            if cute.arch.lane_idx() == 0:\n"
             f"                self.stamp_at(tl, {SLOTS['entry'][0]}, 7, t_entry)\n"
             f"                self.stamp_at(tl, {SLOTS['work'][0]}, 7, t_work)\n", tool="phase_patch")
    mine = "ctid == 0 and m_block == 0 and kv_head == 0"
    s = _rep(s, "            cute.arch.barrier(barrier_id=BAR_CONSUMERS, number_of_threads=CONSUMER_THREADS)\n\n"
                "            acc_o.fill(0.0)\n",
             "            cute.arch.barrier(barrier_id=BAR_CONSUMERS, number_of_threads=CONSUMER_THREADS)\n"
             f"            if {mine} and seq == 0:\n"
             f"                self.stamp_at(tl, {SLOTS['q_ready'][0]}, 7, _globaltimer())\n\n"
             "            acc_o.fill(0.0)\n", tool="phase_patch")
    s = _rep(s, "                warpgroup.fence()\n                for c in cutlass.range_constexpr(TILE_CHUNKS):\n"
                "                    slot, phase = self.ring_slot(chunk0 + c)\n                    for k in",
             f"                if {mine}:\n"
             "                    t_full = _globaltimer()\n"
             f"                    self.stamp_at(tl, {SLOTS['last_full'][0]}, 6, t_full)\n"
             "                    if seq == 0:\n"
             f"                        self.stamp_at(tl, {SLOTS['first_full'][0]}, 7, t_full)\n"
             "                warpgroup.fence()\n                for c in cutlass.range_constexpr(TILE_CHUNKS):\n"
             "                    slot, phase = self.ring_slot(chunk0 + c)\n                    for k in",
             tool="phase_patch")
    s = _rep(s, "            self.finish_columns(acc_o, tOcO,",
             f"            if {mine}:\n"
             f"                self.stamp_at(tl, {SLOTS['epilogue'][0]}, 6, _globaltimer())\n"
             "            self.finish_columns(acc_o, tOcO,", tool="phase_patch")
    s = _rep(s, "            tile0 = Int32(0)\n\n    @cute.jit\n    def finish_columns(",
             "            tile0 = Int32(0)\n"
             f"        if {mine}:\n"
             f"            self.stamp_at(tl, {SLOTS['end'][0]}, 7, _globaltimer())\n\n"
             "    @cute.jit\n    def finish_columns(", tool="phase_patch")
    p.write_text(s)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    patch(Path(sys.argv[1]))
    print(f"phase stamps added to {sys.argv[1]}/sm90/_heads_n.py.j2")
