"""Phase timestamps of the seesaw decode kernel: where a CTA's time goes (exploratory, GPU).

Needs the templates with phase-stamps.patch applied (next to this file):

    cp -r templates /tmp/stamped && patch -d /tmp/stamped -p1 < docs/perf/experiments/2026-11-23/phase-stamps.patch
    MLAGEN_TEMPLATE_DIR=/tmp/stamped python docs/perf/experiments/2026-11-23/phase_times.py

The stamped kernel writes globaltimer values (ns) past the end of the split-KV partial-output
workspace, which this script allocates larger; slot numbers are in NAMES.
"""
import os, statistics, torch
import mlagen.jit
from mlagen.bench import cell_spec, make_inputs, seqlens_for
from mlagen.plan import plan_for
from mlagen.runtime import Workspace

CELLS = [(16, 1, 1, 32768), (128, 1, 1, 32768), (16, 1, 128, 4096), (128, 1, 128, 4096)]
NAMES = {12: "c:consume entry", 13: "c:before load_q", 14: "c:q issued", 15: "c:q arrived", 0: "entry", 1: "work", 2: "p:first tma", 3: "p:done", 4: "c:q loaded", 9: "c:1st pair start", 5: "c:1st pair end",
         6: "c:seg0 tiles done", 7: "c:seg0 finished", 8: "c:end"}
for h, sq, b, sk in CELLS:
    spec = cell_spec(dict(h_q=h, s_q=sq, page=64))
    k = mlagen.jit.compile(spec, plan_for(spec), tuned=False)
    lens = seqlens_for(b, sq, sk)
    q, c, bt, ln = make_inputs(spec, b, sq, lens, sets=1)[0]
    parts = k.num_parts(sq)
    mb = k.m_blocks(sq)
    ws = k.workspace(b, sq, q.device, parts)
    need = ws.partial_out.numel()
    ctas = parts * spec.kv_heads * mb
    po = torch.zeros(need + ctas * 16 * 2 + 16, dtype=torch.float32, device="cuda")
    ws = Workspace(partial_out=po, partial_lse=ws.partial_lse, pieces=ws.pieces)
    for _ in range(5):
        k(q, c, bt, ln, workspace=ws, validate=False)
    torch.cuda.synchronize()
    st, en = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    st.record()
    for _ in range(20):
        k(q, c, bt, ln, workspace=ws, validate=False)
    en.record(); torch.cuda.synchronize()
    call_us = st.elapsed_time(en) / 20 * 1000
    po[need:].zero_()
    torch.cuda.synchronize()
    k(q, c, bt, ln, workspace=ws, validate=False)
    torch.cuda.synchronize()
    ts = po[need:need + ctas * 32].view(torch.int64).view(ctas, 16).cpu()
    t0 = ts[:, 0].min().item()
    rel = lambda j: [(ts[i, j].item() - t0) / 1000 for i in range(ctas) if ts[i, j].item() > 0]
    print(f"== h{h} s_q{sq} b{b} s_k{sk}: parts {parts} ctas {ctas} call {call_us:.1f} us, tiles/cta "
          f"{statistics.median(ts[:, 10].tolist()):.0f} (max {ts[:, 10].max().item()}), segs max {ts[:, 11].max().item()}")
    ends = [ts[i, 8].item() for i in range(ctas) if ts[i, 8].item() > 0]
    print(f"   decode kernel span (first entry -> last consumer end): {(max(ends) - t0) / 1000:.1f} us")
    for j in (0, 1, 12, 13, 14, 15, 2, 4, 9, 5, 6, 7, 3, 8):
        v = rel(j)
        if v:
            print(f"   {NAMES[j]:>18s}: min {min(v):7.2f} med {statistics.median(v):7.2f} max {max(v):7.2f} us")
    # per-CTA durations
    d = lambda a, b_: [(ts[i, b_].item() - ts[i, a].item()) / 1000 for i in range(ctas) if ts[i, a].item() > 0 and ts[i, b_].item() > 0]
    for a, b_, nm in ((0, 1, "entry->work"), (1, 4, "work->q"), (4, 9, "q->pair0"), (9, 5, "pair0"), (5, 6, "rest of seg0"), (6, 7, "finish seg0"), (7, 8, "other segs"), (1, 2, "p: work->1st tma")):
        v = d(a, b_)
        if v:
            print(f"   {nm:>18s}: med {statistics.median(v):7.2f} max {max(v):7.2f} us")
