// Does compute-sanitizer's racecheck follow a named barrier that two of a CTA's three warpgroups share?
//
// The dims split of heads_n (docs/perf/experiments/2026-12-06d/headsn-dims.patch) exchanges per-column
// rescale factors between its two MMA warpgroups through two shared-memory buffers, one per tile parity:
// each warpgroup's warp 0 writes its 32 columns' factors into buffer i % 2, both arrive at named barrier
// 1 (256 threads; the producer warpgroup never does), then every thread reads factors of all 64 columns.
// Buffer i % 2 is written again only at iteration i + 2, after the barrier of iteration i + 1, which a
// reader reaches only after its read of iteration i: race-free by construction. racecheck reported two
// hazards on exactly this exchange (docs/perf/README.md, fourth session of 2026-12-06). This program runs
// the same pattern without the kernel around it:
//
//   mode 0  the exchange as the kernel does it (two buffers, bar.sync 1, 256)    expected: 0 hazards
//   mode 1  one buffer instead of two                                           a real race: hazards
//   mode 2  two buffers, but the CTA-wide barrier 0 (all 384 threads)           expected: 0 hazards
//
// If mode 0 reports hazards and mode 2 does not, racecheck does not model this partial barrier and the
// kernel's report says nothing about the kernel; if mode 0 is clean, look for the race in the kernel.
//
//   nvcc -O3 -arch=sm_90a -o /tmp/nbrace tools/probes/named_barrier_race.cu
//   for m in 0 1 2; do compute-sanitizer --tool racecheck /tmp/nbrace $m; done
#include <cstdio>
#include <cstdlib>

__device__ __forceinline__ void sync_consumers(int mode) {
  if (mode == 2) {
    asm volatile("bar.sync 0;" ::: "memory");
  } else {
    asm volatile("bar.sync 1, 256;" ::: "memory");
  }
}

__global__ void exchange(float* out, int iters, int mode) {
  __shared__ float fac[2][64];
  const int wg = threadIdx.x / 128;   // 0: the producer warpgroup, 1 and 2: the MMA warpgroups
  const int t = threadIdx.x % 128;
  const int warp = t / 32, lane = t % 32;
  float acc = 1.0f;
  for (int i = 0; i < iters; ++i) {
    if (wg == 0) {
      // the producer warpgroup works on its own (in the kernel: loads and conversion); it only joins
      // a CTA-wide barrier
      acc = acc * 0.999f + 1e-3f * i;
      if (mode == 2) sync_consumers(mode);
      continue;
    }
    const int b = mode == 1 ? 0 : (i & 1);
    const int col0 = 32 * (wg - 1);
    if (warp == 0 && lane < 4) {
      // two adjacent columns per store, as the kernel's STS.64
      for (int cs = 0; cs < 8; cs += 2) {
        const int col = col0 + 8 * (cs / 2) + 2 * lane;
        *reinterpret_cast<float2*>(&fac[b][col]) = make_float2(1.0f + i + col, 2.0f + i + col);
      }
    }
    sync_consumers(mode);
    for (int j = 0; j < 16; ++j) {
      const int col = 8 * (j / 2) + 2 * (lane % 4) + j % 2;
      acc += fac[b][col];
    }
  }
  out[blockIdx.x * blockDim.x + threadIdx.x] = acc;
}

int main(int argc, char** argv) {
  const int mode = argc > 1 ? atoi(argv[1]) : 0;
  const int iters = argc > 2 ? atoi(argv[2]) : 64;
  float* out = nullptr;
  cudaMalloc(&out, 2 * 384 * sizeof(float));
  exchange<<<2, 384>>>(out, iters, mode);
  const cudaError_t err = cudaDeviceSynchronize();
  float host[384];
  cudaMemcpy(host, out, sizeof(host), cudaMemcpyDeviceToHost);
  printf("mode %d (%s): %s, out[128] = %g\n", mode,
         mode == 0 ? "two buffers, bar.sync 1, 256" : mode == 1 ? "one buffer (racy)" : "two buffers, bar.sync 0",
         cudaGetErrorString(err), host[128]);
  cudaFree(out);
  return err == cudaSuccess ? 0 : 1;
}
