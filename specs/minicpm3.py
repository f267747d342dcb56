"""MiniCPM3-4B decode: 40 heads over a 256 + 32 latent cache.

A small MLA model with a head count that is not a multiple of 16 and half-size
latent and RoPE widths (d_qk 288, d_v 256).
"""
from mlagen.models import MINICPM3_4B

model = MINICPM3_4B
spec = model.decode_spec(page=64)
