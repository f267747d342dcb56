"""The kernel variants the GPU differential suite covers.

Each compile-time knob the generator branches on appears in at least one
variant: dtypes, head counts (odd ones too), latent KV heads 1 and 2, every
page-size regime (1 row per TMA box up to pages larger than a tile), query
tokens per request with and without causal masking, the latent/rope widths of
every spec file, one and two MMA warpgroups, RoPE placement and LSE on/off,
and the fp8_e4m3 cache (bf16 and fp16 queries, pages of 1 to 128 tokens, two
KV heads, no RoPE, query rows per KV head from 8 to 128: the split, heads_n and
seesaw schedules; MLAGEN_TEST_PLAN=schedule=split runs the heads_n shapes on the
split schedule too). ``plan_variants`` adds plans the planner does not choose: cluster=2 (over
16-bit and fp8 caches), the
M-side schedules for the few-row shapes that take heads_n by default, heads_n in column blocks,
heads_n's other number of MMA warpgroups, and the seesaw over fp8 caches.
Hypothesis then draws problems (batch, lengths, s_q, seeds) for them.
"""

from __future__ import annotations

from pathlib import Path

from mlagen.spec import MLASpec, list_spec_files, load_spec_file

__all__ = ["kernel_variants", "plan_variants", "spec_file_variants"]


def kernel_variants() -> dict[str, MLASpec]:
    """Named specs spanning the generated variant space (see module doc)."""
    v = {
        "h128_p64_bf16": MLASpec(q_heads=128),
        "h128_p64_q2_causal": MLASpec(q_heads=128, max_q=2, causal=True),
        "h16_p64_bf16": MLASpec(q_heads=16),
        "h16_p1": MLASpec(q_heads=16, page=1),
        "h64_p16_q4_causal_fp16": MLASpec(q_heads=64, page=16, max_q=4, causal=True, dtype="fp16"),
        "h3_p32_q8_causal": MLASpec(q_heads=3, page=32, max_q=8, causal=True),
        "h128_p128_fp16": MLASpec(q_heads=128, page=128, dtype="fp16"),
        "h126_kv2_p64_q2": MLASpec(q_heads=126, kv_heads=2, max_q=2),
        "h40_l256r32_p64": MLASpec(q_heads=40, latent=256, rope=32),
        "h9_l256r32_p16_q3_causal_fp16": MLASpec(q_heads=9, latent=256, rope=32, page=16, max_q=3, causal=True, dtype="fp16"),
        "h1_p64_q8_causal_nolse": MLASpec(q_heads=1, max_q=8, causal=True, lse=False),
        "h63_ropehead_p32": MLASpec(q_heads=63, rope_at="head", page=32),
        "h128_l128r0_p64_q2_causal": MLASpec(q_heads=128, latent=128, rope=0, max_q=2, causal=True),
        "h16_l64r16_p256_fp16": MLASpec(q_heads=16, latent=64, rope=16, page=256, dtype="fp16"),
        "h32_l192r64_p8": MLASpec(q_heads=32, latent=192, rope=64, page=8),
        "h64_kv2_p4_q2_causal_fp16": MLASpec(q_heads=64, kv_heads=2, page=4, max_q=2, causal=True, dtype="fp16"),
        # fp8_e4m3 latent cache (packed rows, dequantized in the kernel)
        "h128_p64_fp8": MLASpec(q_heads=128, cache_dtype="fp8_e4m3"),
        # fp8 with 128 rows per KV head and up to four m-blocks (fp16 queries, two causal tokens, 128-token
        # pages): the seesaw in m-block pairs, two clusters per KV head and part
        "h128_p128_q2_causal_fp16_fp8": MLASpec(q_heads=128, page=128, max_q=2, causal=True, dtype="fp16",
                                                cache_dtype="fp8_e4m3"),
        "h16_p16_q2_causal_fp8": MLASpec(q_heads=16, page=16, max_q=2, causal=True, cache_dtype="fp8_e4m3"),
        "h64_p1_fp16_fp8": MLASpec(q_heads=64, page=1, dtype="fp16", cache_dtype="fp8_e4m3"),
        "h32_kv2_p128_q4_causal_fp8": MLASpec(q_heads=32, kv_heads=2, page=128, max_q=4, causal=True,
                                              cache_dtype="fp8_e4m3"),
        "h8_l512r0_p64_nolse_fp8": MLASpec(q_heads=8, rope=0, lse=False, cache_dtype="fp8_e4m3"),
        # few query rows per KV head: the heads_n schedule's shapes (N = 32, padded from 24)
        "h3_p32_q8_causal_fp8": MLASpec(q_heads=3, page=32, max_q=8, causal=True, cache_dtype="fp8_e4m3"),
        "h16_kv2_p128_q3_causal_fp16_fp8": MLASpec(q_heads=16, kv_heads=2, page=128, max_q=3, causal=True,
                                                   dtype="fp16", cache_dtype="fp8_e4m3"),
        # heads_n loads 64-token chunks in page-sized boxes: pages below 16 take the split schedule
        "h16_kv2_p1_q3_causal_fp16_fp8": MLASpec(q_heads=16, kv_heads=2, page=1, max_q=3, causal=True,
                                                 dtype="fp16", cache_dtype="fp8_e4m3"),
        # RoPE first, two KV heads (Q without TMA), 16-token pages, on the 16-bit heads_n schedule
        "h16_kv2_ropehead_p16_q2_fp16": MLASpec(q_heads=16, kv_heads=2, rope_at="head", page=16, max_q=2,
                                                dtype="fp16"),
        # 32 rows per KV head over a 16-bit cache: two MMA warpgroups of 16 (two KV heads: Q without TMA,
        # loaded whole by both warpgroups)
        "h32_kv2_p64_q2_causal": MLASpec(q_heads=32, kv_heads=2, max_q=2, causal=True),
        # fp8 above 32 rows: heads_n on two MMA warpgroups of 32 columns, with padding: 48 rows (fp16
        # queries, three causal tokens, 32-token pages) in one CTA of 64 columns; 80 rows in two column
        # blocks of 64, the second 16 real
        "h16_p32_q3_causal_fp16_fp8": MLASpec(q_heads=16, page=32, max_q=3, causal=True, dtype="fp16",
                                              cache_dtype="fp8_e4m3"),
        "h40_p64_q2_causal_fp8": MLASpec(q_heads=40, max_q=2, causal=True, cache_dtype="fp8_e4m3"),
    }
    return v


