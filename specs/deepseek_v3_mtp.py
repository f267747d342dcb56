"""DeepSeek-V3 / R1 decode with multi-token prediction: 2 causal query tokens per request.

Speculative decoding with DeepSeek-V3's MTP module verifies one drafted token
per step, so each request brings 2 query tokens; the second sees one key more
than the first.
"""
from mlagen.models import DEEPSEEK_V3

model = DEEPSEEK_V3
spec = model.decode_spec(page=64, max_q=2, causal=True)
