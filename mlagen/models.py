"""Attention dimensions of real MLA models, and the decode specs they imply.

An :class:`MLAModel` holds the numbers of a model's ``config.json`` that matter
for attention. :meth:`MLAModel.decode_spec` turns them into the
:class:`~mlagen.spec.MLASpec` of the absorbed decode kernel: ``latent =
kv_lora``, ``rope = rope``, and the model's own softmax scale. The scale stays
the model's ``1/sqrt(nope + rope)``-based value (times the YaRN correction where
the model uses one): absorbing W_UK into the query changes the vectors that are
multiplied, not the logits, so it must not become 1/sqrt(kv_lora + rope).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

from mlagen.spec import MLASpec, SpecError

__all__ = [
    "DEEPSEEK_V2_LITE",
    "DEEPSEEK_V3",
    "KIMI_K2",
    "MINICPM3_4B",
    "MODELS",
    "MLAModel",
    "yarn_mscale",
]

# Bytes per cached value in the model's own dtype (bf16) for the comparisons.
_MODEL_DTYPE_BYTES = 2


def yarn_mscale(factor: float, mscale_all_dim: float = 1.0) -> float:
    """YaRN's attention-temperature correction, ``0.1 * mscale_all_dim * ln(factor) + 1``
    (1 for ``factor <= 1``). DeepSeek-style models multiply the softmax scale by
    its square."""
    if factor <= 1:
        return 1.0
    return 0.1 * mscale_all_dim * math.log(factor) + 1.0


@dataclass(frozen=True)
class MLAModel:
    """The attention dimensions of one MLA model (per layer, whole model, no
    tensor parallelism).

    ``q_lora`` is None for models without query compression. ``softmax_scale``
    None means ``1/sqrt(nope + rope)``; it is a float after construction.
    """

    name: str
    hidden: int
    q_heads: int
    q_lora: int | None
    kv_lora: int
    rope: int
    nope: int
    v_head: int
    layers: int
    softmax_scale: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise SpecError(f"MLAModel.name = {self.name!r}: must be a non-empty string")
        for attr in ("hidden", "q_heads", "kv_lora", "nope", "v_head", "layers"):
            _positive(attr, getattr(self, attr))
        if self.q_lora is not None:
            _positive("q_lora", self.q_lora)
        if not isinstance(self.rope, int) or isinstance(self.rope, bool) or self.rope < 0:
            raise SpecError(f"MLAModel.rope = {self.rope!r}: must be an integer >= 0")
        scale = self.softmax_scale
        if scale is None:
            scale = 1.0 / math.sqrt(self.nope + self.rope)
        elif isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
            raise SpecError(f"MLAModel.softmax_scale = {scale!r}: must be None or a finite number > 0")
        object.__setattr__(self, "softmax_scale", float(scale))

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | str | Path, *, name: str | None = None) -> "MLAModel":
        """The model of a Hugging Face ``config.json`` of a DeepSeek-style MLA model (DeepSeek-V2/V3/R1,
        Kimi-K2, MiniCPM3, ...): the dict, the file, or the folder holding it.

        Reads ``hidden_size``, ``num_attention_heads``, ``q_lora_rank`` (null: no query compression),
        ``kv_lora_rank``, ``qk_rope_head_dim``, ``qk_nope_head_dim``, ``v_head_dim`` and
        ``num_hidden_layers``. The softmax scale is the models' own rule: ``(nope + rope) ** -0.5``, times
        ``yarn_mscale(factor, mscale_all_dim) ** 2`` where ``rope_scaling`` gives a non-zero
        ``mscale_all_dim`` (YaRN's temperature; LongRoPE and others leave it unchanged). ``name``
        defaults to the config's ``_name_or_path``, else the folder's name, else its ``model_type``.
        """
        source, folder = "config", None
        if not isinstance(config, Mapping):
            path = Path(config)
            if path.is_dir():
                path = path / "config.json"
            source, folder = str(path), path.parent.name or None
            try:
                config = json.loads(path.read_text())
            except OSError as err:
                raise SpecError(f"MLAModel.from_config: cannot read {path}: {err.strerror or err}") from err
            except json.JSONDecodeError as err:
                raise SpecError(f"MLAModel.from_config: {path} is not JSON: {err}") from err
            if not isinstance(config, Mapping):
                raise SpecError(f"MLAModel.from_config: {path} holds a JSON {type(config).__name__}, not an object")

        def key(k: str, *, optional: bool = False):
            if k not in config:
                if optional:
                    return None
                what = ("not an MLA model (no kv_lora_rank)" if k == "kv_lora_rank"
                        else "an MLA config names hidden_size, num_attention_heads, q_lora_rank, kv_lora_rank, "
                             "qk_rope_head_dim, qk_nope_head_dim, v_head_dim and num_hidden_layers")
                raise SpecError(f"MLAModel.from_config: {source} has no {k!r}: {what}")
            return config[k]

        name = name or config.get("_name_or_path") or folder or config.get("model_type") or "model"
        try:  # the constructor checks the numbers; the message gains the config they came from
            model = cls(name=str(name), hidden=key("hidden_size"), q_heads=key("num_attention_heads"),
                        q_lora=key("q_lora_rank", optional=True), kv_lora=key("kv_lora_rank"),
                        rope=key("qk_rope_head_dim"), nope=key("qk_nope_head_dim"), v_head=key("v_head_dim"),
                        layers=key("num_hidden_layers"))
        except SpecError as err:
            if str(err).startswith("MLAModel.from_config"):
                raise
            raise SpecError(f"MLAModel.from_config: {source}: {err}") from err
        scaling = config.get("rope_scaling")
        if isinstance(scaling, Mapping) and scaling.get("mscale_all_dim"):
            if not isinstance(scaling.get("factor"), (int, float)):
                raise SpecError(f"MLAModel.from_config: {source}: rope_scaling has mscale_all_dim but no numeric factor")
            mscale = yarn_mscale(float(scaling["factor"]), float(scaling["mscale_all_dim"]))
            model = replace(model, softmax_scale=model.qk_head_dim ** -0.5 * mscale ** 2)  # the models' own rounding
        return model

    @property
    def qk_head_dim(self) -> int:
        """Per-head query/key width before absorption: nope + rope."""
        return self.nope + self.rope

    def decode_spec(self, *, tp: int = 1, **overrides: Any) -> MLASpec:
        """The absorbed decode spec of this model.

        ``q_heads``, ``latent`` (= kv_lora), ``rope`` and ``scale`` (the model's
        softmax scale) come from the model; any :class:`MLASpec` field given as
        a keyword overrides them. ``tp`` splits the query heads over that many
        GPUs (``q_heads // tp`` per GPU).
        """
        if not isinstance(tp, int) or isinstance(tp, bool) or tp < 1 or self.q_heads % tp:
            raise SpecError(f"MLAModel.decode_spec: tp = {tp!r}: must be an integer >= 1 dividing q_heads (= {self.q_heads})")
        if tp != 1 and "q_heads" in overrides:
            raise SpecError("MLAModel.decode_spec: give tp or q_heads, not both")
        fields: dict[str, Any] = {
            "q_heads": self.q_heads // tp,
            "latent": self.kv_lora,
            "rope": self.rope,
            "scale": self.softmax_scale,
        }
        fields.update(overrides)
        return MLASpec(**fields)

    # Cache sizes per token per layer, in bytes of the model dtype (bf16).
    def mla_cache_bytes(self) -> int:
        """MLA: one latent vector plus one shared RoPE key."""
        return (self.kv_lora + self.rope) * _MODEL_DTYPE_BYTES

    def mha_cache_bytes(self) -> int:
        """The same model with ordinary multi-head attention: K and V per head."""
        return self.q_heads * (self.qk_head_dim + self.v_head) * _MODEL_DTYPE_BYTES

    def gqa_cache_bytes(self, groups: int) -> int:
        """Grouped-query attention with ``groups`` KV heads of the same head dims."""
        if not isinstance(groups, int) or groups < 1:
            raise ValueError(f"groups = {groups!r}: must be an integer >= 1")
        return groups * (self.qk_head_dim + self.v_head) * _MODEL_DTYPE_BYTES

    def cache_comparison(self, gqa_groups: int = 8) -> list[tuple[str, str, int]]:
        """Rows ``(layout, formula, bytes per token per layer)`` for MLA, MHA and GQA."""
        b = _MODEL_DTYPE_BYTES
        kv_width = f"({self.qk_head_dim} + {self.v_head})"
        return [
            ("MLA", f"({self.kv_lora} + {self.rope}) × {b}", self.mla_cache_bytes()),
            ("MHA", f"{self.q_heads} × {kv_width} × {b}", self.mha_cache_bytes()),
            (f"GQA-{gqa_groups}", f"{gqa_groups} × {kv_width} × {b}", self.gqa_cache_bytes(gqa_groups)),
        ]


def _positive(attr: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise SpecError(f"MLAModel.{attr} = {value!r}: must be an integer >= 1")


# Numbers from each model's public config.json on the Hugging Face hub.
# DeepSeek-style scale: qk_head_dim ** -0.5 * mscale ** 2 with
# mscale = yarn_mscale(rope_scaling.factor, rope_scaling.mscale_all_dim).

# deepseek-ai/DeepSeek-V3 (and R1): rope_scaling factor 40, mscale_all_dim 1.0.
DEEPSEEK_V3 = MLAModel(
    name="DeepSeek-V3",
    hidden=7168,
    q_heads=128,
    q_lora=1536,
    kv_lora=512,
    rope=64,
    nope=128,
    v_head=128,
    layers=61,
    softmax_scale=(128 + 64) ** -0.5 * yarn_mscale(40, 1.0) ** 2,
)

# deepseek-ai/DeepSeek-V2-Lite: no query compression; factor 40, mscale_all_dim 0.707.
DEEPSEEK_V2_LITE = MLAModel(
    name="DeepSeek-V2-Lite",
    hidden=2048,
    q_heads=16,
    q_lora=None,
    kv_lora=512,
    rope=64,
    nope=128,
    v_head=128,
    layers=27,
    softmax_scale=(128 + 64) ** -0.5 * yarn_mscale(40, 0.707) ** 2,
)

# moonshotai/Kimi-K2-Instruct (first release): factor 32.0, mscale_all_dim 1.0
# (128k context = 32 x 4096). Kimi-K2-Instruct-0905 uses factor 64.0 for 256k;
# a spec for it would pass its own scale.
KIMI_K2 = MLAModel(
    name="Kimi-K2",
    hidden=7168,
    q_heads=64,
    q_lora=1536,
    kv_lora=512,
    rope=64,
    nope=128,
    v_head=128,
    layers=61,
    softmax_scale=(128 + 64) ** -0.5 * yarn_mscale(32, 1.0) ** 2,
)

# openbmb/MiniCPM3-4B: LongRoPE rescales the rotary frequencies only, so the
# softmax scale is the plain 1/sqrt(nope + rope) = 1/sqrt(96).
MINICPM3_4B = MLAModel(
    name="MiniCPM3-4B",
    hidden=2560,
    q_heads=40,
    q_lora=768,
    kv_lora=256,
    rope=32,
    nope=64,
    v_head=64,
    layers=62,
)

MODELS: dict[str, MLAModel] = {m.name: m for m in (DEEPSEEK_V3, DEEPSEEK_V2_LITE, KIMI_K2, MINICPM3_4B)}
