"""Randomized model check of the heads_n chunk-ring barrier protocol (mbarrier parity semantics).

Roles run as generators under a random scheduler; TMA copies land at random later steps. Every
read checks the buffer holds what the protocol says it should; a parity wait that passes while
the barrier is two phases behind is caught by those reads.
"""
import random
import sys


class Bar:
    def __init__(self, count):
        self.count, self.pending, self.tx, self.phase = count, count, 0, 0

    def arrive(self, tx=0):
        self.tx += tx
        self.pending -= 1
        assert self.pending >= 0, "too many arrivals"
        self._maybe_complete()

    def complete_tx(self, n):
        self.tx -= n
        assert self.tx >= 0, "tx underflow"
        self._maybe_complete()

    def _maybe_complete(self):
        if self.pending == 0 and self.tx == 0:
            self.phase += 1
            self.pending = self.count

    def passes(self, parity):  # mbarrier.try_wait.parity
        return (self.phase & 1) != parity


def run(T, RING, DEQ=7, LAT=8, EXTRA=1, RPW=1, SS=3, seed=0, release_before_ring=False, converter_waits_ring=False):
    rng = random.Random(seed)
    TILE = LAT + EXTRA
    ring_full = [Bar(1) for _ in range(RING)]
    ring_empty = [Bar(1) for _ in range(RING)]
    raw_full = [Bar(1) for _ in range(DEQ * RPW)]
    raw_empty = [Bar(1) for _ in range(DEQ * RPW)]
    sc_full = [Bar(1) for _ in range(SS)]
    sc_empty = [Bar(LAT) for _ in range(SS)]
    ring = [None] * RING
    raw = [None] * (DEQ * RPW)
    sc = [None] * SS
    inflight = []  # (land_step, kind, index, value, bar, nbytes)
    errors = []

    def slot(g):
        return g % RING, (g // RING) & 1

    def wait(bar, parity):
        while not bar.passes(parity):
            yield

    def tma(kind, idx, val, bar, nbytes=1):
        bar.arrive(tx=nbytes)
        inflight.append([rng.randint(1, 60), kind, idx, val, bar, nbytes])

    def producer():
        for t in range(T):
            s = t % SS
            yield from wait(sc_empty[s], ((t // SS) & 1) ^ 1)
            tma("sc", s, t, sc_full[s])
            for c in range(LAT):
                q = t * LAT + c
                n = q // DEQ
                st = (q % DEQ) * RPW + n % RPW
                if not converter_waits_ring:
                    sl, ph = slot(t * TILE + c)
                    yield from wait(ring_empty[sl], ph ^ 1)
                yield from wait(raw_empty[st], ((n // RPW) & 1) ^ 1)
                tma("raw", st, q, raw_full[st])
                yield
            for e in range(EXTRA):
                g = t * TILE + LAT + e
                sl, ph = slot(g)
                yield from wait(ring_empty[sl], ph ^ 1)
                tma("ring", sl, g, ring_full[sl])
                yield

    def converter(w):
        nth = 0
        for t in range(T):
            s = t % SS
            c = (w - (t * LAT) % DEQ + DEQ) % DEQ
            while c < LAT:
                q = t * LAT + c
                st = w * RPW + nth % RPW
                yield from wait(raw_full[st], (nth // RPW) & 1)
                yield from wait(sc_full[s], (t // SS) & 1)
                yield
                if raw[st] != q:
                    errors.append(f"converter {w} read staging {st} = {raw[st]}, wanted chunk {q}")
                if sc[s] != t:
                    errors.append(f"converter {w} read scales {s} = {sc[s]}, wanted tile {t}")
                if release_before_ring:
                    raw_empty[st].arrive(); sc_empty[s].arrive()
                g = t * TILE + c
                sl, ph = slot(g)
                if converter_waits_ring:
                    yield from wait(ring_empty[sl], ph ^ 1)
                yield
                ring[sl] = g
                yield
                if raw[st] != q and not release_before_ring:
                    errors.append(f"converter {w}: staging {st} overwritten while converting chunk {q}")
                if not release_before_ring:
                    raw_empty[st].arrive(); sc_empty[s].arrive()
                ring_full[sl].arrive()
                nth += 1
                c += DEQ

    def consumer():
        for t in range(T):
            g0 = t * TILE
            for c in range(TILE):
                sl, ph = slot(g0 + c)
                yield from wait(ring_full[sl], ph)
            for c in range(TILE):
                sl, _ = slot(g0 + c)
                if ring[sl] != g0 + c:
                    errors.append(f"consumer tile {t} chunk {c}: ring {sl} holds {ring[sl]}")
            yield
            for e in range(EXTRA):
                sl, _ = slot(g0 + LAT + e)
                ring_empty[sl].arrive()
            for _ in range(rng.randint(0, 5)):
                yield
            for m in range(LAT):
                sl, _ = slot(g0 + m)
                if ring[sl] != g0 + m:
                    errors.append(f"consumer tile {t} P.V chunk {m}: ring {sl} holds {ring[sl]}")
                ring_empty[sl].arrive()
                yield

    roles = [producer(), consumer()] + [converter(w) for w in range(DEQ)]
    step = 0
    while roles:
        step += 1
        for f in inflight[:]:
            f[0] -= 1
            if f[0] <= 0:
                inflight.remove(f)
                _, kind, idx, val, bar, nb = f
                {"sc": sc, "raw": raw, "ring": ring}[kind][idx] = val
                bar.complete_tx(nb)
        r = rng.choice(roles)
        try:
            next(r)
        except StopIteration:
            roles.remove(r)
        if step > 2_000_000:
            return ["deadlock"]
    return errors


if __name__ == "__main__":
    for name, kw in [("branch (TMA waits ring, release after conversion)", {}),
                     ("release right after loads", dict(release_before_ring=True)),
                     ("converters wait the ring (earlier version)", dict(converter_waits_ring=True, release_before_ring=True)),
                     ("no RoPE chunk, ring 22", dict(EXTRA=0, RING=22)),
                     ("raw_stages 2", dict(RPW=2))]:
        bad = 0
        first = None
        ring = kw.pop("RING", 19)
        for seed in range(int(sys.argv[1]) if len(sys.argv) > 1 else 200):
            e = run(T=12, RING=ring, seed=seed, **kw)
            if e:
                bad += 1
                first = first or e[0]
        print(f"{name}: {bad} bad runs; first: {first}")
