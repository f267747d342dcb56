"""The dynamic-tiles split (dynamic-tiles.patch): static ranges plus interior parts' joint ranges cover every tile once.

A model of find_work / segment / dynamic_span in plain Python, over drawn batches and part counts; run it as
`python docs/perf/experiments/2026-12-07n/balance_model.py` (prints ok).
"""
import random

BN = 64


def model(lens, P, widen=0):
    """Assert the split covers every tile of ``lens`` once over ``P`` parts (``widen``: a deliberately wrong
    joint range, one that must fail)."""
    tiles = [max((l + BN - 1) // BN, 1) for l in lens]
    total = sum(tiles); parts = min(P, total)
    cum = [0]
    for t in tiles: cum.append(cum[-1] + t)
    def part_of(t): return ((t + 1) * parts + total - 1) // total - 1
    covered = {}
    for p in range(parts):
        g0, g_last = p * total // parts, (p + 1) * total // parts - 1
        fr = max(i for i in range(len(lens)) if cum[i] <= g0)
        lr = max(i for i in range(len(lens)) if cum[i] <= g_last)
        for r in range(fr, lr + 1):
            req_tiles = (lens[r] + BN - 1) // BN
            cum_r = cum[r]
            t0 = g0 - cum_r if r == fr else 0
            seg_end = (g_last + 1 - cum_r) if r == lr else max(req_tiles, 1)
            tile_end = min(seg_end, req_tiles)
            fp, lp = part_of(cum_r), part_of(cum_r + max(req_tiles, 1) - 1)
            ip0 = fp if fp * total // parts == cum_r else fp + 1
            ip1 = lp if (lp + 1) * total // parts == cum_r + req_tiles else lp - 1
            n_int = ip1 - ip0 + 1
            lo, hi = ip0 * total // parts - cum_r, (ip1 + 1) * total // parts - cum_r + widen
            dyn = fr == lr and n_int >= 2
            if dyn:
                assert ip0 <= p <= ip1, (p, ip0, ip1)
                for t in range(lo, hi):
                    covered.setdefault((r, t), set()).add(("dyn", r, lo, hi))
            else:
                for t in range(t0, tile_end):
                    covered.setdefault((r, t), set()).add(("static", p))
    # every real tile exactly once (a dynamic range counted once however many CTAs share it)
    for r, l in enumerate(lens):
        for t in range((l + BN - 1) // BN):
            owners = covered.get((r, t), set())
            assert len(owners) == 1, (r, t, owners, lens, P)
    assert all(t < (lens[r] + BN - 1) // BN for (r, t) in covered)


if __name__ == "__main__":
    random.seed(0)
    for _ in range(3000):
        b = random.choice([1, 1, 2, 3, 4, 8, 17, 128])
        lens = [random.choice([0, 1, 63, 64, 65, random.randint(0, 200000)]) for _ in range(b)]
        model(lens, random.choice([1, 2, 5, 37, 132, 264]))
    print("ok")
