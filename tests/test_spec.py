"""MLASpec validation, normalization, identity, conversions, and spec files."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from mlagen.models import DEEPSEEK_V3, MLAModel, yarn_mscale
from mlagen.spec import MLASpec, SpecError, SpecFileError, list_spec_files, load_spec, load_spec_file
from mlagen.testing import specs

from hf_configs import HF_CONFIGS

REPO = Path(__file__).resolve().parent.parent
SPECS = REPO / "specs"
FIELDS = [f.name for f in dataclasses.fields(MLASpec) if not f.name.startswith("_")]


def _not_pow2(v: int) -> bool:
    return v & (v - 1) != 0


_junk = st.one_of(st.none(), st.text(max_size=4), st.floats(allow_nan=False), st.lists(st.integers(), max_size=2))


def _junk_but(*valid):
    """``_junk`` without the field's valid values (its short texts can draw "bf16", "head" or "tail")."""
    return _junk.filter(lambda v: v not in valid)


# Values no int field accepts: bools, floats (even integral ones), strings, None.
_not_int = st.one_of(st.booleans(), st.floats(), st.just(64.0), st.text(max_size=4), st.none())

INVALID = {
    "q_heads": st.one_of(st.integers(max_value=0), st.integers(min_value=129), _not_int),
    "latent": st.one_of(
        st.integers(max_value=63),
        st.integers(min_value=1025),
        st.integers(64, 1024).filter(lambda v: v % 64),
        _not_int,
    ),
    "rope": st.one_of(
        st.integers(max_value=-1),
        st.integers(min_value=257),
        st.integers(0, 256).filter(lambda v: v % 16),
        _not_int,
    ),
    "kv_heads": st.one_of(st.integers(max_value=0), _not_int),
    "dtype": st.one_of(st.text(max_size=8).filter(lambda v: v not in ("bf16", "fp16")), st.just("fp8_e4m3"), _junk_but("bf16", "fp16")),
    "cache_dtype": st.one_of(
        st.text(max_size=8).filter(lambda v: v not in ("bf16", "fp16", "fp8_e4m3")),
        st.sampled_from(["fp8_e5m2", "BF16", "float16", "fp32"]),
        st.integers(),
        st.booleans(),
    ),
    "page": st.one_of(
        st.integers(max_value=0),
        st.integers(min_value=257),
        st.integers(1, 256).filter(_not_pow2),
        _not_int,
    ),
    "max_q": st.one_of(st.integers(max_value=0), st.integers(min_value=9), _not_int),
    "causal": st.one_of(st.integers(), st.text(max_size=4), st.none(), st.floats()),
    "scale": st.one_of(
        st.floats(max_value=0.0),
        st.sampled_from([math.nan, math.inf, -math.inf]),
        st.booleans(),
        st.text(max_size=4),
    ),
    "lse": st.one_of(st.integers(), st.text(max_size=4), st.none()),
    "rope_at": st.one_of(st.text(max_size=6).filter(lambda v: v not in ("tail", "head")), _junk_but("tail", "head")),
    "arch": st.one_of(st.text(max_size=8).filter(lambda v: v != "sm_90a"), st.sampled_from(["sm_90", "sm_100a"]), _junk),
}


def test_every_field_has_invalid_values():
    assert sorted(INVALID) == sorted(FIELDS)


@pytest.mark.parametrize("field", FIELDS)
@given(data=st.data())
def test_invalid_value_names_the_field(field, data):
    value = data.draw(INVALID[field], label=field)
    kwargs = {"q_heads": 128, field: value}
    with pytest.raises(SpecError) as info:
        MLASpec(**kwargs)
    message = str(info.value)
    assert message.startswith(f"MLASpec.{field} = {value!r}: "), message
    assert "\n" not in message


def test_error_message_examples():
    with pytest.raises(SpecError, match=r"^MLASpec\.page = 48: must be a power of two in 1\.\.256$"):
        MLASpec(q_heads=128, page=48)
    with pytest.raises(SpecError, match=r"^MLASpec\.kv_heads = 3: must divide q_heads \(= 128\)$"):
        MLASpec(q_heads=128, kv_heads=3)


