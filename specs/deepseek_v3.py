"""DeepSeek-V3 / R1 decode: 128 heads on one GPU, bf16, 64-token pages.

The baseline variant and FlashMLA's own configuration: 128 query heads over a
576-wide key (512 latent + 64 RoPE) and 512-wide values, one query token per
request, with the model's YaRN-corrected softmax scale.
"""
from mlagen.models import DEEPSEEK_V3

model = DEEPSEEK_V3
spec = model.decode_spec(page=64)
