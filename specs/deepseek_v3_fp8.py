"""DeepSeek-V3 / R1 decode over an fp8_e4m3 latent cache.

The latent is stored as fp8 with one float32 scale per 128 values and the RoPE
key stays bf16: 656 bytes per token instead of 1152, so long contexts fit in
less memory and the memory-bound kernel reads less.
"""
from mlagen.models import DEEPSEEK_V3

model = DEEPSEEK_V3
spec = model.decode_spec(page=64, cache_dtype="fp8_e4m3")