@given(q_heads=st.integers(1, 128), kv_heads=st.integers(1, 300))
def test_kv_heads_must_divide_q_heads(q_heads, kv_heads):
    if q_heads % kv_heads == 0:
        assert MLASpec(q_heads=q_heads, kv_heads=kv_heads).heads_per_kv == q_heads // kv_heads
    else:
        with pytest.raises(SpecError, match=rf"^MLASpec\.kv_heads = {kv_heads}: .*q_heads \(= {q_heads}\)"):
            MLASpec(q_heads=q_heads, kv_heads=kv_heads)


@pytest.mark.parametrize("dtype,cache", [("bf16", "fp16"), ("fp16", "bf16")])
def test_cache_dtype_must_match_dtype(dtype, cache):
    with pytest.raises(SpecError, match=rf"^MLASpec\.cache_dtype = '{cache}': .*dtype \(= '{dtype}'\)"):
        MLASpec(q_heads=16, dtype=dtype, cache_dtype=cache)


@given(latent=st.sampled_from(range(64, 1025, 64)))
def test_fp8_cache_needs_latent_multiple_of_128(latent):
    if latent % 128:
        with pytest.raises(SpecError, match=rf"^MLASpec\.latent = {latent}: .*cache_dtype = 'fp8_e4m3'"):
            MLASpec(q_heads=16, latent=latent, cache_dtype="fp8_e4m3")
    else:
        assert MLASpec(q_heads=16, latent=latent, cache_dtype="fp8_e4m3").cache_dtype == "fp8_e4m3"


@given(s=specs())
def test_strategy_specs_are_valid_and_normalized(s):
    assert s.cache_dtype in (s.dtype, "fp8_e4m3")
    assert isinstance(s.scale, float) and s.scale > 0
    assert not (s.causal and s.max_q == 1)
    assert s.rope or s.rope_at == "tail"
    assert MLASpec(**s.to_dict()) == s


# ------------------------------------------------------------ normalization
def test_equivalent_specs_are_equal_and_hash_equal():
    a = MLASpec(q_heads=16)
    b = MLASpec(q_heads=16, cache_dtype="bf16", scale=1 / 576**0.5)
    c = MLASpec(q_heads=16, scale=576**-0.5)
    assert a == b == c
    assert len({a, b, c}) == 1
    assert a.key == b.key == c.key
    # 128 ** -0.5 and 1 / sqrt(128) differ in the last bit; both are the default.
    assert 128**-0.5 != 1 / math.sqrt(128)
    d = MLASpec(q_heads=16, latent=64, rope=64, scale=128**-0.5)
    assert d == MLASpec(q_heads=16, latent=64, rope=64) and d.is_default_scale


def test_defaults_resolve():
    s = MLASpec(q_heads=16, dtype="fp16")
    assert s.cache_dtype == "fp16"
    assert type(s.scale) is float and s.scale == 1 / math.sqrt(576)
    assert s.is_default_scale and not s.scale_is_explicit
    assert type(MLASpec(q_heads=16, scale=1).scale) is float


def test_causal_normalized_when_single_query():
    assert MLASpec(q_heads=8, causal=True) == MLASpec(q_heads=8)
    assert MLASpec(q_heads=8, causal=True).causal is False
    assert MLASpec(q_heads=8, max_q=2, causal=True).causal is True
    assert MLASpec(q_heads=8, max_q=2, causal=True) != MLASpec(q_heads=8, max_q=2)


def test_rope_layout_normalized_without_rope():
    assert MLASpec(q_heads=8, rope=0, rope_at="head") == MLASpec(q_heads=8, rope=0)
    assert MLASpec(q_heads=8, rope_at="head") != MLASpec(q_heads=8)


