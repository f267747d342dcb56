// Read bandwidth by 1D bulk copies (cp.async.bulk, the TMA engine) with one CTA per SM, each streaming
// its own contiguous share of a 4 GiB buffer through a ring of shared-memory stages: one lane of each
// issuing warp arms a stage's mbarrier, issues its copies, and waits for the oldest stage, as a decode
// kernel's producer warp does when its consumers take no time. Bytes in flight per SM = issuers x
// stages x stage bytes. What it showed on the H200 (docs/perf/h200-membench-2026-12-04.txt): a warp
// that alternates one wait and one copy gets one copy through per ~300-520 ns whatever the copy's size
// or the stages in flight; several copies per wait, or several issuing warps, reach ~4.5 TB/s.
//
//   nvcc -O3 -arch=sm_90a -o /tmp/inflight tools/membench/inflight.cu && /tmp/inflight [SWEEP]
//
// SWEEP: sizes, issuers, split, arm or touch (see sweep() below); all of them by default.
#include <cstdlib>
#include <string>
#include <vector>

#include "common.cuh"

// touch: read a word of each stage once it has landed (1) or not (0)
// arm: how a stage's barrier learns its bytes: 0 arrive.expect_tx (release) before the copies,
// 1 the same relaxed, 2 expect_tx (no arrive) before and a plain arrive after, 3 arrive.expect_tx after
// split: copies per stage (one wait and one expect-tx per stage, `split` bulk copies)
// issuers: warps of the CTA that each stream 1/issuers of the CTA's share through their own
// `stages` stages (lane 0 issues and waits); test: spin on mbarrier.test_wait instead of try_wait
__global__ void stream(const char* buf, size_t per_cta, int stages, int stage_bytes, unsigned long long* sink,
                       int issuers, int test, int split, int arm, int touch) {
  extern __shared__ __align__(1024) char smem[];
  __shared__ uint64_t bars[8 * 64];
  int w = threadIdx.x / 32;
  if (threadIdx.x % 32 != 0 || w >= issuers) return;
  per_cta /= issuers;
  const char* base = buf + per_cta * (blockIdx.x * issuers + w);
  uint32_t s0 = (uint32_t)__cvta_generic_to_shared(smem) + w * stages * stage_bytes;
  uint32_t b0 = (uint32_t)__cvta_generic_to_shared(bars) + w * 64 * 8;
  for (int i = 0; i < stages; ++i) mbar_init(b0 + 8 * i, 1);
  asm volatile("fence.mbarrier_init.release.cluster;");
  size_t n = per_cta / stage_bytes;
  unsigned long long acc = 0;
  for (size_t k = 0; k < n + stages; ++k) {
    if (k >= (size_t)stages) {  // consume the oldest stage
      size_t j = k - stages;
      int s = j % stages;
      if (test) mbar_wait_test(b0 + 8 * s, (j / stages) & 1);
      else mbar_wait(b0 + 8 * s, (j / stages) & 1);
      if (touch) acc += *(volatile unsigned*)(smem + (size_t)(w * stages + s) * stage_bytes);
      else acc += s;
    }
    if (k < n) {
      int s = k % stages;
      int part = stage_bytes / split;
      if (arm == 0) mbar_expect_tx(b0 + 8 * s, stage_bytes);
      if (arm == 1) mbar_expect_tx_relaxed(b0 + 8 * s, stage_bytes);
      if (arm == 2) mbar_expect_only(b0 + 8 * s, stage_bytes);
      for (int p = 0; p < split; ++p)
        bulk_g2s(s0 + s * stage_bytes + p * part, base + k * stage_bytes + p * part, part, b0 + 8 * s);
      if (arm == 2) mbar_arrive(b0 + 8 * s);
      if (arm == 3) mbar_expect_tx(b0 + 8 * s, stage_bytes);
    }
  }
  if (acc == 0x12345) *sink = acc;
}

struct Cfg { int sb, issuers, stages, test, split, arm, touch; };