def plan_variants() -> dict[str, tuple[str, dict]]:
    """Opt-in plan knobs the planner does not choose by default, each pinned on kernel variants it fits:
    test name -> (kernel variant name, plan knobs). The GPU suite checks them like the default plans."""
    return {
        # the seesaw over an fp8 cache where heads_n is the default (32 rows: two causal tokens on
        # 16-token pages, padded to 64); above 32 rows it is the default (h128_p64_fp8, h40_p64_q2_causal_fp8,
        # h32_kv2_p128_q4_causal_fp8, h16_p32_q3_causal_fp16_fp8 above)
        "h16_p16_q2_causal_fp8_seesaw": ("h16_p16_q2_causal_fp8", {"schedule": "seesaw"}),
        # two m-block CTAs sharing every KV tile's TMA loads by multicast (pages 64 and 128, one and
        # two query tokens: two and four m-blocks, i.e. one and two clusters per KV head and part)
        "h128_p64_bf16_cluster2": ("h128_p64_bf16", {"cluster": 2}),
        "h128_p64_q2_causal_cluster2": ("h128_p64_q2_causal", {"cluster": 2}),
        "h128_p128_fp16_cluster2": ("h128_p128_fp16", {"cluster": 2}),
        # over an fp8 cache the pairs (each CTA converting half of every tile into both CTAs' buffers) are the
        # default at 128 rows per KV head (h128_p64_fp8: one cluster per KV head and part; h128_p128_q2_causal_
        # fp16_fp8: two); the unpaired seesaw there stays a tuning candidate
        "h128_p64_fp8_unpaired": ("h128_p64_fp8", {"cluster": 1}),
        # pairs that only some s_q fill: an odd m-block count runs an empty m-block beside the last (the planner
        # pairs only the s_q that fill them, mlagen.compile dispatching by s_q; these pin the pair for every s_q):
        # fp8 at 40 rows per token (one m-block at s_q 1, two at 2, the second 16 real), multicast over two KV
        # heads of 63 rows (Q without TMA), and fp16 on 16-token pages at 64 rows (s_q 1 and 3 odd)
        "h40_p64_q2_causal_fp8_paired": ("h40_p64_q2_causal_fp8", {"cluster": 2}),
        "h126_kv2_p64_q2_cluster2": ("h126_kv2_p64_q2", {"cluster": 2}),
        "h64_p16_q4_causal_fp16_cluster2": ("h64_p16_q4_causal_fp16", {"cluster": 2}),
        # few query rows per KV head over a 16-bit cache take heads_n (query rows on N) by default:
        # the M-side schedule they had before stays covered (N = 16, 32 padded from 24, 16 with 8 real;
        # RoPE first with Q loaded without TMA; 16-token pages)
        "h16_p64_bf16_seesaw": ("h16_p64_bf16", {"schedule": "seesaw"}),
        "h3_p32_q8_causal_seesaw": ("h3_p32_q8_causal", {"schedule": "seesaw"}),
        "h1_p64_q8_causal_nolse_seesaw": ("h1_p64_q8_causal_nolse", {"schedule": "seesaw"}),
        "h16_kv2_ropehead_p16_q2_fp16_split": ("h16_kv2_ropehead_p16_q2_fp16", {"schedule": "split"}),
        # more than 32 query rows per KV head on heads_n: column blocks of 32 over CTAs (m-blocks)
        # reading the same KV tiles (fp8: four blocks; two KV heads, four causal query tokens and Q
        # loaded without TMA: two blocks; bf16, two causal query tokens: four blocks of 64, two MMA
        # warpgroups of 32 columns each, the 16-bit default)
        "h128_p64_fp8_headsn": ("h128_p64_fp8", {"schedule": "heads_n"}),
        "h32_kv2_p128_q4_causal_fp8_headsn": ("h32_kv2_p128_q4_causal_fp8", {"schedule": "heads_n"}),
        "h128_p64_q2_causal_headsn": ("h128_p64_q2_causal", {"schedule": "heads_n"}),
        # heads_n with two MMA warpgroups splitting the query rows, the default for 16-bit caches with 32
        # rows: pinned on fp8 (16 rows each: causal tokens on 16-token pages; fp16 over fp8 with two KV
        # heads, 24 rows padded to 32), and one MMA warpgroup pinned where a 16-bit cache would get two
        # (24 rows padded to 32; column blocks of 32, where the default plan has four blocks of 64).
        # fp8 with more than 32 rows defaults to two of 32 columns (one producer warpgroup, three
        # converting warps, registers 72/216: h128_p64_fp8 in two column blocks of 64, two KV heads with
        # four causal tokens 64 rows on one CTA); pinned: the other register split, and the split schedule
        "h16_p16_q2_causal_fp8_headsn2wg": ("h16_p16_q2_causal_fp8", {"schedule": "heads_n", "consumer_wgs": 2}),
        "h16_kv2_p128_q3_causal_fp16_fp8_headsn2wg": ("h16_kv2_p128_q3_causal_fp16_fp8",
                                                      {"schedule": "heads_n", "consumer_wgs": 2}),
        "h128_p64_fp8_headsn2wg56": ("h128_p64_fp8", {"schedule": "heads_n", "consumer_wgs": 2,
                                                      "producer_regs": 56, "consumer_regs": 224}),
        "h128_p64_fp8_split": ("h128_p64_fp8", {"schedule": "split"}),
        # heads_n over fp8 with three producer warpgroups (eleven converting warps, registers 88/232): 8 rows on
        # 16 columns without RoPE or LSE; 24 rows of eight causal tokens padded to 32 on 32-token pages
        "h8_l512r0_p64_nolse_fp8_p3": ("h8_l512r0_p64_nolse_fp8", {"producer_regs": 88, "consumer_regs": 232}),
        "h3_p32_q8_causal_fp8_p3": ("h3_p32_q8_causal_fp8", {"producer_regs": 88, "consumer_regs": 232}),
        "h32_kv2_p128_q4_causal_fp8_split": ("h32_kv2_p128_q4_causal_fp8", {"schedule": "split"}),
        "h3_p32_q8_causal_headsn1wg": ("h3_p32_q8_causal", {"schedule": "heads_n", "consumer_wgs": 1}),
        "h128_p64_q2_causal_headsn1wg": ("h128_p64_q2_causal", {"schedule": "heads_n", "consumer_wgs": 1}),
    }


def spec_file_variants(directory: str | Path = "specs") -> dict[str, MLASpec]:
    """The specs of the spec files (by file stem)."""
    return {path.stem: load_spec_file(path).spec for path in list_spec_files(directory)}
