"""The planner: spec + device facts -> a checked :class:`KernelPlan`.

A plan fixes every compile-time knob of the generated decode kernel:

* ``block_m``: packed query rows per CTA. Rows are ``(query token, head)``
  pairs of one KV head, ``s_q * q_heads / kv_heads`` of them per request,
  packed head-fastest into 64-row warpgroup-MMA tiles (wgmma's M is 64).
* ``block_n``: KV tokens per tile; one tile is one TMA pipeline stage.
* ``stages``: depth of the TMA -> shared memory pipeline of KV tiles.
* ``consumer_wgs``: MMA warpgroups. With two, each computes Q.K^T for half of
  the tile's tokens and owns half of the value/output columns (256 of 512 for
  DeepSeek); P is exchanged through shared memory.
* ``producer_regs`` / ``consumer_regs``: per-thread register budgets set with
  ``setmaxnreg`` for the TMA producer warpgroup and the MMA warpgroups (fp8:
  the producer warpgroup also dequantizes, so it gets 72 by default).
* ``loader``: how KV tiles arrive (``"tma"``: bulk tensor copies of
  ``min(page, block_n)`` rows, one per 64-column chunk).
* ``schedule``: how the MMA warpgroups share a tile. ``"split"``: every
  tile is split between the warpgroups (each computes S for half of its
  tokens); P and the row maxima are exchanged through shared memory each
  tile. ``"seesaw"``: the two warpgroups take turns computing S for whole
  tiles (two KV buffers), chaining the running max from one to the other so
  that one warpgroup's softmax overlaps the other's MMAs; the first tile's P
  has a tile of its own, the second's goes through the RoPE chunk of its
  buffer. The first buffer is released halfway through a pair, so the next
  pair starts loading during the second tile's P.V. The default for 16-bit
  caches whose split pipeline would be two tiles deep (576-wide keys). Over
  an fp8 cache TMA lands each fp8 latent chunk (and a copy of its tokens'
  scales) inside the 16-bit chunk it becomes, and the producer warpgroup's
  three other warps convert it in place before the MMA warpgroups see it.
  ``"heads_n"`` (the default where ``max_q * heads_per_kv <= 32``):
  the query rows go on wgmma's N instead of M, S^T = K.Q^T and
  O^T = V^T.P^T, so no MMA works on padding rows; the MMA warpgroup handles
  whole 64-token tiles fed through a ring of ``stages`` 64-token x 64-column
  chunks (``consumer_wgs=2``, 16-bit caches' default where the rows are a
  multiple of 32: two MMA warpgroups split the query rows, each running the
  whole tile loop for its half on the shared ring; with 32 columns each, 64
  rows per CTA, one producer warpgroup instead of two, for the registers).
  More rows per KV head go in column blocks of 32 (64 on two MMA warpgroups)
  over CTAs, m-blocks reading the same KV tiles: for fp8 caches the planner's
  default where the seesaw is not generated (``heads_n_wide_default``), otherwise
  a tuning candidate. fp8: two
  producer warpgroups (one TMA warp, seven dequantizing warps; with one
  producer warpgroup, three), each fp8 latent chunk loaded into the ring chunk
  it is converted into; 16-bit caches: the TMA warp loads every chunk straight
  into the ring.
* ``raw_stages`` (fp8_e4m3 caches, split schedule): depth of the TMA pipeline
  of packed fp8 token rows (16-token stages). The three producer warps other
  than the TMA warp dequantize them into ``stages`` bf16/fp16 KV buffers of
  32 tokens (half a 64-token tile each), so converting the next tile overlaps
  the MMAs of this one. 0 for ``heads_n`` and 16-bit caches.
* ``cluster`` (seesaw only): CTAs per thread-block cluster along the m-blocks of one KV
  head. The m-blocks of a (KV head, part) read the same KV tiles; with ``cluster=2``
  each CTA of a pair issues half of every tile's TMA boxes and multicasts them to
  both, and frees a buffer on both CTAs' barriers, so the pair reads each tile from
  L2 once and issues half the loads. Over an fp8 cache each CTA loads and converts
  half of every tile's latent chunks and stores their 16-bit values into both CTAs'
  buffers (distributed shared memory), so each tile is converted once, not once per
  m-block. A call whose ``s_q`` gives an odd number of m-blocks runs one more,
  empty m-block beside the last (its rows are all past the call's; it loads and
  converts its half for its peer and stores nothing), so every ``s_q`` is served;
  the planner pairs only the calls whose rows make whole pairs (``pairs_whole``,
  per ``s_q`` through ``plan_for(spec, s_q=...)``), and ``check_plan`` rejects a
  pair that no ``s_q`` of the spec fills.
* ``q_tokens`` (0: the spec's ``max_q``): the most query tokens per request the
  kernel is compiled for. A plan with ``q_tokens`` below ``max_q`` builds the kernel
  of ``spec.replace(max_q=q_tokens)`` (``kernel_spec``) and serves only calls with
  that many query tokens or fewer (``serves``). The planner gives it to the calls
  of a speculative-decoding spec whose own rows fit heads_n (at most 32 per KV
  head) while ``max_q``'s do not: their rows go on wgmma's N instead of filling a
  fraction of the seesaw's 64-row M tile (``plan_for(spec, s_q=...)``).
* ``split_kv`` and ``parts_per_sm``: the split-KV policy. The decode grid is
  persistent-like: ``parts`` CTAs per (m-block, kv head) each take an equal
  share of all (request, KV tile) pairs of the batch, computed on the GPU;
  requests cut across parts are merged by a log-sum-exp combine kernel.

``check_plan`` rejects a plan that does not fit the device (shared memory,
registers) with an error naming the limit; ``search_space`` lists every
plan that passes, for ``mlagen tune``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

from mlagen.device import H100_SXM, DeviceFacts
from mlagen.spec import FP8_CACHE, MLASpec

__all__ = [
    "KernelPlan",
    "PlanError",
    "UnsupportedSpecError",
    "check_plan",
    "kernel_spec",
    "m_blocks",
    "pairs_whole",
    "parse_knob",
    "parse_knobs",
    "plan_for",
    "plans_by_s_q",
    "search_space",
    "serves",
    "smem_bytes",
    "supports",
]

WGMMA_M = 64
# Registers a consumer thread needs besides its accumulators: addresses,
# softmax state, loop counters (measured around 60 with ptxas; kept safe).
_CONSUMER_REG_OVERHEAD = 64
_SMEM_ALIGN = 1024
# Register pairs (producer, consumer) that setmaxnreg accepts and that fill
# the 64K register file for one CTA of 1 + consumer_wgs warpgroups.
_REG_SPLITS = {1: ((40, 232), (24, 240)), 2: ((40, 232), (24, 240))}
# fp8 caches: three producer warps dequantize, with several 32-value items per thread in flight;
# below 72 registers ptxas spills inside their loop (the MMA threads still fit in 216).
_FP8_REG_SPLITS = ((72, 216), (56, 224), (40, 232))
# the seesaw over an fp8 cache: the producer warpgroup's three warps besides the TMA warp convert
# each latent chunk in place (a chunk's fp8 rows and scales in registers); the MMA warpgroups keep O
# (128) and a whole tile of S (32) as over 16-bit caches. ptxas, h_q 128: at 224 no local memory in
# the pair loop (a few spilled loop counters in the converting loop), at 216 ten local loads in it
_FP8_SEESAW_SPLITS = ((56, 224),)
# heads_n: two producer warpgroups and one MMA warpgroup; the MMA warpgroup's registers come from
# what the producers give up below the launch's even share (168 each for 384 threads)
_HEADS_N_REGS = (136, 232)
# fp8, one MMA warpgroup: three producer warpgroups (eleven converting warps instead of seven, for the
# conversion's latency), within the 128 x 512 = 65,536 a CTA of 512 threads is launched with
_HEADS_N_REGS_3P = (88, 232)
# two MMA warpgroups splitting the query rows (16-bit caches' default where the rows split in 16s):
# 2 x 128 x (producer + consumer) <= 65,536
_HEADS_N_REGS_2WG = (104, 152)
# two MMA warpgroups of 32 columns each (64 query rows per CTA): O^T alone is 128 registers per MMA
# thread, so one producer warpgroup (the TMA warp, three converting warps) and the rest to the MMA
# threads, within the 168 x 384 = 64,512 the CTA is launched with: 72 + 2 x 216 (three local loads in
# the MMA tile loop, fewer spills in the converting loop; H100, fp8: 1.10x faster than 56 + 2 x 224,
# which has no local memory in the tile loop, docs/perf/README.md), or 56 + 2 x 224
_HEADS_N_WIDE_SPLITS = ((72, 216), (56, 224))


def _reg_splits(spec: MLASpec, consumer_wgs: int) -> tuple:
    return _FP8_REG_SPLITS if spec.cache_dtype == FP8_CACHE else _REG_SPLITS[consumer_wgs]


def _schedule_reg_splits(spec: MLASpec, consumer_wgs: int, schedule: str) -> tuple:
    """(producer_regs, consumer_regs) choices of the split and seesaw schedules."""
    if spec.cache_dtype == FP8_CACHE and schedule == "seesaw":
        return _FP8_SEESAW_SPLITS
    return _reg_splits(spec, consumer_wgs)


# knobs chosen per call by the runtime, not compiled in
RUNTIME_KNOBS = ("parts_per_sm",)


class PlanError(ValueError):
    """A plan that cannot be built for this spec on this device."""


class UnsupportedSpecError(PlanError):
    """A valid spec whose features the generator does not produce yet."""


@dataclass(frozen=True)
class KernelPlan:
    """Compile-time configuration of one generated decode kernel (see module doc)."""

    block_m: int = WGMMA_M
    block_n: int = 64
    stages: int = 2
    consumer_wgs: int = 2
    producer_regs: int = 40
    consumer_regs: int = 232
    loader: str = "tma"
    schedule: str = "split"
    raw_stages: int = 0
    cluster: int = 1
    split_kv: bool = True
    parts_per_sm: int = 1
    q_tokens: int = 0

    @property
    def producer_wgs(self) -> int:
        """Warpgroups that load (and for fp8 dequantize) KV tiles: heads_n has two, except beside two
        MMA warpgroups of 32 columns (their register splits, ``_HEADS_N_WIDE_SPLITS``), one."""
        if self.schedule != "heads_n":
            return 1
        split = (self.producer_regs, self.consumer_regs)
        return 1 if split in _HEADS_N_WIDE_SPLITS else 3 if split == _HEADS_N_REGS_3P else 2

    @property
    def threads(self) -> int:
        return 128 * (self.producer_wgs + self.consumer_wgs)

    @property
    def tag(self) -> str:
        """Short readable plan name used in file names, e.g. ``n64s2w2``."""
        split = "" if self.split_kv else "-nosplit"
        sched = f"-{self.schedule.replace('_', '')}" if self.schedule != "split" else ""
        raw = f"r{self.raw_stages}" if self.raw_stages else ""
        cluster = f"c{self.cluster}" if self.cluster != 1 else ""
        rows = f"m{self.block_m}" if self.block_m != WGMMA_M else ""
        tokens = f"-q{self.q_tokens}" if self.q_tokens else ""
        producers = "p3" if self.producer_wgs == 3 else ""
        return (f"{rows}n{self.block_n}s{self.stages}{raw}w{self.consumer_wgs}{producers}{cluster}{sched}{split}"
                f"{tokens}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "KernelPlan":
        return cls(**data)

    def compile_dict(self) -> dict:
        """The knobs baked into the compiled code (runtime knobs such as ``parts_per_sm`` excluded)."""
        # q_tokens = 0 (the spec's max_q) is left out, so plans from before the knob keep their keys
        return {k: v for k, v in self.to_dict().items()
                if k not in RUNTIME_KNOBS and not (k == "q_tokens" and v == 0)}

    @property
    def key(self) -> str:
        """Canonical string of the compile-time knobs: plans with equal keys share one compiled kernel."""
        return json.dumps(self.compile_dict(), sort_keys=True, separators=(",", ":"))

    @property
    def short_hash(self) -> str:
        return hashlib.sha256(self.key.encode()).hexdigest()[:8]


def parse_knob(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` for a :class:`KernelPlan` knob, VALUE parsed as the knob's type (``ValueError`` if not)."""
    key, sep, value = text.partition("=")
    key, value = key.strip(), value.strip()
    knobs = {f.name: f.default for f in dataclasses.fields(KernelPlan)}
    if not sep or not key or not value:
        raise ValueError(f"{text!r}: expected KEY=VALUE, e.g. block_n=64")
    if key not in knobs:
        raise ValueError(f"{text!r}: unknown plan knob {key!r} (knobs: {', '.join(knobs)})")
    default = knobs[key]
    if isinstance(default, bool):
        lowered = value.lower()
        if lowered not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"{text!r}: {key} takes true or false")
        return key, lowered in ("true", "1", "yes")
    if isinstance(default, int):
        try:
            return key, int(value)
        except ValueError:
            raise ValueError(f"{text!r}: {key} takes an integer") from None
    return key, value


