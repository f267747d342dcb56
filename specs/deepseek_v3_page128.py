"""DeepSeek-V3 / R1 decode over a cache of 128-token pages.

Large pages: fewer block-table lookups and longer contiguous loads, at the
cost of more unused cache at the end of each sequence.
"""
from mlagen.models import DEEPSEEK_V3

model = DEEPSEEK_V3
spec = model.decode_spec(page=128)
