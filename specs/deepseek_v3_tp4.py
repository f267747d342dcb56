"""DeepSeek-V3 / R1 decode with 4-way tensor parallelism: 32 heads per GPU.

Four GPUs with large memory (H200, or H100 with an fp8 model) split the 128 query heads four ways;
each GPU attends with 32 heads over the full latent cache. The planner runs it on the heads_n
schedule with two MMA warpgroups of 16 query rows each.
"""
from mlagen.models import DEEPSEEK_V3

model = DEEPSEEK_V3
spec = model.decode_spec(tp=4, page=64)