def parse_knobs(text: str) -> dict:
    """Comma-separated ``KEY=VALUE`` knobs (``"schedule=split,raw_stages=3"``; ``""``: none)."""
    return dict(parse_knob(item) for item in text.split(",") if item.strip())


def padded_dqk(spec: MLASpec) -> int:
    """Width of a key row in shared memory: d_qk rounded up to the 64-column TMA/swizzle chunk."""
    return -(-spec.d_qk // 64) * 64


def smem_bytes(spec: MLASpec, plan: KernelPlan) -> int:
    """Shared memory of one decode CTA, including alignment padding."""
    elem = 2
    d_pad = padded_dqk(spec)
    fp8 = spec.cache_dtype == FP8_CACHE
    # mbarriers, work split and scan scratch, per-row exchange arrays (seesaw: four barrier
    # pairs, and the max and scale of both tiles)
    rows = plan.block_m * 4
    raw_bars = plan.raw_stages * 2 * 8
    if plan.schedule == "seesaw":
        small = 4 * 2 * 8 + 32 + 56 + plan.consumer_wgs * rows + 4 * rows
    elif plan.schedule == "heads_n":
        # per-chunk barriers (full, empty; fp8: landed), fp8: per-stage scale barrier pairs; per-warp
        # column maxima (two tiles' worth) and sums
        bars = plan.stages * 3 + HEADS_N_SCALE_STAGES * 2 if fp8 else plan.stages * 2
        small = bars * 8 + 32 + 56 + 3 * 4 * q_rows(spec, plan) * 4
    else:
        small = plan.stages * 2 * 8 + 32 + 56 + 2 * plan.consumer_wgs * rows
    small += raw_bars
    total = -(-small // _SMEM_ALIGN) * _SMEM_ALIGN
    # the split schedule's P tile; the seesaw's tile for the first tile's P (the second tile's P
    # goes through the RoPE chunk of its buffer)
    p_tile = q_rows(spec, plan) * plan.block_n * elem
    if plan.schedule == "heads_n":
        kv = plan.stages * plan.block_n * 64 * elem  # the ring of 64-token x 64-column chunks
        scales = HEADS_N_SCALE_STAGES * plan.block_n * heads_n_scale_box_words(spec) * 4 if fp8 else 0
    else:
        kv = plan.stages * kv_rows(spec, plan) * d_pad * elem  # KV tiles (fp8: dequantized half tiles)
        scales = 0
    if fp8 and plan.schedule == "seesaw":
        # the seesaw over fp8: four more barriers (a buffer's chunk group converted), beside the others
        total = -(-(small + 4 * 8) // _SMEM_ALIGN) * _SMEM_ALIGN
    for size in (
        q_rows(spec, plan) * d_pad * elem,           # Q tile
        kv,
        p_tile,                                      # P tile
        raw_stage_bytes(spec, plan) * plan.raw_stages,  # packed fp8 rows (split schedule)
        scales,                                      # heads_n: the tiles' scales
    ):
        total += -(-size // _SMEM_ALIGN) * _SMEM_ALIGN
    return total


FP8_KV_ROWS = 32  # tokens per dequantized KV buffer: one warpgroup's half of a 64-token tile
FP8_RAW_ROWS = 16  # tokens per stage of packed fp8 rows
HEADS_N_MAX_COLS = 32  # query rows on N per CTA: O^T (latent x N float32) must fit one warpgroup's registers
HEADS_N_SCALE_STAGES = 3  # tiles of scales in flight
HEADS_N_MIN_PAGE = 16  # TMA boxes never cross a page: smaller pages need > 4 loads per chunk


def heads_n_unsupported(spec: MLASpec) -> str | None:
    """``None`` if the heads_n schedule is generated for ``spec``, else why not."""
    if spec.rope % 64:
        return f"schedule = 'heads_n' loads the RoPE part as whole 64-column chunks: rope {spec.rope} is not a multiple of 64"
    if spec.page < HEADS_N_MIN_PAGE:
        return f"schedule = 'heads_n' loads 64-token chunks in page-sized boxes: page {spec.page} < {HEADS_N_MIN_PAGE}"
    if spec.latent % 64:
        return f"schedule = 'heads_n' holds the latent as whole 64-column chunks: latent {spec.latent} is not a multiple of 64"
    return None


FP8_SEESAW_MIN_PAGE = 8  # TMA writes shared memory at 128-byte boundaries: a box of scales (16 bytes a row) needs 8 rows


def fp8_seesaw_unsupported(spec: MLASpec) -> str | None:
    """``None`` if the seesaw is generated over ``spec``'s fp8 cache, else why not: the RoPE part is
    loaded as whole 16-bit 64-column chunks (one of them carries the second tile's P), and each box
    (a page's rows at most) of a token's 16 bytes of scales must fill a 128-byte aligned slot."""
    if spec.rope == 0 or spec.rope % 64:
        return (f"schedule = 'seesaw' over an fp8_e4m3 cache loads the RoPE part as whole 64-column chunks: "
                f"rope {spec.rope} is not a positive multiple of 64")
    if spec.page < FP8_SEESAW_MIN_PAGE:
        return (f"schedule = 'seesaw' over an fp8_e4m3 cache loads the scales in page-sized TMA boxes of 16 bytes "
                f"a row, which TMA writes at 128-byte boundaries: page {spec.page} < {FP8_SEESAW_MIN_PAGE}")
    return None


def cluster_unsupported(spec: MLASpec, plan: KernelPlan) -> str | None:
    """``None`` if ``plan.cluster`` CTAs can share their KV loads for ``spec``, else why not."""
    if plan.schedule != "seesaw":
        return f"cluster = {plan.cluster}: only the 'seesaw' schedule shares KV tiles across a cluster"
    if spec.cache_dtype == FP8_CACHE and spec.latent % (128 * plan.cluster):
        # each CTA converts the latent chunks of its rank's parity in every 4-chunk group of a tile
        return (
            f"cluster = {plan.cluster} over an fp8_e4m3 cache splits each half tile's latent 64-column chunks "
            f"between the CTAs: needs latent a multiple of {128 * plan.cluster} (got {spec.latent})"
        )
    if not any(pairs_whole(spec, plan, s_q) for s_q in range(1, spec.max_q + 1)):
        # an odd m-block count runs an empty m-block beside the last; a pair no call fills is never faster
        return (
            f"cluster = {plan.cluster} pairs the m-blocks of a KV head (ceil(s_q x heads_per_kv / "
            f"{plan.block_m}) of them), but no s_q in 1..{spec.max_q} gives a multiple of {plan.cluster} at "
            f"heads_per_kv {spec.heads_per_kv}: every call would run an empty m-block"
        )
    return None


def kernel_spec(spec: MLASpec, plan: KernelPlan) -> tuple[MLASpec, KernelPlan]:
    """The spec and plan a kernel is compiled from: a plan with ``q_tokens`` below the spec's ``max_q``
    compiles ``spec.replace(max_q=q_tokens)`` (the knob cleared: it is that spec's own kernel)."""
    if not plan.q_tokens:
        return spec, plan
    if not 1 <= plan.q_tokens <= spec.max_q:
        raise PlanError(f"q_tokens = {plan.q_tokens}: {spec.key} takes 1..{spec.max_q} query tokens per request")
    narrow = spec.replace(max_q=plan.q_tokens) if plan.q_tokens < spec.max_q else spec
    return narrow, dataclasses.replace(plan, q_tokens=0)


def serves(spec: MLASpec, plan: KernelPlan, s_q: int) -> bool:
    """Whether ``plan``'s kernel takes calls with ``s_q`` query tokens (``q_tokens`` caps them)."""
    return 1 <= s_q <= (plan.q_tokens or spec.max_q)


def m_blocks(spec: MLASpec, plan: KernelPlan, s_q: int) -> int:
    """CTAs per (KV head, part) of a call with ``s_q`` query tokens: its packed rows in ``block_m`` blocks,
    rounded up to whole clusters (the last cluster's empty m-block loads its share and stores nothing)."""
    blocks = -(-s_q * spec.heads_per_kv // plan.block_m)
    return -(-blocks // plan.cluster) * plan.cluster


def pairs_whole(spec: MLASpec, plan: KernelPlan, s_q: int) -> bool:
    """Whether a call with ``s_q`` query tokens fills every CTA of ``plan``'s clusters with rows."""
    return -(-s_q * spec.heads_per_kv // plan.block_m) % plan.cluster == 0


def heads_n_tile_chunks(spec: MLASpec) -> int:
    """64-column chunks of one 64-token tile in heads_n's ring (latent, then RoPE)."""
    return padded_dqk(spec) // 64


def heads_n_scale_box_words(spec: MLASpec) -> int:
    """A token's float32 scales as one TMA box row: at least 16 bytes."""
    return max(4, -(-(spec.latent // 128) // 4) * 4)


def dequant_warps(plan: KernelPlan) -> int:
    """Producer warps that dequantize fp8 rows: all of the producer warpgroups but the TMA warp."""
    return 4 * plan.producer_wgs - 1


def heads_n_cols(spec: MLASpec, wgs: int = 1) -> int:
    """The heads_n schedule's N per CTA with ``wgs`` MMA warpgroups: the query rows of one KV head
    (max_q * heads_per_kv), rounded up to 16 per warpgroup (the smallest N whose Q and P^T tiles fill a
    swizzle atom), at most HEADS_N_MAX_COLS per warpgroup."""
    step = 16 * wgs
    return min(-(-spec.max_q * spec.heads_per_kv // step) * step, HEADS_N_MAX_COLS * wgs)


def heads_n_column_blocks(spec: MLASpec, wgs: int = 1) -> bool:
    """Whether heads_n with ``wgs`` MMA warpgroups splits a KV head's query rows into column blocks over
    several CTAs (m-blocks), each reading the same KV tiles (L2 serves the second read when they run
    side by side, as for the seesaw's two m-blocks)."""
    return spec.max_q * spec.heads_per_kv > HEADS_N_MAX_COLS * wgs


def heads_n_block_m(spec: MLASpec, wgs: int = 1) -> int:
    """block_m of a heads_n plan: the rows that step m_block. All rows fit one CTA: 64 (one m-block);
    column blocks: a CTA's columns (HEADS_N_MAX_COLS per MMA warpgroup)."""
    return HEADS_N_MAX_COLS * wgs if heads_n_column_blocks(spec, wgs) else WGMMA_M


def heads_n_reg_splits(spec: MLASpec, wgs: int) -> tuple[tuple[int, int], ...]:
    """heads_n's (producer_regs, consumer_regs) choices, the planner's first: one MMA warpgroup; two of
    16 columns; two of 32."""
    if wgs == 1:
        return (_HEADS_N_REGS, _HEADS_N_REGS_3P) if spec.cache_dtype == FP8_CACHE else (_HEADS_N_REGS,)
    return _HEADS_N_WIDE_SPLITS if heads_n_cols(spec, wgs) // wgs > 16 else (_HEADS_N_REGS_2WG,)


def heads_n_min_ring(spec: MLASpec, plan: KernelPlan) -> int:
    """The shallowest chunk ring heads_n takes: two tiles, so the converting warps never idle while a
    tile is multiplied; beside two MMA warpgroups of 32 columns (64 rows of Q in shared memory) two
    tiles do not fit, so one tile plus a chunk per converting warp and one more (the bound under which
    the converting warps' parity waits stay exact, see convert_chunk)."""
    chunks = heads_n_tile_chunks(spec)
    exact = chunks + dequant_warps(plan) + 1
    return exact if plan.producer_wgs == 1 else max(2 * chunks, exact)


def heads_n_default(spec: MLASpec) -> bool:
    """Whether the planner picks heads_n by default: generated, and all query rows of a KV head on
    one CTA's N (column blocks are a tuning candidate until measured faster)."""
    return heads_n_unsupported(spec) is None and not heads_n_column_blocks(spec)


def heads_n_wide_default(spec: MLASpec) -> bool:
    """Whether the planner puts an fp8 cache with more than 32 query rows per KV head on heads_n with two
    MMA warpgroups of 32 columns (64 rows per CTA, column blocks of 64 beyond) instead of the split
    schedule: H100, same-run sweeps, registers 72/216: h_q 64 s_q 1 0.405 / 0.425 against 0.400 / 0.410
    at 8k / 16k, h_q 128 s_q 1 0.382 / 0.396 against 0.364 / 0.373, h_q 32 s_q 2 0.397 / 0.421 against
    0.399 / 0.410 (docs/perf/README.md). 16-bit caches keep the seesaw (bf16 h_q 64: 0.80 / 0.88
    against 0.91 / 0.97)."""
    return (spec.cache_dtype == FP8_CACHE and heads_n_unsupported(spec) is None
            and heads_n_column_blocks(spec))


def fp8_seesaw_default(spec: MLASpec) -> bool:
    """Whether the planner puts an fp8 cache with more than 32 query rows per KV head on the seesaw
    (three producer warps converting each tile in place) rather than heads_n with two MMA warpgroups of
    32 columns: H100, same-run sweeps at h_q 16-128, s_q 1-2, 4k-16k: equal at 8k-16k and 3-4% faster at
    4k before the converting warps decided the fast path once per chunk, which made the seesaw 6-9%
    faster again (docs/perf/README.md). Both are bound by their three converting warps."""
    return (spec.cache_dtype == FP8_CACHE and fp8_seesaw_unsupported(spec) is None
            and spec.max_q * spec.heads_per_kv > HEADS_N_MAX_COLS)


def fp8_pair_default(spec: MLASpec, s_q: int | None = None) -> bool:
    """Whether the planner pairs the fp8 seesaw's m-blocks in 2-CTA clusters (``cluster=2``: each CTA converts
    half of every tile into both CTAs' buffers) for calls with ``s_q`` query tokens (``None``: every s_q up to
    ``max_q``): wherever those calls' rows make whole pairs, e.g. 128 query rows per KV head, or 64 with two
    query tokens. An unfilled pair's empty m-block would cost about as much as the pair saves. H100, same-run
    sweeps at h_q 128 (s_q 1 and 2, 4k and 16k, batch 128): 0.837-0.876x the unpaired seesaw's time
    (docs/perf/experiments/2026-12-07u)."""
    paired = KernelPlan(schedule="seesaw", consumer_wgs=2, cluster=2)
    if not fp8_seesaw_default(spec) or cluster_unsupported(spec, paired) is not None:
        return False
    return all(pairs_whole(spec, paired, q) for q in ([s_q] if s_q else range(1, spec.max_q + 1)))


def narrow_heads_n(spec: MLASpec, s_q: int) -> bool:
    """Whether calls with ``s_q`` (< ``max_q``) query tokens run the heads_n kernel of ``spec.replace(max_q=s_q)``
    (a plan with ``q_tokens=s_q``): their rows fit heads_n's N (at most 32 per KV head) while ``max_q``'s do not,
    so the seesaw (or heads_n in column blocks) would run them in a mostly empty 64-row M tile or beside empty
    column blocks. From the H100 grid medians (the same kernels; these calls not yet timed as such): a 1-token
    call at 32 heads with ``max_q`` 2 ran the h_q 32 s_q 2 cell's seesaw, 0.84 / 0.92 / 0.98 of the roofline at
    4k / 8k / 16k over bf16 and 0.47 / 0.52 / 0.53 over fp8, and now runs the h_q 32 s_q 1 cell's heads_n, 0.86 /
    0.94 / 0.99 and 0.66 / 0.75 / 0.79 (docs/perf/experiments/2026-12-07w, whose prepared call times them)."""
    if not 1 <= s_q < spec.max_q:
        return False
    return heads_n_default(spec.replace(max_q=s_q)) and not heads_n_default(spec)


def heads_n_default_wgs(spec: MLASpec) -> int:
    """MMA warpgroups of the planner's heads_n plan: two splitting the query rows where they make 16
    or more each (a multiple of 32) over a 16-bit cache, since each then overlaps its softmax with the
    other's MMAs (H100, h_q 32 s_q 1 and h_q 16 s_q 2, bf16: 1.04-1.06x at 8k-16k tokens,
    docs/perf/README.md); fp8 keeps one (two were 1.2x slower there; the converting loop is the same
    code, so likely shared-memory bandwidth: each MMA warpgroup reads every K and V chunk, within
    fp8's per-tile time, which is 0.57x bf16's)."""
    if spec.cache_dtype != FP8_CACHE and heads_n_cols(spec) % 32 == 0:
        return 2
    return 1


def q_rows(spec: MLASpec, plan: KernelPlan) -> int:
    """Query rows held in shared memory: a 64-row M tile, or for heads_n the N columns."""
    return heads_n_cols(spec, plan.consumer_wgs) if plan.schedule == "heads_n" else plan.block_m


def kv_rows(spec: MLASpec, plan: KernelPlan) -> int:
    """Tokens per KV buffer in shared memory: a tile, or for fp8 on the split schedule half a tile."""
    return FP8_KV_ROWS if spec.cache_dtype == FP8_CACHE and plan.schedule == "split" else plan.block_n


def raw_rows(plan: KernelPlan) -> int:
    """Tokens per stage of the packed fp8 row pipeline."""
    return FP8_RAW_ROWS


def raw_stage_bytes(spec: MLASpec, plan: KernelPlan) -> int:
    """Bytes of one stage of packed fp8 token rows (0 for 16-bit caches and for heads_n, whose fp8
    chunks land in the ring itself)."""
    if spec.cache_dtype != FP8_CACHE:
        return 0
    if plan.schedule != "split":
        return 0  # heads_n, seesaw: each fp8 latent chunk lands in the 16-bit chunk it is converted into
    row = spec.cache_bytes_per_token // spec.kv_heads
    box = min(spec.page, raw_rows(plan))
    # TMA writes boxes at 128-byte aligned shared addresses: each gets a rounded-up slot
    slot = -(-box * row // 128) * 128
    return raw_rows(plan) // box * slot


def consumer_registers(spec: MLASpec, plan: KernelPlan) -> int:
    """Estimated registers per MMA thread: O and S accumulators plus overhead."""
    dv_wg = spec.d_v // plan.consumer_wgs
    acc_o = plan.block_m * dv_wg // 128
    if plan.schedule == "heads_n":
        # O^T: latent x N and S^T: tile x N, both float32 over one warpgroup (its share of N)
        n = heads_n_cols(spec, plan.consumer_wgs) // plan.consumer_wgs
        return spec.d_v * n // 128 + plan.block_n * n // 128 + _CONSUMER_REG_OVERHEAD
    if plan.schedule == "seesaw":
        # a whole tile of S in float32, and P in bf16 on its way to shared memory; the rest fits in 48
        # (ptxas: the fp8 seesaw's pair loop has no local memory at 224 registers, at 216 it has)
        acc_s = plan.block_m * plan.block_n // 128 + plan.block_m * plan.block_n // 256
        return acc_o + acc_s + 48
    else:
        acc_s = plan.block_m * (plan.block_n // plan.consumer_wgs) // 128
    return acc_o + acc_s + _CONSUMER_REG_OVERHEAD


def supports(spec: MLASpec) -> str | None:
    """``None`` if the generator produces this spec, else why not (one line)."""
    if spec.cache_dtype == FP8_CACHE:
        if spec.rope_at != "tail":
            return "fp8_e4m3 caches keep the RoPE part after the latent (FlashMLA's layout): use rope_at='tail'"
        row = spec.cache_bytes_per_token // spec.kv_heads
        if row % 16:
            return (
                f"an fp8_e4m3 token row of {row} bytes (latent {spec.latent}, rope {spec.rope}) is not a "
                "multiple of 16 bytes, which TMA needs"
            )
    if spec.rope_at == "head" and spec.rope % 64 != 0:
        return "rope_at='head' is generated only when rope is a multiple of 64"
    if spec.latent % 128 != 0 and spec.latent > 256:
        return f"latent {spec.latent} needs one warpgroup per output half; only multiples of 128 (or <= 256) are generated"
    if spec.latent > 512:
        return f"latent {spec.latent} > 512 needs the output split across CTAs, which is not generated yet"
    return None


def launch_registers(threads: int, device: DeviceFacts = H100_SXM) -> int:
    """Registers a CTA of ``threads`` is launched with: the register file's share per thread in steps of
    8, at most 256 (168 for 384 threads: 64,512 of 65,536). setmaxnreg only moves registers within
    this allocation; a warpgroup whose increase finds the pool short waits there for ever (on the
    H100: a hang, not an error), so the per-role budgets must add up to no more."""
    return min(device.regs_per_sm // threads // 8 * 8, 256) * threads


def check_plan(spec: MLASpec, plan: KernelPlan, device: DeviceFacts = H100_SXM) -> KernelPlan:
    """Raise :class:`PlanError` naming the violated limit; return the plan if it fits."""
    why = supports(spec)
    if why:
        raise UnsupportedSpecError(f"{spec.key}: not supported yet: {why}")
    if plan.q_tokens:
        # the kernel of the narrower spec: checked as that spec's plan
        check_plan(*kernel_spec(spec, plan), device)
        return plan
    p = plan
    if p.schedule == "heads_n":
        if p.consumer_wgs in (1, 2) and p.block_m != heads_n_block_m(spec, p.consumer_wgs):
            raise PlanError(
                f"block_m = {p.block_m}: schedule 'heads_n' steps m-blocks by {heads_n_block_m(spec, p.consumer_wgs)} "
                f"rows for {spec.max_q * spec.heads_per_kv} query rows per KV head (column blocks of at most "
                f"{HEADS_N_MAX_COLS} per MMA warpgroup over CTAs)"
            )
    elif p.block_m != WGMMA_M:
        raise PlanError(f"block_m = {p.block_m}: must be {WGMMA_M} (one wgmma M tile per CTA)")
    if p.consumer_wgs not in (1, 2):
        raise PlanError(f"consumer_wgs = {p.consumer_wgs}: must be 1 or 2")
    if p.block_n not in (32, 64, 128) or p.block_n % (8 * p.consumer_wgs):
        raise PlanError(f"block_n = {p.block_n}: must be 32, 64 or 128")
    if p.schedule != "heads_n" and not 1 <= p.stages <= 6:
        raise PlanError(f"stages = {p.stages}: must be in 1..6")
    if p.loader != "tma":
        raise PlanError(f"loader = {p.loader!r}: only 'tma' is generated")
    if p.schedule not in ("split", "seesaw", "heads_n"):
        raise PlanError(f"schedule = {p.schedule!r}: must be 'split', 'seesaw' or 'heads_n'")
    if p.schedule == "heads_n":
        why = heads_n_unsupported(spec)
        if why:
            raise PlanError(why)
        if p.block_n != 64 or p.consumer_wgs not in (1, 2):
            raise PlanError(
                "schedule = 'heads_n' runs one or two MMA warpgroups over 64-token tiles: needs block_n=64, "
                f"consumer_wgs 1 or 2 (got {p.block_n}, {p.consumer_wgs})"
            )
        rows = spec.max_q * spec.heads_per_kv
        if p.consumer_wgs == 2 and rows <= 16:
            raise PlanError(
                f"consumer_wgs = 2: schedule 'heads_n' splits the query rows between two MMA warpgroups, 16 or "
                f"more each: {rows} query rows per KV head leave the second one only padding"
            )
        splits = heads_n_reg_splits(spec, p.consumer_wgs)
        if (p.producer_regs, p.consumer_regs) not in splits:
            layout = ("one producer warpgroup" if splits[0] in _HEADS_N_WIDE_SPLITS else "two producer warpgroups") + (
                f", {p.consumer_wgs} MMA warpgroup(s) of {q_rows(spec, p) // p.consumer_wgs} columns")
            raise PlanError(
                f"(producer_regs, consumer_regs) = ({p.producer_regs}, {p.consumer_regs}): schedule 'heads_n' "
                f"({layout}) takes {' or '.join(map(str, splits))}"
            )
        chunks = heads_n_tile_chunks(spec)
        low = heads_n_min_ring(spec, p)
        if not low <= p.stages <= 64:
            raise PlanError(
                f"stages = {p.stages}: schedule 'heads_n' counts 64x64 KV chunks in its ring; a tile is "
                f"{chunks} of them, so stages must be in {low}..64"
            )
        if p.raw_stages:
            raise PlanError(
                f"raw_stages = {p.raw_stages}: schedule 'heads_n' has no packed-row pipeline (use 0): each fp8 "
                "latent chunk is loaded into the ring chunk it is converted into"
            )
    elif spec.cache_dtype == FP8_CACHE and p.schedule == "seesaw":
        why = fp8_seesaw_unsupported(spec)
        if why:
            raise PlanError(why)
        if p.raw_stages:
            raise PlanError(
                f"raw_stages = {p.raw_stages}: the seesaw over an fp8_e4m3 cache has no packed-row pipeline (use 0): "
                "each fp8 latent chunk is loaded into the 16-bit chunk it is converted into"
            )
    elif spec.cache_dtype == FP8_CACHE:
        if p.schedule != "split":
            raise PlanError(
                f"schedule = {p.schedule!r}: fp8_e4m3 caches are generated for the 'split', 'seesaw' and 'heads_n' schedules"
            )
        if p.block_n != 64 or p.consumer_wgs != 2:
            raise PlanError(
                f"block_n = {p.block_n}, consumer_wgs = {p.consumer_wgs}: an fp8_e4m3 cache is dequantized "
                f"into {FP8_KV_ROWS}-token halves of 64-token tiles, one per MMA warpgroup (block_n=64, consumer_wgs=2)"
            )
        if not 2 <= p.stages <= 6:
            raise PlanError(
                f"stages = {p.stages}: an fp8_e4m3 cache needs 2..6 dequantized {FP8_KV_ROWS}-token KV buffers "
                "(a tile is two of them); its TMA pipeline depth is raw_stages"
            )
        if not 1 <= p.raw_stages <= 8:
            raise PlanError(f"raw_stages = {p.raw_stages}: must be in 1..8 for an fp8_e4m3 cache")
    elif p.raw_stages:
        raise PlanError(f"raw_stages = {p.raw_stages}: only fp8_e4m3 caches have a packed-row pipeline (use 0)")
    if p.schedule == "seesaw":
        if p.consumer_wgs != 2 or p.block_n != 64 or p.stages != 2:
            raise PlanError(
                "schedule = 'seesaw' takes turns between exactly two warpgroups over two 64-token KV "
                f"buffers: needs consumer_wgs=2, block_n=64, stages=2 (got {p.consumer_wgs}, {p.block_n}, {p.stages})"
            )
        if padded_dqk(spec) <= spec.d_v:
            raise PlanError(
                "schedule = 'seesaw' passes the second tile's P through the RoPE chunk of its KV buffer; "
                f"this spec has none (rope = {spec.rope})"
            )
    if p.cluster not in (1, 2):
        raise PlanError(f"cluster = {p.cluster}: must be 1 or 2")
    if p.cluster > 1:
        why = cluster_unsupported(spec, p)
        if why:
            raise PlanError(why)
    if p.parts_per_sm < 1:
        raise PlanError(f"parts_per_sm = {p.parts_per_sm}: must be >= 1")
    dv_wg = spec.d_v // p.consumer_wgs
    if p.schedule != "heads_n" and (spec.d_v % p.consumer_wgs or dv_wg > 256):
        raise PlanError(
            f"consumer_wgs = {p.consumer_wgs}: each warpgroup would own {spec.d_v / p.consumer_wgs:g} "
            "output columns; wgmma allows at most 256"
        )
    if p.consumer_wgs == 2 and dv_wg % 64:
        raise PlanError(
            f"consumer_wgs = 2 splits latent {spec.d_v} into {dv_wg}-column halves; "
            "each half must be a multiple of 64 (the swizzle atom)"
        )
    if p.schedule != "heads_n" and (p.producer_regs, p.consumer_regs) not in _schedule_reg_splits(spec, p.consumer_wgs, p.schedule):
        raise PlanError(
            f"(producer_regs, consumer_regs) = ({p.producer_regs}, {p.consumer_regs}): must be one of "
            f"{list(_schedule_reg_splits(spec, p.consumer_wgs, p.schedule))}"
        )
    regs = 128 * (p.producer_wgs * p.producer_regs + p.consumer_wgs * p.consumer_regs)
    launched = launch_registers(p.threads, device)
    if regs > launched:
        raise PlanError(
            f"register file: {regs} registers per CTA exceed the {launched} a CTA of {p.threads} threads is "
            f"launched with on {device.name} (setmaxnreg cannot grow the total)"
        )
    need = consumer_registers(spec, p)
    if need > p.consumer_regs:
        raise PlanError(
            f"registers: each MMA thread needs about {need} (O {p.block_m}x{dv_wg} + S + overhead) "
            f"but consumer_regs = {p.consumer_regs}"
        )
    smem = smem_bytes(spec, p)
    raw = f", {p.raw_stages} fp8 row stages of {raw_stage_bytes(spec, p)} B" if p.raw_stages else ""
    if smem > device.smem_per_block:
        raise PlanError(
            f"shared memory: {smem} bytes (Q {p.block_m}x{padded_dqk(spec)}, {p.stages} KV stages of "
            f"{kv_rows(spec, p)}x{padded_dqk(spec)}, P{raw}) exceed the {device.smem_per_block}-byte limit per CTA "
            f"on {device.name}"
        )
    return plan


def plan_for(spec: MLASpec, device: DeviceFacts = H100_SXM, *, s_q: int | None = None, **overrides) -> KernelPlan:
    """The heuristic plan for ``spec`` (for calls with ``s_q`` query tokens; ``None``: one plan serving every
    s_q up to ``max_q``, the one a kernel compiled without dispatch runs): 64-token tiles and
    - other 16-bit caches: the split schedule with the deepest KV pipeline that fits; where that is
      two tiles deep (DeepSeek's 576-wide keys) and the seesaw fits (two MMA warpgroups, a RoPE
      chunk to pass P through, the knobs pinned allow it), the seesaw instead, over the same two
      buffers: 1.04-1.16x faster than the split schedule on every cell of the default bench grid
      (H100, docs/perf/README.md). Narrower keys keep the deeper split pipeline (not measured
      against the seesaw).
    - any cache with at most 32 query rows per KV head (``heads_n_unsupported``): the heads_n
      schedule, query rows on wgmma's N (for 16-bit caches measured on the H200: faster from 8k
      tokens on, 3% slower at 4k); fp8 caches with more rows the seesaw (``fp8_seesaw_default``), in
      m-block pairs sharing each tile's conversion where the call's rows make whole pairs (``fp8_pair_default``),
      else heads_n on two MMA warpgroups of 32 columns (``heads_n_wide_default``), else the split
      schedule.
    - with ``s_q`` below ``max_q`` where that call's rows fit heads_n's N and ``max_q``'s do not
      (``narrow_heads_n``): the heads_n kernel compiled for ``s_q`` query tokens (``q_tokens=s_q``).

    Keyword overrides pin knobs (``stages=2``); the result is always checked. Pinned knobs keep the
    spec's own ``max_q`` unless ``q_tokens`` is pinned as well (``q_tokens=0``: never narrowed).
    """
    why = supports(spec)
    if why:
        raise UnsupportedSpecError(f"{spec.key}: not supported yet: {why}")
    if s_q is not None and not 1 <= s_q <= spec.max_q:
        raise PlanError(f"s_q = {s_q}: {spec.key} takes 1..{spec.max_q} query tokens per request")
    overrides = dict(overrides)
    if "q_tokens" in overrides:
        # pinned: the kernel compiled for that many query tokens (0: the spec's max_q, never narrowed)
        q = overrides.pop("q_tokens")
        if q and not 1 <= q <= spec.max_q:
            raise PlanError(f"q_tokens = {q}: {spec.key} takes 1..{spec.max_q} query tokens per request")
        if q and s_q is not None and s_q > q:
            raise PlanError(f"q_tokens = {q}: a kernel compiled for {q} query tokens cannot serve calls with "
                            f"s_q = {s_q}")
        if q and q < spec.max_q:
            return dataclasses.replace(plan_for(spec.replace(max_q=q), device, s_q=s_q, **overrides), q_tokens=q)
        return _planned(spec, device, s_q, overrides)
    if s_q is not None and not overrides and narrow_heads_n(spec, s_q):
        # this call's rows fit heads_n's N while max_q's do not: the kernel compiled for s_q query tokens
        return dataclasses.replace(plan_for(spec.replace(max_q=s_q), device), q_tokens=s_q)
    return _planned(spec, device, s_q, overrides)


def _planned(spec: MLASpec, device: DeviceFacts, s_q: int | None, overrides: dict) -> KernelPlan:
    """``plan_for``'s choice for ``spec`` itself (no narrower kernel)."""
    if overrides.get("cluster", 1) > 1 and "schedule" not in overrides:
        # only the seesaw shares a KV tile between m-blocks (over fp8: its conversion, too)
        return plan_for(spec, device, s_q=s_q, schedule="seesaw", **{"consumer_wgs": 2, **overrides})
    if spec.cache_dtype != FP8_CACHE and "schedule" not in overrides:
        if heads_n_default(spec):
            # few query rows per KV head: on N they waste no MMA rows, so the tensor cores draw less
            # power and the clock holds (H200, h_q 16: 0.60 vs 0.67-0.75 ms at 16k, 0.33 vs 0.35 ms at
            # 8k, 0.194 vs 0.187 ms at 4k; docs/perf/README.md)
            try:
                return plan_for(spec, device, schedule="heads_n", **overrides)
            except PlanError:
                pass  # a pinned knob rules it out
        split = plan_for(spec, device, schedule="split", **overrides)
        if split.stages > 2:
            return split
        try:
            return plan_for(spec, device, schedule="seesaw", **overrides)
        except PlanError:
            return split  # a pinned knob or the spec rules the seesaw out
    if heads_n_default(spec) and "consumer_wgs" not in overrides:
        # few query rows per KV head: on N they waste no MMA rows, and the dequantizers get seven
        # warps (1.3-1.5x faster than the split schedule on the H100, docs/perf/README.md)
        overrides.setdefault("schedule", "heads_n")
    elif "schedule" not in overrides and overrides.get("consumer_wgs", 2) == 2:
        # fp8 with more rows: the seesaw, converting in place (in m-block pairs sharing the conversion where
        # the rows make whole pairs); else 64 per CTA on two MMA warpgroups (1.01-1.06x the split schedule);
        # else the split schedule
        if fp8_pair_default(spec, s_q) and "cluster" not in overrides:
            try:
                return plan_for(spec, device, **{**overrides, "schedule": "seesaw", "consumer_wgs": 2, "cluster": 2})
            except PlanError:
                pass  # a pinned knob rules it out
        for default, schedule in ((fp8_seesaw_default, "seesaw"), (heads_n_wide_default, "heads_n")):
            if default(spec) and overrides.get("cluster", 1) == 1:
                try:
                    return plan_for(spec, device, **{**overrides, "schedule": schedule, "consumer_wgs": 2})
                except PlanError:
                    pass  # a pinned knob rules it out
    heads_n = overrides.get("schedule") == "heads_n"
    wgs = overrides.pop("consumer_wgs", heads_n_default_wgs(spec) if heads_n else 1 if spec.d_v % 128 else 2)
    if heads_n:
        overrides.setdefault("block_m", heads_n_block_m(spec, wgs))
        overrides.setdefault("raw_stages", 0)
        regs = heads_n_reg_splits(spec, wgs)[0]
        overrides.setdefault("producer_regs", regs[0])
        overrides.setdefault("consumer_regs", regs[1])
    seesaw = overrides.get("schedule") == "seesaw"
    if seesaw:
        # its only shape: two 64-token buffers shared by two warpgroups (fp8: converted in place by
        # the producer warpgroup's three other warps, which need registers of their own)
        overrides.setdefault("stages", 2)
        regs = _FP8_SEESAW_SPLITS[0] if spec.cache_dtype == FP8_CACHE else (24, 240)
        overrides.setdefault("producer_regs", regs[0])
        overrides.setdefault("consumer_regs", regs[1])
        overrides.setdefault("raw_stages", 0)
    # the pipeline whose depth is free: the KV tiles, or for fp8 the packed rows (three
    # dequantized half-tile buffers: the next tile's first half is converted during this one)
    # (heads_n: the chunk ring, as deep as shared memory allows)
    depth = "raw_stages" if spec.cache_dtype == FP8_CACHE and not heads_n and not seesaw else "stages"
    if depth == "raw_stages":
        overrides.setdefault("stages", 3)
        overrides.setdefault("producer_regs", _FP8_REG_SPLITS[0][0])
        overrides.setdefault("consumer_regs", _FP8_REG_SPLITS[0][1])
    base = KernelPlan(consumer_wgs=wgs, **{k: v for k, v in overrides.items() if k != depth})
    if depth in overrides:
        return check_plan(spec, dataclasses.replace(base, **{depth: overrides[depth]}), device)
    best, first_error = None, None
    depths = range(1, 9) if depth == "raw_stages" else range(1, 65 if heads_n else 5)
    for n in depths:
        try:
            best = check_plan(spec, dataclasses.replace(base, **{depth: n}), device)
        except UnsupportedSpecError:
            raise
        except PlanError as e:
            first_error = first_error or e
    if best is None:
        raise first_error
    return best


def plans_by_s_q(spec: MLASpec, device: DeviceFacts = H100_SXM) -> dict[int, KernelPlan]:
    """The heuristic plan of each ``s_q`` in 1..max_q (``plan_for(spec, s_q=...)``): where they differ (fp8
    m-block pairs filled only by some s_q; small s_q on a narrower heads_n kernel, ``narrow_heads_n``), a
    kernel compiled without a plan dispatches on the call's s_q."""
    return {q: plan_for(spec, device, s_q=q) for q in range(1, spec.max_q + 1)}


def search_space(spec: MLASpec, device: DeviceFacts = H100_SXM) -> list[KernelPlan]:
    """Every plan the planner accepts for ``spec`` on ``device`` (the autotuner's candidates)."""
    plans = []
    fp8 = spec.cache_dtype == FP8_CACHE
    # fp8: (dequantized buffers, packed-row stages); 16-bit: (KV stages, 0)
    depths = [(s, r) for s in range(2, 5) for r in range(1, 9)] if fp8 else [(d, 0) for d in range(1, 7)]
    for schedule in ("split", "seesaw"):
        for wgs in (1, 2):
            for block_n in (32, 64, 128):
                for stages, raw in ([(2, 0)] if fp8 and schedule == "seesaw" else depths):
                    for regs in _schedule_reg_splits(spec, wgs, schedule):
                        plan = KernelPlan(
                            block_n=block_n,
                            stages=stages,
                            raw_stages=raw,
                            consumer_wgs=wgs,
                            producer_regs=regs[0],
                            consumer_regs=regs[1],
                            schedule=schedule,
                        )
                        try:
                            plans.append(check_plan(spec, plan, device))
                        except UnsupportedSpecError:
                            raise
                        except PlanError:
                            continue
                        paired = dataclasses.replace(plan, cluster=2)
                        if cluster_unsupported(spec, paired) is None:
                            plans.append(check_plan(spec, paired, device))
    if heads_n_unsupported(spec) is None:
        # heads_n: the shallowest ring, the deepest that fits and halfway between, for each layout (one
        # MMA warpgroup; two splitting the query rows, 16 or 32 columns each) and its register splits
        chunks = heads_n_tile_chunks(spec)
        for wgs in (1, 2):
            for regs in heads_n_reg_splits(spec, wgs):
                fitting = []
                for ring in range(chunks, 65):
                    try:
                        fitting.append(check_plan(spec, KernelPlan(
                            block_m=heads_n_block_m(spec, wgs), block_n=64, stages=ring, consumer_wgs=wgs,
                            producer_regs=regs[0], consumer_regs=regs[1], schedule="heads_n"), device))
                    except PlanError:
                        pass
                if fitting:
                    low, deepest = fitting[0].stages, fitting[-1].stages
                    plans.extend(p for p in fitting if p.stages in (low, (low + deepest) // 2, deepest))
    return plans
