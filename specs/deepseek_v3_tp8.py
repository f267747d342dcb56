"""DeepSeek-V3 / R1 decode with 8-way tensor parallelism: 16 heads per GPU.

Serving stacks that split attention heads over 8 GPUs run this variant: each
GPU attends with 16 of the 128 query heads over the full latent cache.
"""
from mlagen.models import DEEPSEEK_V3

model = DEEPSEEK_V3
spec = model.decode_spec(tp=8, page=64)