// The sweeps of docs/perf/h200-membench-2026-12-04.txt, by name (first argument; default: all).
// sizes: one issuing warp, copy size x bytes in flight (its first run used 32-thread CTAs, the
// others 256, hence `threads`); issuers: several warps; split: several copies per wait; arm: how a
// stage's barrier is armed; touch: whether the landed stage is read.
static std::vector<Cfg> sweep(const std::string& name, int* threads) {
  std::vector<Cfg> v;
  *threads = 256;
  if (name == "sizes") {
    *threads = 32;
    for (int sb : {4096, 8192, 16384})
      for (int kb = 16; kb <= 208; kb += 16)
        if (kb * 1024 / sb >= 1 && kb * 1024 / sb <= 64) v.push_back({sb, 1, kb * 1024 / sb, 0, 1, 0, 1});
  } else if (name == "issuers") {
    v = {{4096, 1, 16, 0, 1, 0, 1}, {4096, 1, 16, 1, 1, 0, 1}, {4096, 2, 8, 0, 1, 0, 1}, {4096, 4, 4, 0, 1, 0, 1},
         {4096, 4, 8, 0, 1, 0, 1},  {4096, 8, 4, 0, 1, 0, 1},  {8192, 1, 8, 0, 1, 0, 1},  {8192, 1, 8, 1, 1, 0, 1},
         {8192, 2, 4, 0, 1, 0, 1},  {8192, 4, 2, 0, 1, 0, 1},  {8192, 4, 4, 0, 1, 0, 1},  {16384, 1, 6, 0, 1, 0, 1},
         {16384, 2, 3, 0, 1, 0, 1}, {32768, 1, 4, 0, 1, 0, 1}, {2048, 1, 32, 0, 1, 0, 1}, {2048, 8, 4, 0, 1, 0, 1},
         {1024, 8, 8, 0, 1, 0, 1}};
  } else if (name == "split") {
    v = {{4096, 1, 16, 0, 1, 0, 1}, {8192, 1, 8, 0, 2, 0, 1}, {16384, 1, 6, 0, 4, 0, 1}, {32768, 1, 4, 0, 8, 0, 1},
         {4096, 4, 4, 0, 1, 0, 1},  {8192, 1, 8, 0, 1, 0, 1}, {8192, 1, 8, 0, 4, 0, 1},  {2048, 1, 32, 0, 1, 0, 1},
         {8192, 1, 8, 0, 8, 0, 1},  {4096, 1, 16, 1, 1, 0, 1}};
  } else if (name == "arm") {
    v = {{4096, 1, 16, 0, 1, 0, 1}, {4096, 1, 16, 0, 1, 1, 1}, {4096, 1, 16, 0, 1, 2, 1}, {4096, 1, 16, 0, 1, 3, 1},
         {8192, 1, 8, 0, 1, 0, 1},  {8192, 1, 8, 0, 1, 1, 1},  {8192, 1, 8, 0, 1, 2, 1},  {4096, 1, 48, 0, 1, 1, 1},
         {2048, 1, 32, 0, 1, 1, 1}, {4096, 4, 4, 0, 1, 0, 1},  {32768, 1, 4, 0, 8, 0, 1}};
  } else if (name == "touch") {
    v = {{4096, 1, 16, 0, 1, 0, 1}, {4096, 1, 16, 0, 1, 0, 0}, {4096, 1, 48, 0, 1, 0, 0}, {8192, 1, 8, 0, 1, 0, 0},
         {8192, 1, 16, 0, 1, 0, 0}, {2048, 1, 32, 0, 1, 0, 0}, {4096, 4, 4, 0, 1, 0, 1}, {32768, 1, 4, 0, 8, 0, 1}};
  }
  return v;
}

int main(int argc, char** argv) {
  std::vector<std::string> names = {"sizes", "issuers", "split", "arm", "touch"};
  if (argc > 1) names = {argv[1]};
  Bench bench;
  const int sms = bench.sms;
  const size_t total = Bench::kTotal;
  cudaFuncSetAttribute(stream, cudaFuncAttributeMaxDynamicSharedMemorySize, 220 * 1024);
  for (const std::string& name : names) {
    int threads = 256;
    std::vector<Cfg> cfgs = sweep(name, &threads);
    if (cfgs.empty()) {
      fprintf(stderr, "inflight: no sweep named '%s' (sizes, issuers, split, arm, touch)\n", name.c_str());
      return 2;
    }
    printf("# sweep %s: one CTA of %d threads per SM (%d); GB/s of reads by cp.async.bulk; in flight per SM = "
           "issuers x stages x stage\n", name.c_str(), threads, sms);
    printf("stage_KB copies_per_stage issuers stages_each inflight_KB wait arm touch GB/s\n");
    for (Cfg c : cfgs) {
      int sb = c.sb;
      size_t per_cta = (total / sms) / (sb * c.issuers) * (sb * c.issuers);
      float best = bench.best_ms([&] {
        stream<<<sms, threads, c.issuers * c.stages * sb>>>(bench.buf, per_cta, c.stages, sb, bench.sink, c.issuers,
                                                            c.test, c.split, c.arm, c.touch);
      });
      printf("%d %d %d %d %d %s %d %d %.0f\n", sb / 1024, c.split, c.issuers, c.stages,
             c.issuers * c.stages * sb / 1024, c.test ? "test" : "try", c.arm, c.touch, per_cta * sms / (best * 1e6));
    }
  }
  return 0;
}
