"""Does compute-sanitizer's racecheck see the ordering that ``bar.arrive`` -> ``bar.sync`` gives?

PTX (``barrier{.cta}``): "The barrier{.cta}.sync or barrier{.cta}.red or barrier{.cta}.arrive
instruction guarantees that when the barrier completes, prior memory accesses requested by this
thread are performed relative to all threads participating in the barrier." So a warpgroup that
writes shared memory and then arrives on a named barrier, and a warpgroup that syncs on it and
then reads, do not race. The seesaw schedule hands data between its warpgroups this way; this
probe runs the pattern alone, in one small kernel, so that racecheck's verdict on it can be read
without the rest of a decode kernel around it.

    compute-sanitizer --tool racecheck python tools/racecheck_probe.py --handoff arrive
    compute-sanitizer --tool racecheck python tools/racecheck_probe.py --handoff sync    # both sides sync
    compute-sanitizer --tool racecheck python tools/racecheck_probe.py --handoff none    # a real race

After the handoff rounds, every mode ends with an exchange ordered by ``bar.sync`` alone (each
thread stores a value, both warpgroups sync, each reads another's): racecheck's verdict on it
shows whether the earlier arrive-based handoffs change how racecheck sees a plain barrier.

Each run also checks the values read (every element, against what was stored) and exits non-zero
when one differs (in ``none`` mode only the exchange counts).
"""

import argparse
import sys

THREADS = 256          # two warpgroups: 0 writes, 1 reads
ROUNDS = 8             # the handoff repeats through the same buffer, as across the tiles of a kernel
BAR_FULL = 1           # writer -> reader: the buffer holds this round's values
BAR_EMPTY = 2          # reader -> writer: the reader is done with the buffer
BAR_SWAP = 3           # both warpgroups sync (bar.sync only) around a final exchange


def build(handoff: str):
    import cutlass
    import cutlass.cute as cute
    from cutlass import Int32

    @cute.kernel
    def kernel(out: cute.Tensor):
        tidx, _, _ = cute.arch.thread_idx()
        smem = cutlass.utils.SmemAllocator()
        buf = smem.allocate_tensor(Int32, cute.make_layout((128,)), byte_alignment=16)
        swap = smem.allocate_tensor(Int32, cute.make_layout((THREADS,)), byte_alignment=16)
        for r in cutlass.range(ROUNDS, unroll=1):
            if tidx < 128:
                if cutlass.const_expr(handoff != "none"):
                    if r > 0:
                        cute.arch.barrier(barrier_id=BAR_EMPTY, number_of_threads=THREADS)
                # a neighbour's element, so the write and the later read are by different threads
                buf[(tidx + 1) % 128] = r * 1000 + tidx
                if cutlass.const_expr(handoff == "arrive"):
                    cute.arch.barrier_arrive(barrier_id=BAR_FULL, number_of_threads=THREADS)
                elif cutlass.const_expr(handoff == "sync"):
                    cute.arch.barrier(barrier_id=BAR_FULL, number_of_threads=THREADS)
            else:
                if cutlass.const_expr(handoff != "none"):
                    cute.arch.barrier(barrier_id=BAR_FULL, number_of_threads=THREADS)
                out[r, tidx - 128] = buf[tidx - 128]
                if r < ROUNDS - 1:
                    if cutlass.const_expr(handoff == "arrive"):
                        cute.arch.barrier_arrive(barrier_id=BAR_EMPTY, number_of_threads=THREADS)
                    elif cutlass.const_expr(handoff == "sync"):
                        cute.arch.barrier(barrier_id=BAR_EMPTY, number_of_threads=THREADS)
        # Then, whatever the handoff mode, an exchange ordered by bar.sync alone: each thread
        # stores one value, all sync, each reads the value of the thread 128 away.
        swap[tidx] = 7777 + tidx
        cute.arch.barrier(barrier_id=BAR_SWAP, number_of_threads=THREADS)
        out[ROUNDS + tidx // 128, tidx % 128] = swap[(tidx + 128) % THREADS]

    @cute.jit
    def launch(out: cute.Tensor):
        kernel(out).launch(grid=[1, 1, 1], block=[THREADS, 1, 1], smem=2048)

    return launch


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--handoff", choices=("arrive", "sync", "none"), default="arrive",
                    help="arrive: writer arrives, reader syncs (the seesaw's pattern); sync: both sync; "
                         "none: no barrier (a real race, racecheck's positive control)")
    args = ap.parse_args()

    import torch
    import cutlass.cute as cute
    from cutlass.cute.runtime import from_dlpack

    out = torch.full((ROUNDS + 2, 128), -1, dtype=torch.int32, device="cuda")
    launch = build(args.handoff)
    compiled = cute.compile(launch, from_dlpack(out, assumed_align=16))
    compiled(from_dlpack(out, assumed_align=16))
    torch.cuda.synchronize()
    writer = (torch.arange(128, device="cuda") - 1) % 128   # thread that wrote element i
    want = torch.arange(ROUNDS, device="cuda")[:, None] * 1000 + writer[None, :]
    bad = int((out[:ROUNDS] != want).sum())
    swapped = 7777 + (torch.arange(THREADS, device="cuda") + 128) % THREADS
    bad_swap = int((out[ROUNDS:].flatten() != swapped).sum())
    print(f"racecheck_probe: handoff={args.handoff}: {ROUNDS} rounds x 128 values, {bad} differ from what was "
          f"written; exchange after bar.sync: {bad_swap} of {THREADS} differ")
    return 1 if bad_swap or (bad and args.handoff != "none") else 0


if __name__ == "__main__":
    sys.exit(main())
