// A C entry point to FlashMLA's sm90 dense decode, so `mlagen bench --flashmla LIB` can time the
// hand-written kernel beside ours on the same GPU, inputs and timing protocol. It is built from a
// FlashMLA checkout by build.sh (nothing of FlashMLA is kept in this repository) and mirrors what
// FlashMLA's own torch entry point (csrc/api/dense_decode.h) does for one call: scheduling
// metadata, the split-KV kernel, the combine kernel. Torch-free, so it builds without a GPU.
#include <cmath>
#include <cstdint>
#include <cuda_runtime_api.h>
#include <cutlass/bfloat16.h>
#include <cutlass/half.h>

#include "params.h"
#include "sm90/decode/dense/splitkv_mla.h"
#include "smxx/decode/combine/combine.h"
#include "smxx/decode/get_decoding_sched_meta/get_decoding_sched_meta.h"

extern "C" {

// Same sizing rule as FlashMLA's entry point; the caller allocates the scratch from it.
int fmla_num_sm_parts(int num_sms, int s_q, int h_q, int h_k) {
    int rows = s_q * h_q / h_k;
    int m_blocks = (rows + 63) / 64;
    int parts = num_sms / h_k / m_blocks;
    return parts > 1 ? parts : 1;
}

int fmla_sched_meta_ints() { return int(sizeof(DecodingSchedMeta) / sizeof(int)); }

// q: [b, s_q, h_q, d] contiguous; kcache: [num_blocks, page, h_k, d] contiguous (page must be 64);
// out: [b, s_q, h_q, d_v] contiguous; lse: [b, h_k, s_q * h_q / h_k] float (FlashMLA's internal order);
// meta: [num_sm_parts, fmla_sched_meta_ints()] int; num_splits: [b + 1] int;
// lse_accum: [(b + num_sm_parts) * h_k * s_q * h_q / h_k] float; o_accum: that times d_v.
// Returns 0, or a nonzero code for an argument FlashMLA does not take.
int fmla_decode(int is_fp16, int b, int s_q, int h_q, int h_k, int d, int d_v, int num_blocks, int page,
                int causal, float scale, void *q, void *kcache, void *out, float *lse,
                int *block_table, int64_t block_table_stride, int *seqlens, void *meta, int num_sm_parts,
                int *num_splits, float *lse_accum, float *o_accum, cudaStream_t stream) {
    if (page != 64 || d_v != 512 || (d != 576 && d != 512) || h_q % h_k != 0) return 1;
    if (s_q == 1) causal = 0;
    const int heads_per_hk = h_q / h_k;
    const int q_seq_per_hk = s_q * heads_per_hk;

    GetDecodeSchedMetaParams sched = {
        b, s_q, 64, 5, -1, -1, nullptr, nullptr, seqlens,
        (DecodingSchedMeta *)meta, num_splits, num_sm_parts, stream};
    smxx::decode::run_get_decoding_sched_meta_kernel(sched);

    DenseAttnDecodeParams p;
    p.b = b;
    p.s_q = s_q;
    p.q_seq_per_hk = q_seq_per_hk;
    p.seqlens_k_ptr = seqlens;
    p.h_q = h_q;
    p.h_k = h_k;
    p.num_blocks = num_blocks;
    p.q_head_per_hk = heads_per_hk;
    p.is_causal = causal != 0;
    p.d = d;
    p.d_v = d_v;
    p.scale_softmax = scale;
    p.scale_softmax_log2 = float(scale * M_LOG2E);
    p.q_ptr = q;
    p.k_ptr = kcache;
    p.o_ptr = out;
    p.softmax_lse_ptr = lse;
    // q viewed as [b, q_seq_per_hk, h_k, d] (FlashMLA's regrouping; a plain view when h_k == 1)
    p.q_batch_stride = int64_t(s_q) * h_q * d;
    p.q_row_stride = int64_t(h_k) * d;
    p.q_head_stride = d;
    p.k_batch_stride = int64_t(page) * h_k * d;
    p.k_row_stride = int64_t(h_k) * d;
    p.k_head_stride = d;
    // out written as [b, h_k, q_seq_per_hk, d_v]
    p.o_batch_stride = int64_t(h_k) * q_seq_per_hk * d_v;
    p.o_row_stride = d_v;
    p.o_head_stride = int64_t(q_seq_per_hk) * d_v;
    p.block_table = block_table;
    p.block_table_batch_stride = block_table_stride;
    p.page_block_size = page;
    p.tile_scheduler_metadata_ptr = (DecodingSchedMeta *)meta;
    p.num_sm_parts = num_sm_parts;
    p.num_splits_ptr = num_splits;
    p.total_num_splits = b + num_sm_parts;
    p.softmax_lseaccum_ptr = lse_accum;
    p.oaccum_ptr = o_accum;
    p.stream = stream;
    if (is_fp16) sm90::run_flash_splitkv_mla_kernel<cutlass::half_t>(p);
    else sm90::run_flash_splitkv_mla_kernel<cutlass::bfloat16_t>(p);

    const int rows = h_k * q_seq_per_hk;
    CombineParams c = {
        b, s_q, h_q, d_v,
        lse, out,
        rows, h_q,
        h_q * s_q * d_v, h_q * d_v, d_v,
        lse_accum, o_accum,
        rows, h_q,
        h_q * s_q * d_v, h_q * d_v, d_v,
        (DecodingSchedMeta *)meta, num_splits, num_sm_parts,
        nullptr, stream};
    if (is_fp16) smxx::decode::run_flash_mla_combine_kernel<cutlass::half_t>(c);
    else smxx::decode::run_flash_mla_combine_kernel<cutlass::bfloat16_t>(c);
    return int(cudaGetLastError());
}

}  // extern "C"