def test_derived_properties():
    s = MLASpec(q_heads=128, max_q=2, causal=True)
    assert (s.d_qk, s.d_v, s.heads_per_kv) == (576, 512, 128)
    assert s.cache_bytes_per_token == 576 * 2
    assert MLASpec(q_heads=128, cache_dtype="fp8_e4m3").cache_bytes_per_token == 512 + 4 * 4 + 64 * 2 == 656
    assert MLASpec(q_heads=40, latent=256, rope=32).cache_bytes_per_token == 288 * 2
    assert MLASpec(q_heads=8, kv_heads=2).cache_bytes_per_token == 2 * 1152
    assert MLASpec(q_heads=8, kv_heads=2, cache_dtype="fp8_e4m3").cache_bytes_per_token == 2 * 656
    assert MLASpec(q_heads=8, kv_heads=2).heads_per_kv == 4


# ----------------------------------------------------------------- identity
def test_key_format():
    s = MLASpec(q_heads=128, max_q=2, causal=True)
    assert s.key == "h128.kv1.l512.r64t.bf16.cbf16.p64.q2c.lse.sm90a"
    t = MLASpec(q_heads=16, latent=256, rope=32, kv_heads=2, dtype="fp16", page=1, lse=False, rope_at="head", scale=0.5)
    assert t.key == "h16.kv2.l256.r32h.fp16.cfp16.p1.q1.nolse.s=0.5.sm90a"
    assert s.short_hash == hashlib.sha256(s.key.encode()).hexdigest()[:12]
    assert re.fullmatch(r"[0-9a-f]{12}", s.short_hash)


def test_name_is_readable_and_safe():
    s = MLASpec(q_heads=128, max_q=2, causal=True)
    assert s.name == f"mla_h128_l512r64_bf16_p64_q2c_{s.short_hash[:8]}"
    assert s.name.isidentifier()


@given(s=specs())
def test_name_is_filesystem_and_identifier_safe(s):
    assert re.fullmatch(r"[a-z][a-z0-9_]*", s.name)
    assert s.name.endswith(s.short_hash[:8])


def test_key_is_stable_across_processes():
    code = (
        "from mlagen import MLASpec; s = MLASpec(q_heads=64, max_q=3, causal=True, scale=0.1);"
        "print(s.key, s.short_hash, s.name)"
    )
    runs = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={**os.environ, "PYTHONHASHSEED": seed}
        ).stdout
        for seed in ("1", "2")
    }
    s = MLASpec(q_heads=64, max_q=3, causal=True, scale=0.1)
    assert runs == {f"{s.key} {s.short_hash} {s.name}\n"}


@st.composite
def _near_pairs(draw):
    """A spec and a copy with one field taken from another random spec."""
    a = draw(specs())
    other = draw(specs())
    field = draw(st.sampled_from(FIELDS))
    try:
        b = a.replace(**{field: getattr(other, field)})
    except SpecError:
        assume(False)
    return a, b


@given(pair=st.one_of(st.tuples(specs(), specs()), _near_pairs()))
def test_key_hash_and_name_equal_iff_specs_equal(pair):
    a, b = pair
    assert (a == b) == (a.key == b.key) == (a.short_hash == b.short_hash) == (a.name == b.name)
    if a == b:
        assert hash(a) == hash(b)


ALTERNATIVES = {
    "q_heads": 64,
    "latent": 256,
    "rope": 32,
    "kv_heads": 2,
    "dtype": "fp16",
    "cache_dtype": "fp8_e4m3",
    "page": 16,
    "max_q": 3,
    "causal": False,
    "scale": 0.25,
    "lse": False,
    "rope_at": "head",
}


@pytest.mark.parametrize("field", sorted(ALTERNATIVES))
def test_each_field_changes_the_key(field):
    base = MLASpec(q_heads=128, max_q=2, causal=True)
    changed = base.replace(**{field: ALTERNATIVES[field]})
    assert getattr(changed, field) != getattr(base, field)
    assert changed != base and changed.key != base.key and changed.name != base.name


