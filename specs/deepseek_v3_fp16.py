"""DeepSeek-V3 / R1 decode in fp16 instead of bf16.

Same shapes as the baseline with fp16 queries, cache and output, for stacks
and GPUs set up for half precision.
"""
from mlagen.models import DEEPSEEK_V3

model = DEEPSEEK_V3
spec = model.decode_spec(page=64, dtype="fp16")
