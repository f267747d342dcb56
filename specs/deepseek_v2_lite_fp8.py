"""DeepSeek-V2-Lite decode over an fp8_e4m3 latent cache.

16 query heads share the latent KV head: few enough query rows to put on
wgmma's N, so the planner picks the heads_n schedule (one MMA warpgroup, seven
dequantizing warps). 656 bytes per token instead of 1152.
"""
from mlagen.models import DEEPSEEK_V2_LITE

model = DEEPSEEK_V2_LITE
spec = model.decode_spec(page=64, cache_dtype="fp8_e4m3")
