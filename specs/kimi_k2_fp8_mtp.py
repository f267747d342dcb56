"""Kimi-K2 decode over an fp8_e4m3 latent cache with one drafted token: 64 heads, 2 causal query tokens.

Kimi-K2 keeps DeepSeek-V3's 512 + 64 latent cache at 64 heads. With speculative
decoding each request brings 2 query tokens, 128 query rows per KV head: the
fp8 seesaw then runs in m-block pairs that convert each tile once between them,
while calls with a single query token (64 rows, one m-block) run unpaired;
`mlagen.compile` picks the kernel by the call's s_q.
"""
from mlagen.models import KIMI_K2

model = KIMI_K2
spec = model.decode_spec(page=64, max_q=2, causal=True, cache_dtype="fp8_e4m3")
