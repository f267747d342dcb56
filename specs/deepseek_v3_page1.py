"""DeepSeek-V3 / R1 decode over a cache of 1-token pages.

Token-granular paging (SGLang's default page size) removes all fragmentation
but gives the kernel no contiguous run of tokens to load.
"""
from mlagen.models import DEEPSEEK_V3

model = DEEPSEEK_V3
spec = model.decode_spec(page=1)