# -------------------------------------------------------------- conversions
@given(s=specs())
def test_dict_json_round_trip(s):
    back = MLASpec.from_dict(json.loads(json.dumps(s.to_dict())))
    assert back == s and back.key == s.key
    assert back.scale_is_explicit == s.scale_is_explicit
    assert back.replace(rope=0 if s.rope else 64) == s.replace(rope=0 if s.rope else 64)


def test_to_dict_lists_public_fields():
    d = MLASpec(q_heads=16, scale=0.2).to_dict()
    assert list(d) == FIELDS and d["scale"] == 0.2
    assert MLASpec(q_heads=16).to_dict()["scale"] is None


def test_from_dict_errors():
    with pytest.raises(SpecError, match="unknown field 'heads'"):
        MLASpec.from_dict({"q_heads": 16, "heads": 4})
    with pytest.raises(SpecError, match="q_heads: missing"):
        MLASpec.from_dict({"latent": 512})
    with pytest.raises(SpecError, match="expected a mapping"):
        MLASpec.from_dict([("q_heads", 16)])
    assert MLASpec.from_dict({"q_heads": 16}) == MLASpec(q_heads=16)


def test_replace_normalizes_causal():
    s = MLASpec(q_heads=16, max_q=2, causal=True)
    assert s.replace(max_q=1).causal is False
    assert s.replace(max_q=4).causal is True


def test_replace_default_scale_follows_d_qk():
    s = MLASpec(q_heads=16)
    assert s.replace(latent=256).scale == 1 / math.sqrt(256 + 64)
    assert s.replace(latent=256) == MLASpec(q_heads=16, latent=256)
    assert s.replace(rope=0).scale == 1 / math.sqrt(512)
    assert s.replace(latent=256).replace(latent=512) == s
    assert not s.replace(latent=256).scale_is_explicit
    # dataclasses.replace copies the resolved scale; it must follow too.
    assert dataclasses.replace(s, latent=256) == MLASpec(q_heads=16, latent=256)


def test_replace_keeps_explicit_scale():
    s = MLASpec(q_heads=16, scale=0.1)
    assert s.replace(latent=256).scale == 0.1
    assert dataclasses.replace(s, latent=256).scale == 0.1
    # Given explicitly, even the default value is kept (it equals the default spec meanwhile).
    t = MLASpec(q_heads=16, scale=1 / 24)
    assert t == MLASpec(q_heads=16) and t.scale_is_explicit
    assert t.replace(rope=0).scale == 1 / 24
    assert s.replace(scale=None) == MLASpec(q_heads=16)
    assert MLASpec(q_heads=16).replace(scale=0.3).replace(latent=128).scale == 0.3


def test_replace_of_model_spec_keeps_model_scale():
    s = DEEPSEEK_V3.decode_spec()
    assert s.replace(page=16).scale == s.scale == DEEPSEEK_V3.softmax_scale


def test_replace_dtype_and_cache_dtype():
    s = MLASpec(q_heads=16)
    assert s.replace(dtype="fp16").cache_dtype == "fp16"
    assert s.replace(cache_dtype="fp8_e4m3").replace(dtype="fp16").cache_dtype == "fp8_e4m3"
    with pytest.raises(SpecError, match="MLASpec.cache_dtype = 'bf16'"):
        s.replace(dtype="fp16", cache_dtype="bf16")


def test_replace_validates():
    s = MLASpec(q_heads=16)
    with pytest.raises(SpecError, match=r"^MLASpec\.page = 3:"):
        s.replace(page=3)
    with pytest.raises(SpecError, match="unknown field 'pages'"):
        s.replace(pages=16)


@given(s=specs(), other=specs(), field=st.sampled_from([f for f in FIELDS if f != "dtype"]))
def test_replace_equals_rebuilding_from_dict(s, other, field):
    value = getattr(other, field)
    try:
        expected = MLASpec(**{**s.to_dict(), field: value})
    except SpecError:
        with pytest.raises(SpecError):
            s.replace(**{field: value})
        return
    assert s.replace(**{field: value}) == expected


