// What both load-path microbenchmarks share: the mbarrier and bulk-copy PTX they time, and the
// 4 GiB source buffer (far beyond the 50 MB L2) with the events that time a launch.
#pragma once
#include <cstdint>
#include <cstdio>
#include <cuda_runtime.h>

__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(count));
}
// arrive with the stage's byte count (release semantics, the default)
__device__ __forceinline__ void mbar_expect_tx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes));
}
// the same, relaxed: no release of this thread's earlier memory operations
__device__ __forceinline__ void mbar_expect_tx_relaxed(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.relaxed.cta.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes));
}
// expect-tx without an arrive (then a plain arrive after the copies are issued)
__device__ __forceinline__ void mbar_expect_only(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.expect_tx.relaxed.cta.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(bytes));
}
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(bar));
}
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
  asm volatile("{\n .reg .pred p;\n W: mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n @!p bra W;\n}\n" ::"r"(bar),
               "r"(parity));
}
// spin without try_wait's suspension
__device__ __forceinline__ void mbar_wait_test(uint32_t bar, uint32_t parity) {
  asm volatile("{\n .reg .pred p;\n W: mbarrier.test_wait.parity.shared::cta.b64 p, [%0], %1;\n @!p bra W;\n}\n" ::"r"(bar),
               "r"(parity));
}
__device__ __forceinline__ void bulk_g2s(uint32_t dst, const void* src, uint32_t bytes, uint32_t bar) {
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(dst),
               "l"(src), "r"(bytes), "r"(bar)
               : "memory");
}

struct Bench {
  static constexpr size_t kTotal = (size_t)4 << 30;  // bytes read per launch
  int sms = 0;
  char* buf = nullptr;
  unsigned long long* sink = nullptr;  // written only if the kernel's checksum hits a magic value
  cudaEvent_t e0, e1;

  Bench() {
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
    cudaMalloc(&buf, kTotal + (1 << 20));
    cudaMalloc(&sink, 8);
    cudaMemset(buf, 1, kTotal);
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
  }
  // best time in ms of `reps` launches after a warm-up one; exits on a launch error
  template <class Launch>
  float best_ms(Launch launch, int reps = 3) {
    float best = 1e30f;
    for (int rep = 0; rep <= reps; ++rep) {
      cudaEventRecord(e0);
      launch();
      cudaEventRecord(e1);
      cudaEventSynchronize(e1);
      float ms;
      cudaEventElapsedTime(&ms, e0, e1);
      if (rep > 0 && ms < best) best = ms;
    }
    cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) {
      printf("error %s\n", cudaGetErrorString(err));
      exit(1);
    }
    return best;
  }
};
