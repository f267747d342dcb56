"""DeepSeek-V3 / R1 decode with 4-way tensor parallelism and multi-token prediction: 32 heads, 2 query tokens.

Four GPUs split the 128 query heads four ways, and speculative decoding with the MTP module brings one
drafted token per request: 64 query rows per KV head at s_q 2 (the seesaw), 32 at s_q 1. Calls with one
token (a request whose draft is off, or a step without drafts) run the heads_n kernel compiled for one
token, not the seesaw's 64-row tile half empty (``mlagen.plan.narrow_heads_n``).
"""
from mlagen.models import DEEPSEEK_V3

model = DEEPSEEK_V3
spec = model.decode_spec(tp=4, page=64, max_q=2, causal=True)
