"""Hugging Face config.json entries of the models in mlagen/models.py, for the tests of MLAModel.from_config
and `mlagen new`."""

# The attention entries of each model's public config.json on the Hugging Face hub (other keys left out).
_YARN = {"beta_fast": 32, "beta_slow": 1, "original_max_position_embeddings": 4096, "type": "yarn"}
HF_CONFIGS = {
    "DeepSeek-V3": dict(hidden_size=7168, num_attention_heads=128, q_lora_rank=1536, kv_lora_rank=512,
                        qk_rope_head_dim=64, qk_nope_head_dim=128, v_head_dim=128, num_hidden_layers=61,
                        rope_scaling={**_YARN, "factor": 40, "mscale": 1.0, "mscale_all_dim": 1.0}),
    "DeepSeek-V2-Lite": dict(hidden_size=2048, num_attention_heads=16, q_lora_rank=None, kv_lora_rank=512,
                             qk_rope_head_dim=64, qk_nope_head_dim=128, v_head_dim=128, num_hidden_layers=27,
                             rope_scaling={**_YARN, "factor": 40, "mscale": 0.707, "mscale_all_dim": 0.707}),
    "Kimi-K2": dict(hidden_size=7168, num_attention_heads=64, q_lora_rank=1536, kv_lora_rank=512,
                    qk_rope_head_dim=64, qk_nope_head_dim=128, v_head_dim=128, num_hidden_layers=61,
                    rope_scaling={**_YARN, "beta_fast": 1.0, "beta_slow": 1.0, "factor": 32.0, "mscale": 1.0,
                                  "mscale_all_dim": 1.0}),
    "MiniCPM3-4B": dict(hidden_size=2560, num_attention_heads=40, q_lora_rank=768, kv_lora_rank=256,
                        qk_rope_head_dim=32, qk_nope_head_dim=64, v_head_dim=64, num_hidden_layers=62,
                        rope_scaling={"type": "longrope", "long_factor": [1.0] * 16, "short_factor": [1.0] * 16,
                                      "original_max_position_embeddings": 32768}),
}
