"""DeepSeek-V3 / R1 decode over a cache of 16-token pages.

vLLM's default block size for most attention backends; smaller pages than
FlashMLA's 64 mean more block-table lookups per key tile.
"""
from mlagen.models import DEEPSEEK_V3

model = DEEPSEEK_V3
spec = model.decode_spec(page=16)
