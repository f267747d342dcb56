// Read bandwidth of paged KV loads by bulk copies, one CTA per SM: how much of the decode kernels'
// load pattern (pages in block-table order, a page split into several copies, one mbarrier wait per
// copy or per page, one or more issuing warps) the DRAM/L2/TMA path takes by itself.
//
//   nvcc -O3 -arch=sm_90a -o /tmp/pages tools/membench/pages.cu && /tmp/pages
//
// Each CTA reads its share of the pages (random order: a fixed permutation, as a block table gives;
// or in address order) into `stages` page buffers of shared memory. A page is read by the copies of a
// split (the fp8 heads_n tile: 8 x 4 KB latent + 8 KB RoPE + 1 KB scales = 41,984 B; the bf16 tile:
// 9 x 8 KB; or one copy), and the issuing warp waits either once per page or once per copy.
#include <algorithm>
#include <random>
#include <vector>

#include "common.cuh"

struct Split {
  int n;
  int bytes[16];
};

// pages: the page ids, CTA c's issuer w reads pages[(c * issuers + w) * per_issuer ...]
__global__ void read_pages(const char* buf, const int* pages, int per_issuer, int page_bytes, Split split,
                           int stages, int issuers, int wait_per_copy, unsigned long long* sink) {
  extern __shared__ __align__(1024) char smem[];
  __shared__ uint64_t bars[8 * 16 * 8];  // (issuer, copy, stage)
  int w = threadIdx.x / 32;
  if (threadIdx.x % 32 != 0 || w >= issuers) return;
  const int* mine = pages + (size_t)(blockIdx.x * issuers + w) * per_issuer;
  uint32_t s0 = (uint32_t)__cvta_generic_to_shared(smem) + w * stages * page_bytes;
  uint32_t b0 = (uint32_t)__cvta_generic_to_shared(bars) + w * 16 * 8 * 8;
  int nbar = wait_per_copy ? split.n : 1;
  for (int i = 0; i < nbar * stages; ++i) mbar_init(b0 + 8 * i, 1);
  asm volatile("fence.mbarrier_init.release.cluster;");
  unsigned long long acc = 0;
  for (int k = 0; k < per_issuer + stages; ++k) {
    if (k >= stages) {
      int j = k - stages, s = j % stages;
      for (int b = 0; b < nbar; ++b) mbar_wait(b0 + 8 * (s * nbar + b), (j / stages) & 1);
      acc += s;
    }
    if (k < per_issuer) {
      int s = k % stages;
      const char* page = buf + (size_t)mine[k] * page_bytes;
      int off = 0;
      if (!wait_per_copy) mbar_expect_tx(b0 + 8 * s, page_bytes);
      for (int c = 0; c < split.n; ++c) {
        uint32_t bar = b0 + 8 * (s * nbar + (wait_per_copy ? c : 0));
        if (wait_per_copy) mbar_expect_tx(bar, split.bytes[c]);
        bulk_g2s(s0 + s * page_bytes + off, page + off, split.bytes[c], bar);
        off += split.bytes[c];
      }
    }
  }
  if (acc == 0x12345) *sink = acc;
}

struct Case {
  const char* name;
  int page_bytes;
  int split_kind;  // 0: one copy, 1: fp8 heads_n tile, 2: bf16 tile (9 x 8 KB)
  int random;
  int issuers, stages, wait_per_copy;
};

int main() {
  Bench bench;
  const int sms = bench.sms;
  const size_t total = Bench::kTotal;
  cudaFuncSetAttribute(read_pages, cudaFuncAttributeMaxDynamicSharedMemorySize, 200 * 1024);
  Case cases[] = {
      {"fp8 tile, random, 1 warp, wait/copy (the fp8 kernel's pattern)", 41984, 1, 1, 1, 4, 1},
      {"fp8 tile, random, 1 warp, wait/copy, 3 stages", 41984, 1, 1, 1, 3, 1},
      {"fp8 tile, random, 1 warp, wait/copy, 2 stages", 41984, 1, 1, 1, 2, 1},
      {"fp8 tile, random, 1 warp, wait/copy, 1 stage", 41984, 1, 1, 1, 1, 1},
      {"fp8 tile, random, 1 warp, wait/page", 41984, 1, 1, 1, 4, 0},
      {"fp8 tile, address order, 1 warp, wait/copy", 41984, 1, 0, 1, 4, 1},
      {"fp8 page as 1 copy, random, 1 warp", 41984, 0, 1, 1, 4, 0},
      {"fp8 tile, random, 2 warps x 2 stages, wait/copy", 41984, 1, 1, 2, 2, 1},
      {"fp8 tile, random, 4 warps x 1 stage, wait/copy", 41984, 1, 1, 4, 1, 1},
      {"fp8 page as 1 copy, random, 4 warps x 1 stage", 41984, 0, 1, 4, 1, 0},
      {"bf16 tile, random, 1 warp, wait/copy (the bf16 kernel's pattern)", 73728, 2, 1, 1, 2, 1},
      {"bf16 tile, random, 1 warp, wait/page", 73728, 2, 1, 1, 2, 0},
      {"bf16 tile, random, 1 warp, wait/copy, 1 stage", 73728, 2, 1, 1, 1, 1},
      {"bf16 page as 1 copy, random, 2 warps x 1 stage", 73728, 0, 1, 2, 1, 0},
  };
  printf("# %d CTAs (one per SM), 4 GiB of pages read per run, best of 3 after a warm-up; GB/s\n", sms);
  for (const Case& c : cases) {
    Split split{};
    if (c.split_kind == 0) { split.n = 1; split.bytes[0] = c.page_bytes; }
    if (c.split_kind == 1) { split.n = 10; for (int i = 0; i < 8; ++i) split.bytes[i] = 4096; split.bytes[8] = 8192; split.bytes[9] = 1024; }
    if (c.split_kind == 2) { split.n = 9; for (int i = 0; i < 9; ++i) split.bytes[i] = 8192; }
    int num_pages = (int)(total / c.page_bytes);
    int per_issuer = num_pages / (sms * c.issuers);
    std::vector<int> ids(num_pages);
    for (int i = 0; i < num_pages; ++i) ids[i] = i;
    if (c.random) std::shuffle(ids.begin(), ids.end(), std::mt19937(1234));
    int* d_ids;
    cudaMalloc(&d_ids, sizeof(int) * num_pages);
    cudaMemcpy(d_ids, ids.data(), sizeof(int) * num_pages, cudaMemcpyHostToDevice);
    float best = bench.best_ms([&] {
      read_pages<<<sms, 256, c.issuers * c.stages * c.page_bytes>>>(bench.buf, d_ids, per_issuer, c.page_bytes, split,
                                                                     c.stages, c.issuers, c.wait_per_copy, bench.sink);
    });
    double bytes = (double)per_issuer * sms * c.issuers * c.page_bytes;
    printf("%-66s %6.0f GB/s  (%.1f us per page per issuer)\n", c.name, bytes / (best * 1e6),
           best * 1e3 / per_issuer);
    cudaFree(d_ids);
  }
  return 0;
}
