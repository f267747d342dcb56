"""Where a heads_n decode kernel's time goes, phase by phase, per CTA (stamps of phase_patch.py).

    cp -r templates /tmp/ph && python docs/perf/experiments/2026-12-07o/phase_patch.py /tmp/ph
    MLAGEN_TEMPLATE_DIR=/tmp/ph MLAGEN_CACHE_DIR=/tmp/c-ph \
        python docs/perf/experiments/2026-12-07o/phase_probe.py --out DIR 1,1 1,32768 128,4096

Each cell is batch,s_k (h_q 16, s_q 1, page 64, bf16; the bench's lengths, normal(s_k, s_k/2); s_k 1 gives
one-token requests). Per cell, over CALLS stamped calls: every phase's time from the earliest kernel entry
of that call (median over calls of the median / p90 / max over the CTAs that work), the spread of the CTAs'
entries, and what lies between phases (the MMA warpgroup's view). Raw stamps go to DIR/phases-<cell>.npz.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TL_T0", "0")
os.environ.setdefault("TL_NT", "1")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[3] / "tools"))
sys.path.insert(0, str(HERE))
from phase_patch import SLOTS  # noqa: E402
from timeline_cell import ring_geometry, run_stamped  # noqa: E402
from timeline_patch import TL_FIELDS, TL_NT  # noqa: E402

ORDER = ("entry", "work", "tma_start", "q_ready", "first_full", "last_copy", "last_full", "epilogue", "end")


def phases(stamps: np.ndarray) -> dict[str, np.ndarray]:
    """Per phase, one %globaltimer value per part (0 where the part did not record it)."""
    return {name: stamps[:, 0, c, f].astype(np.int64) for name, (c, f) in SLOTS.items()}


def summarise_call(ph: dict[str, np.ndarray]) -> dict[str, tuple[float, float, float]]:
    """(median, p90, max) in us from the call's earliest entry, over the parts that ran a tile."""
    entries = ph["entry"][ph["entry"] != 0]
    t0 = entries.min()
    working = ph["first_full"] != 0
    out = {"entry (all CTAs)": _stats((entries - t0) / 1e3)}
    for name in ORDER:
        v = ph[name][working]
        v = v[v != 0]
        if v.size:
            out[name] = _stats((v - t0) / 1e3)
    return out


def _stats(x: np.ndarray) -> tuple[float, float, float]:
    return float(np.median(x)), float(np.percentile(x, 90)), float(x.max())


def main() -> None:
    import mlagen.jit
    from mlagen.bench import cell_spec, make_inputs, seqlens_for
    from mlagen.plan import plan_for

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cells", nargs="+", help="batch,s_k")
    ap.add_argument("--calls", type=int, default=8)
    ap.add_argument("--out", default=".")
    args = ap.parse_args()
    tdir = Path(os.environ.get("MLAGEN_TEMPLATE_DIR", "templates"))
    if "t_entry = _globaltimer()" not in (tdir / "sm90" / "_heads_n.py.j2").read_text():
        raise SystemExit("phase_probe: set MLAGEN_TEMPLATE_DIR to templates stamped by phase_patch.py")
    spec = cell_spec(dict(h_q=16, s_q=1, page=64, cache=None))
    plan = plan_for(spec)
    kernel = mlagen.jit.compile(spec, plan, tuned=False)
    ring, chunks = ring_geometry(spec, plan, None, None)
    if chunks < 9:
        raise SystemExit(f"phase_probe: a tile of {chunks} chunks has no room for the phase stamps")
    for cell in args.cells:
        batch, s_k = (int(x) for x in cell.split(","))
        lens = seqlens_for(batch, 1, s_k)
        inputs = make_inputs(spec, batch, 1, lens, sets=1)[0]
        parts = kernel.num_parts(1)
        calls, raw = [], []
        for _ in range(args.calls):
            words, parts = run_stamped(kernel, inputs, batch, 1, parts * TL_NT * chunks * TL_FIELDS)
            st = words.reshape(parts, TL_NT, chunks, TL_FIELDS)
            raw.append(st[:, 0, :, 6:].copy())
            calls.append(summarise_call(phases(st)))
        np.savez(Path(args.out) / f"phases-b{batch}-s{s_k}.npz", stamps=np.array(raw))
        working = int((phases(st)["first_full"] != 0).sum())
        print(f"== h_q 16, batch {batch}, s_k {s_k} (mean length {np.mean(lens):.0f}): {working} of {parts} CTAs "
              f"run tiles; us from the call's first kernel entry, median over {args.calls} calls of "
              f"(median / p90 / max over those CTAs)")
        for name in calls[0]:
            vals = np.array([c[name] for c in calls if name in c])
            med = np.median(vals, axis=0)
            print(f"  {name:18s} {med[0]:8.2f} {med[1]:8.2f} {med[2]:8.2f}")


if __name__ == "__main__":
    main()
