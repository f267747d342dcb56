"""python seesaw_q_registers.py DEST MODE [SRC]: copy of templates/ with Q chunks as register A operands in the seesaw's Q.K^T.
MODE: 'chunks:8' / 'chunks:7,8' (those Q chunks loaded into registers once per segment, correct) or
'zero' (ablation, wrong by design: every k-step's A from Q chunk 0 in registers, so Q.K^T reads no
Q from shared memory; it tests whether the kernel's time follows its shared-memory traffic)."""
import shutil, sys
from pathlib import Path
dest, mode = Path(sys.argv[1]), sys.argv[2]
src = Path(sys.argv[3]) if len(sys.argv) > 3 else Path(__file__).resolve().parents[4] / "templates"
if dest.exists(): shutil.rmtree(dest)
shutil.copytree(src, dest)
p = dest / "sm90" / "_seesaw.py.j2"; s = p.read_text()
def rep(old, new, n=1):
    global s
    assert s.count(old) == n, (s.count(old), old[:90]); s = s.replace(old, new)
if mode == "zero":
    chunks = (0,)
    const = "Q_REG_CHUNKS = (0,)  # ABLATION qkrs0: every Q.K^T step's A from Q chunk 0 in registers\nQ_REG_ZERO = True\n"
else:
    chunks = tuple(int(c) for c in mode.split(":")[1].split(","))
    const = (f"# Q chunks held in registers as wgmma's A operand (loaded once per segment): each saves\n"
             f"# 8 KB of shared-memory reads per tile\nQ_REG_CHUNKS = {chunks!r}\nQ_REG_ZERO = False\n")
rep("RESCALE_SLACK = 8.0\n", "RESCALE_SLACK = 8.0\n" + const)
rep("""        tSrQ = qk_mma.make_fragment_A(thr_qk.partition_A(sQ))
""", """        tSrQ_ss = qk_mma.make_fragment_A(thr_qk.partition_A(sQ))
        qk_rs = sm90_utils.make_trivial_tiled_mma(
            DTYPE, DTYPE, OperandMajorMode.K, OperandMajorMode.K, Float32, (1, 1, 1), (BLOCK_M, BLOCK_N),
            a_source=warpgroup.OperandSource.RMEM)
        thr_rs = qk_rs.get_slice(wtid)
        tSsQ_rs = thr_rs.partition_A(sQ)
        rQ = qk_rs.make_fragment_A(thr_rs.partition_shape_A((BLOCK_M, 64 * max(len(Q_REG_CHUNKS), 1))))
        qk_rs.set(warpgroup.Field.ACCUMULATE, True)
        tSrQ = (tSrQ_ss, qk_rs, rQ)
""")
# load the register chunks once Q has arrived (every segment)
rep("""            cute.arch.barrier(barrier_id=BAR_CONSUMERS, number_of_threads=CONSUMER_THREADS)
            acc_o.fill(0.0)
""", """            cute.arch.barrier(barrier_id=BAR_CONSUMERS, number_of_threads=CONSUMER_THREADS)
            if tile0 < tile_end:
                for j in cutlass.range_constexpr(len(Q_REG_CHUNKS)):
                    for k in cutlass.range_constexpr(4):
                        cute.autovec_copy(tSsQ_rs[None, None, Q_REG_CHUNKS[j] * 4 + k], rQ[None, None, j * 4 + k])
            acc_o.fill(0.0)
""")
rep("""    def qk(self, qk_mma, tSrQ, tSrK, acc_s, pipes, first_state, second_state, buf: cutlass.Constexpr):
        \"\"\"S = Q.K^T for the tile in ``buf``, starting on the chunk group that arrives first.\"\"\"
""", """    def qk(self, qk_mma, tSrQ, tSrK, acc_s, pipes, first_state, second_state, buf: cutlass.Constexpr):
        \"\"\"S = Q.K^T for the tile in ``buf``, starting on the chunk group that arrives first.\"\"\"
        tSrQ, qk_rs, rQ = tSrQ
""")
rep("""                    cute.gemm(qk_mma, acc_s, tSrQ[None, None, step], tSrK[None, None, step, buf], acc_s)
""", """                    if const_expr(Q_REG_ZERO):
                        cute.gemm(qk_rs, acc_s, rQ[None, None, k], tSrK[None, None, step, buf], acc_s)
                    elif const_expr(chunks[i] in Q_REG_CHUNKS):
                        j = Q_REG_CHUNKS.index(chunks[i])
                        cute.gemm(qk_rs, acc_s, rQ[None, None, j * 4 + k], tSrK[None, None, step, buf], acc_s)
                    else:
                        cute.gemm(qk_mma, acc_s, tSrQ[None, None, step], tSrK[None, None, step, buf], acc_s)
""")
p.write_text(s)
print("wrote", dest, mode)
