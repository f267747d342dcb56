"""Kimi-K2 decode: 64 heads over DeepSeek-V3's 512 + 64 latent cache.

Kimi-K2 keeps DeepSeek-V3's attention dims but halves the heads to 64, which
halves the compute per cached byte.
"""
from mlagen.models import KIMI_K2

model = KIMI_K2
spec = model.decode_spec(page=64)