def test_describe():
    text = MLASpec(q_heads=128, max_q=2, causal=True, page=16).describe()
    assert "\n" not in text and text.endswith(".")
    for part in ("128 query heads", "512-wide latent", "64-wide RoPE", "d_qk 576", "16-token pages", "causal"):
        assert part in text
    assert "no RoPE" in MLASpec(q_heads=1, rope=0).describe()


# --------------------------------------------------------------- spec files
EXPECTED_FILES = {
    "deepseek_v3.py",
    "deepseek_v3_tp8.py",
    "deepseek_v3_tp4.py",
    "deepseek_v3_tp4_mtp.py",
    "deepseek_v3_mtp.py",
    "deepseek_v3_page1.py",
    "deepseek_v3_page16.py",
    "deepseek_v3_page128.py",
    "deepseek_v3_fp8.py",
    "kimi_k2_fp8_mtp.py",
    "deepseek_v3_fp16.py",
    "deepseek_v2_lite.py",
    "deepseek_v2_lite_fp8.py",
    "kimi_k2.py",
    "minicpm3.py",
}


def test_spec_files_present_and_sorted():
    files = list_spec_files(SPECS)
    assert files == sorted(files)
    assert {p.name for p in files} == EXPECTED_FILES


@pytest.mark.parametrize("name", sorted(EXPECTED_FILES))
def test_spec_file_loads(name):
    sf = load_spec_file(SPECS / name)
    assert isinstance(sf.spec, MLASpec) and isinstance(sf.model, MLAModel)
    assert sf.title and "\n" not in sf.title
    assert load_spec(SPECS / name) == sf.spec
    # The absorbed decode keeps the model's softmax scale.
    assert sf.spec.scale == sf.model.softmax_scale


def test_spec_files_are_distinct_variants():
    keys = [load_spec(p).key for p in list_spec_files(SPECS)]
    assert len(set(keys)) == len(keys)


def _deepseek_scale(mscale_all_dim: float, factor: float) -> float:
    mscale = 0.1 * mscale_all_dim * math.log(factor) + 1.0
    return (128 + 64) ** -0.5 * mscale * mscale


def test_deepseek_v3_numbers():
    sf = load_spec_file(SPECS / "deepseek_v3.py")
    s, m = sf.spec, sf.model
    assert (s.q_heads, s.latent, s.rope, s.kv_heads, s.page, s.max_q) == (128, 512, 64, 1, 64, 1)
    assert (s.d_qk, s.d_v, s.cache_bytes_per_token) == (576, 512, 1152)
    assert s.scale == pytest.approx(_deepseek_scale(1.0, 40), rel=1e-15)
    assert s.scale == pytest.approx(0.13523377886, rel=1e-9)
    assert (m.hidden, m.q_lora, m.nope, m.v_head, m.layers) == (7168, 1536, 128, 128, 61)
    assert m.mla_cache_bytes() == 1152
    assert m.mha_cache_bytes() == 128 * (192 + 128) * 2 == 81920
    assert m.gqa_cache_bytes(8) == 8 * 320 * 2
    assert round(m.mha_cache_bytes() / m.mla_cache_bytes(), 1) == 71.1


def test_variant_files():
    base = load_spec(SPECS / "deepseek_v3.py")
    assert load_spec(SPECS / "deepseek_v3_tp8.py") == base.replace(q_heads=16)
    assert load_spec(SPECS / "deepseek_v3_tp4.py") == base.replace(q_heads=32)
    assert load_spec(SPECS / "deepseek_v3_mtp.py") == base.replace(max_q=2, causal=True)
    assert load_spec(SPECS / "deepseek_v3_tp4_mtp.py") == base.replace(q_heads=32, max_q=2, causal=True)
    for page in (1, 16, 128):
        assert load_spec(SPECS / f"deepseek_v3_page{page}.py") == base.replace(page=page)
    fp8 = load_spec(SPECS / "deepseek_v3_fp8.py")
    assert fp8 == base.replace(cache_dtype="fp8_e4m3") and fp8.cache_bytes_per_token == 656
    assert load_spec(SPECS / "deepseek_v3_fp16.py") == base.replace(dtype="fp16")


