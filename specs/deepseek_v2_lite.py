"""DeepSeek-V2-Lite decode: 16 heads, same 512 + 64 latent cache as V3.

A small MLA model (no query compression) whose full head count is what one GPU
of a tensor-parallel V3 deployment sees; its YaRN correction uses
mscale_all_dim 0.707.
"""
from mlagen.models import DEEPSEEK_V2_LITE

model = DEEPSEEK_V2_LITE
spec = model.decode_spec(page=64)