def test_other_models():
    lite = load_spec_file(SPECS / "deepseek_v2_lite.py")
    assert lite.model.q_lora is None and lite.model.layers == 27 and lite.model.hidden == 2048
    assert (lite.spec.q_heads, lite.spec.d_qk) == (16, 576)
    assert lite.spec.scale == pytest.approx(_deepseek_scale(0.707, 40), rel=1e-15)
    kimi = load_spec_file(SPECS / "kimi_k2.py")
    assert (kimi.spec.q_heads, kimi.spec.d_qk, kimi.model.layers) == (64, 576, 61)
    assert kimi.spec.scale == pytest.approx(_deepseek_scale(1.0, 32), rel=1e-15)
    cpm = load_spec_file(SPECS / "minicpm3.py")
    assert (cpm.spec.q_heads, cpm.spec.latent, cpm.spec.rope, cpm.spec.d_qk) == (40, 256, 32, 288)
    assert cpm.spec.scale == 1 / math.sqrt(64 + 32)
    assert (cpm.model.hidden, cpm.model.q_lora, cpm.model.v_head, cpm.model.layers) == (2560, 768, 64, 62)


def test_model_decode_spec():
    assert yarn_mscale(1.0, 1.0) == 1.0
    assert DEEPSEEK_V3.decode_spec(tp=8).q_heads == 16
    assert DEEPSEEK_V3.decode_spec(q_heads=32).q_heads == 32
    assert DEEPSEEK_V3.decode_spec(page=16, max_q=2, causal=True).causal
    with pytest.raises(SpecError, match="tp = 3"):
        DEEPSEEK_V3.decode_spec(tp=3)
    with pytest.raises(SpecError, match="not both"):
        DEEPSEEK_V3.decode_spec(tp=2, q_heads=64)
    with pytest.raises(SpecError, match=r"MLASpec\.page = 5"):
        DEEPSEEK_V3.decode_spec(page=5)
    m = MLAModel("toy", hidden=64, q_heads=4, q_lora=None, kv_lora=64, rope=16, nope=32, v_head=16, layers=2)
    assert m.softmax_scale == 1 / math.sqrt(48)
    with pytest.raises(SpecError, match=r"MLAModel\.layers = 0"):
        MLAModel("toy", hidden=64, q_heads=4, q_lora=None, kv_lora=64, rope=16, nope=32, v_head=16, layers=0)


@pytest.mark.parametrize("name", sorted(HF_CONFIGS))
def test_model_from_hf_config_matches_the_hand_written_one(name):
    from mlagen.models import MODELS

    assert MLAModel.from_config(HF_CONFIGS[name], name=name) == MODELS[name]


def test_model_from_config_file_folder_and_spec_file(tmp_path):
    folder = tmp_path / "DeepSeek-V3-0324"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({**HF_CONFIGS["DeepSeek-V3"], "model_type": "deepseek_v3"}))
    from_folder = MLAModel.from_config(folder)
    assert from_folder.name == "DeepSeek-V3-0324" and from_folder == dataclasses.replace(DEEPSEEK_V3, name=from_folder.name)
    named = {**HF_CONFIGS["DeepSeek-V3"], "_name_or_path": "deepseek-ai/DeepSeek-R1"}
    (folder / "config.json").write_text(json.dumps(named))
    assert MLAModel.from_config(folder / "config.json").name == "deepseek-ai/DeepSeek-R1"
    assert MLAModel.from_config({**HF_CONFIGS["Kimi-K2"], "model_type": "kimi_k2"}).name == "kimi_k2"
    spec_file = _write(tmp_path, f"from mlagen import MLAModel\nmodel = MLAModel.from_config({str(folder)!r})\n"
                                 f"spec = model.decode_spec(tp=8)\n")
    assert load_spec(spec_file) == load_spec(SPECS / "deepseek_v3_tp8.py")


@pytest.mark.parametrize("change, message", [
    (dict(kv_lora_rank=None), "has no 'kv_lora_rank': not an MLA model"),
    (dict(v_head_dim=None), "has no 'v_head_dim': an MLA config names hidden_size"),
    (dict(qk_rope_head_dim=64.0), "config: MLAModel.rope = 64.0: must be an integer >= 0"),
    (dict(rope_scaling={"mscale_all_dim": 1.0}), "rope_scaling has mscale_all_dim but no numeric factor"),
    (dict(num_attention_heads=0), "MLAModel.q_heads = 0: must be an integer >= 1"),
])
def test_model_from_config_errors(change, message):
    config = {k: v for k, v in {**HF_CONFIGS["DeepSeek-V3"], **change}.items() if v is not None}
    with pytest.raises(SpecError) as err:
        MLAModel.from_config(config)
    assert message in str(err.value)


def test_model_from_config_file_errors(tmp_path):
    with pytest.raises(SpecError, match="cannot read .*missing/config.json"):
        MLAModel.from_config(tmp_path / "missing" / "config.json")
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(SpecError, match="config.json is not JSON"):
        MLAModel.from_config(tmp_path)
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(SpecError, match="holds a JSON list, not an object"):
        MLAModel.from_config(tmp_path)


# ---------------------------------------------------------- spec file errors
def _write(tmp_path: Path, text: str, name: str = "s.py") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _load_error(path) -> str:
    with pytest.raises(SpecFileError) as info:
        load_spec_file(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    assert isinstance(info.value, SpecError)
    return message


def test_spec_file_errors(tmp_path):
    assert "no such spec file" in _load_error(tmp_path / "missing.py")
    assert "not a file" in _load_error(tmp_path)
    msg = _load_error(_write(tmp_path, "from mlagen import MLASpec\nspec = MLASpec(q_heads=\n"))
    assert "syntax error" in msg
    msg = _load_error(_write(tmp_path, "x = 1\nspec = undefined_name\n"))
    assert f"{tmp_path / 's.py'}:2: NameError" in msg
    msg = _load_error(_write(tmp_path, '"""doc"""\nx = 1\n'))
    assert msg == f"{tmp_path / 's.py'} defines no `spec` (expected an mlagen.MLASpec)"
    msg = _load_error(_write(tmp_path, "spec = {'q_heads': 16}\n"))
    assert "`spec` is a dict" in msg
    msg = _load_error(_write(tmp_path, "from mlagen import MLASpec\nspec = MLASpec(q_heads=16)\nmodel = 'x'\n"))
    assert "`model` is a str" in msg
    msg = _load_error(_write(tmp_path, "from mlagen import MLASpec\nspec = MLASpec(q_heads=16, page=48)\n"))
    assert "MLASpec.page = 48: must be a power of two in 1..256" in msg
    msg = _load_error(_write(tmp_path, "raise SystemExit(3)\n"))
    assert "SystemExit" in msg


def test_spec_file_without_model_or_docstring(tmp_path):
    path = _write(tmp_path, "from mlagen import MLASpec\nspec = MLASpec(q_heads=32, latent=256, rope=32)\n", "tiny.py")
    sf = load_spec_file(path)
    assert sf.model is None and sf.title == "tiny" and sf.spec.q_heads == 32


def test_list_spec_files(tmp_path):
    for name in ("b.py", "a.py", "_helper.py", "notes.txt"):
        (tmp_path / name).write_text("")
    assert [p.name for p in list_spec_files(tmp_path)] == ["a.py", "b.py"]
    with pytest.raises(SpecFileError, match="no such directory"):
        list_spec_files(tmp_path / "nope")


def test_import_is_light():
    code = (
        "import sys, mlagen, mlagen.spec, mlagen.models, mlagen.costs, mlagen.cli;"
        "mlagen.MLASpec; mlagen.load_spec_file;"
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
