"""The MLA decode spec: a small, validated, hashable description of one kernel variant.

An :class:`MLASpec` says everything the code generator needs to know about one
Multi-Head Latent Attention decode kernel: head counts, latent and RoPE widths,
dtypes, page size, how many query tokens a request may bring, and so on.
Construction validates every field and normalizes equivalent descriptions to
one value, so equal specs compare and hash equal and share one :attr:`MLASpec.key`
(the cache key of every later stage).

A *spec file* is a few lines of Python that define a module-level ``spec``
(and optionally ``model``); :func:`load_spec_file` runs one.

This module must stay light: it does not import torch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import runpy
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from mlagen.models import MLAModel

__all__ = [
    "ARCHS",
    "DTYPES",
    "FP8_BLOCK",
    "FP8_CACHE",
    "ROPE_LAYOUTS",
    "MLASpec",
    "SpecError",
    "SpecFile",
    "SpecFileError",
    "list_spec_files",
    "load_spec",
    "load_spec_file",
]

DTYPES = ("bf16", "fp16")
FP8_CACHE = "fp8_e4m3"
ROPE_LAYOUTS = ("tail", "head")
ARCHS = ("sm_90a",)
# The fp8 cache stores one float32 scale per FP8_BLOCK latent values.
FP8_BLOCK = 128
_DTYPE_BYTES = {"bf16": 2, "fp16": 2}
# Scales this close to 1/sqrt(d_qk) are that value: `576 ** -0.5` and
# `1 / math.sqrt(576)` may differ in the last bit and must not make two specs.
_SCALE_SNAP_RTOL = 1e-12


class SpecError(ValueError):
    """An invalid spec, spec field or spec file; the message is one line."""


class SpecFileError(SpecError):
    """A spec file that is missing, broken, or defines no valid ``spec``."""


def _fail(name: str, value: Any, rule: str) -> SpecError:
    return SpecError(f"MLASpec.{name} = {value!r}: {rule}")


def _int(name: str, value: Any, ok: bool, rule: str) -> int:
    # bool is an int subclass and 64.0 is "integral", but both are almost
    # certainly mistakes in a spec, so only real ints pass.
    if not isinstance(value, int) or isinstance(value, bool) or not ok:
        raise _fail(name, value, rule)
    return int(value)


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise _fail(name, value, "must be one of " + ", ".join(repr(a) for a in allowed))
    return value


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _fail(name, value, "must be True or False")
    return value


def _is_pow2(v: Any) -> bool:
    return isinstance(v, int) and v > 0 and v & (v - 1) == 0


@dataclass(frozen=True)
class MLASpec:
    """One MLA decode kernel variant.

    At decode the up-projections are absorbed, so every query head attends over
    the same ``latent + rope`` wide keys ``[c_kv | k_rope]`` and reads values
    ``c_kv`` (``latent`` wide): multi-query attention with ``d_qk = latent +
    rope`` and ``d_v = latent`` over a paged cache.

    Fields (validated; an invalid value raises :class:`SpecError` naming it):

    - ``q_heads``: query heads, 1..128.
    - ``latent``: kv_lora_rank, a multiple of 64 in 64..1024.
    - ``rope``: shared RoPE key width, 0 or a multiple of 16 up to 256.
    - ``kv_heads``: latent KV heads (1 for MLA); must divide ``q_heads``.
    - ``dtype``: query/output dtype, ``"bf16"`` or ``"fp16"``.
    - ``cache_dtype``: ``None`` (same as ``dtype``), ``dtype`` itself, or
      ``"fp8_e4m3"`` (needs ``latent % 128 == 0``).
    - ``page``: tokens per cache page, a power of two in 1..256.
    - ``max_q``: most query tokens per request, 1..8.
    - ``causal``: causal masking among a request's query tokens; forced to
      False when ``max_q == 1``.
    - ``scale``: softmax scale; ``None`` means ``1/sqrt(latent + rope)``.
      Always a float after construction.
    - ``lse``: whether the kernel returns the log-sum-exp.
    - ``rope_at``: ``"tail"`` (token row ``[latent | rope]``, FlashMLA's
      layout) or ``"head"`` (``[rope | latent]``); forced to ``"tail"`` when
      ``rope == 0``.
    - ``arch``: target architecture, only ``"sm_90a"``.

    A scale left to its default follows ``d_qk`` through :meth:`replace`; an
    explicitly given scale is kept.
    """

    q_heads: int
    latent: int = 512
    rope: int = 64
    kv_heads: int = 1
    dtype: str = "bf16"
    cache_dtype: str | None = None
    page: int = 64
    max_q: int = 1
    causal: bool = False
    scale: float | None = None
    lse: bool = True
    rope_at: str = "tail"
    arch: str = "sm_90a"
    # The value `scale` was derived to when it was left to its default, else
    # None. It is an init field only so that `dataclasses.replace` carries it:
    # a copied scale equal to it was not chosen by the caller and is derived
    # again from the new d_qk. Not part of equality, hash or key.
    _auto_scale: float | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        put = object.__setattr__
        q_heads = _int("q_heads", self.q_heads, _in(self.q_heads, 1, 128), "must be an integer in 1..128")
        latent = _int(
            "latent",
            self.latent,
            _in(self.latent, 64, 1024) and self.latent % 64 == 0,
            "must be a multiple of 64 in 64..1024",
        )
        rope = _int(
            "rope",
            self.rope,
            _in(self.rope, 0, 256) and self.rope % 16 == 0,
            "must be 0 or a multiple of 16 up to 256",
        )
        kv_heads = _int("kv_heads", self.kv_heads, _in(self.kv_heads, 1, None), "must be an integer >= 1")
        dtype = _choice("dtype", self.dtype, DTYPES)
        cache_dtype = self.cache_dtype
        if cache_dtype is not None and (not isinstance(cache_dtype, str) or cache_dtype not in (*DTYPES, FP8_CACHE)):
            raise _fail("cache_dtype", cache_dtype, f"must be None, 'bf16', 'fp16' or {FP8_CACHE!r}")
        page = _int("page", self.page, _is_pow2(self.page) and self.page <= 256, "must be a power of two in 1..256")
        max_q = _int("max_q", self.max_q, _in(self.max_q, 1, 8), "must be an integer in 1..8")
        causal = _flag("causal", self.causal)
        scale = self.scale
        if scale is not None and (
            not isinstance(scale, (int, float))
            or isinstance(scale, bool)
            or not math.isfinite(scale)
            or scale <= 0
        ):
            raise _fail("scale", scale, "must be None or a finite number > 0")
        lse = _flag("lse", self.lse)
        rope_at = _choice("rope_at", self.rope_at, ROPE_LAYOUTS)
        arch = self.arch
        if arch not in ARCHS:
            raise _fail("arch", arch, "must be 'sm_90a' (the only supported architecture)")
        auto = self._auto_scale
        if auto is not None and not isinstance(auto, float):
            raise _fail("_auto_scale", auto, "is internal; leave it out")

        # Cross-field rules name both fields.
        if q_heads % kv_heads:
            raise _fail("kv_heads", kv_heads, f"must divide q_heads (= {q_heads})")
        if cache_dtype is None:
            cache_dtype = dtype
        elif cache_dtype != dtype and cache_dtype != FP8_CACHE:
            raise _fail("cache_dtype", cache_dtype, f"must be None, {FP8_CACHE!r} or equal to dtype (= {dtype!r})")
        if cache_dtype == FP8_CACHE and latent % FP8_BLOCK:
            raise _fail(
                "latent",
                latent,
                f"must be a multiple of {FP8_BLOCK} when cache_dtype = {FP8_CACHE!r} "
                f"(one float32 scale per {FP8_BLOCK} latent values)",
            )

        default_scale = 1.0 / math.sqrt(latent + rope)
        if scale is None or (auto is not None and scale == auto):
            scale = auto = default_scale
        else:
            scale = float(scale)
            if math.isclose(scale, default_scale, rel_tol=_SCALE_SNAP_RTOL, abs_tol=0.0):
                scale = default_scale
            auto = None

        put(self, "q_heads", q_heads)
        put(self, "latent", latent)
        put(self, "rope", rope)
        put(self, "kv_heads", kv_heads)
        put(self, "dtype", dtype)
        put(self, "cache_dtype", cache_dtype)
        put(self, "page", page)
        put(self, "max_q", max_q)
        put(self, "causal", causal and max_q > 1)
        put(self, "scale", scale)
        put(self, "lse", lse)
        put(self, "rope_at", rope_at if rope else "tail")
        put(self, "arch", arch)
        put(self, "_auto_scale", auto)

    # ------------------------------------------------------------------ derived
    @property
    def d_qk(self) -> int:
        """Width of a query/key row: latent + rope."""
        return self.latent + self.rope

    @property
    def d_v(self) -> int:
        """Width of a value/output row: the latent."""
        return self.latent

    @property
    def heads_per_kv(self) -> int:
        """Query heads sharing one KV head (head h uses KV head h // heads_per_kv)."""
        return self.q_heads // self.kv_heads

    @property
    def default_scale(self) -> float:
        """1/sqrt(d_qk), the scale used when none is given."""
        return 1.0 / math.sqrt(self.d_qk)

    @property
    def is_default_scale(self) -> bool:
        """Whether the softmax scale equals 1/sqrt(d_qk)."""
        return self.scale == self.default_scale

    @property
    def scale_is_explicit(self) -> bool:
        """Whether the scale was given by the caller (it then survives :meth:`replace`)."""
        return self._auto_scale is None

    @property
    def cache_bytes_per_token(self) -> int:
        """KV-cache bytes per token and layer, all KV heads.

        bf16/fp16: ``d_qk * 2`` per head. fp8_e4m3: one byte per latent value,
        a float32 scale per 128 latent values, and the RoPE part kept in 16 bit
        (656 bytes for 512 + 64).
        """
        if self.cache_dtype == FP8_CACHE:
            per_head = self.latent + 4 * (self.latent // FP8_BLOCK) + 2 * self.rope
        else:
            per_head = self.d_qk * _DTYPE_BYTES[self.cache_dtype]  # type: ignore[index]
        return per_head * self.kv_heads

    # --------------------------------------------------------------- identity
    @property
    def key(self) -> str:
        """Canonical human-readable string of every field, e.g.
        ``h128.kv1.l512.r64t.bf16.cbf16.p64.q2c.lse.sm90a``.

        Equal specs have equal keys and unequal specs different ones. The scale
        appears as ``s=<repr>`` only when it is not 1/sqrt(d_qk).
        """
        parts = [
            f"h{self.q_heads}",
            f"kv{self.kv_heads}",
            f"l{self.latent}",
            f"r{self.rope}{self.rope_at[0]}",
            self.dtype,
            f"c{self.cache_dtype}",
            f"p{self.page}",
            f"q{self.max_q}{'c' if self.causal else ''}",
            "lse" if self.lse else "nolse",
        ]
        if not self.is_default_scale:
            parts.append(f"s={self.scale!r}")
        parts.append(self.arch.replace("_", ""))
        return ".".join(parts)

    @property
    def short_hash(self) -> str:
        """First 12 hex digits of sha256(key)."""
        return hashlib.sha256(self.key.encode()).hexdigest()[:12]

    @property
    def name(self) -> str:
        """A readable, filesystem- and identifier-safe name, unique through the hash,
        e.g. ``mla_h128_l512r64_bf16_p64_q2c_1a2b3c4d``."""
        parts = [f"mla_h{self.q_heads}"]
        if self.kv_heads != 1:
            parts.append(f"kv{self.kv_heads}")
        parts.append(f"l{self.latent}r{self.rope}")
        parts.append(self.dtype if self.cache_dtype == self.dtype else f"{self.dtype}_fp8")
        parts.append(f"p{self.page}")
        parts.append(f"q{self.max_q}{'c' if self.causal else ''}")
        parts.append(self.short_hash[:8])
        return "_".join(parts)

    # ------------------------------------------------------------ conversions
    def to_dict(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this spec (JSON-safe).

        ``scale`` is ``None`` when it was left to its default, so the rebuilt
        spec's scale keeps following d_qk under :meth:`replace`.
        """
        d = {name: getattr(self, name) for name in _FIELDS}
        if not self.scale_is_explicit:
            d["scale"] = None
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MLASpec:
        """Build a spec from a mapping such as :meth:`to_dict` returns; missing
        fields take their defaults, unknown ones raise :class:`SpecError`."""
        if not isinstance(d, Mapping):
            raise SpecError(f"MLASpec.from_dict: expected a mapping, got {type(d).__name__}")
        _check_names(d, "MLASpec.from_dict")
        if "q_heads" not in d:
            raise SpecError("MLASpec.q_heads: missing (it has no default)")
        return cls(**d)

    def replace(self, **changes: Any) -> MLASpec:
        """A validated copy with some fields changed.

        A default scale follows the new d_qk; an explicit one is kept. A cache
        dtype equal to ``dtype`` follows a new ``dtype``; fp8 stays fp8.
        """
        _check_names(changes, "MLASpec.replace")
        if "scale" in changes:
            # A scale passed here is the caller's even if it equals the
            # derived one; a copied derived scale is re-derived in __post_init__.
            changes["_auto_scale"] = None
        if "dtype" in changes and "cache_dtype" not in changes and self.cache_dtype == self.dtype:
            changes["cache_dtype"] = None
        return dataclasses.replace(self, **changes)

    def describe(self) -> str:
        """One English sentence describing the variant."""
        heads = f"{self.q_heads} query head{'s' if self.q_heads != 1 else ''}"
        kv = f"{self.kv_heads} KV head{'s' if self.kv_heads != 1 else ''}"
        if self.rope:
            order = "followed by" if self.rope_at == "tail" else "preceded by"
            keys = f"a {self.latent}-wide latent {order} a {self.rope}-wide RoPE part"
        else:
            keys = f"a {self.latent}-wide latent with no RoPE part"
        if self.max_q == 1:
            tokens = "one query token per request"
        else:
            mask = "with" if self.causal else "without"
            tokens = f"up to {self.max_q} query tokens per request {mask} causal masking"
        scale = (
            f"the default softmax scale 1/sqrt({self.d_qk})"
            if self.is_default_scale
            else f"softmax scale {self.scale:.6g}"
        )
        return (
            f"MLA decode for {self.arch}: {heads} share {kv} whose keys are {keys} "
            f"(d_qk {self.d_qk}, d_v {self.d_v}), with {self.dtype} queries over a "
            f"{self.cache_dtype} cache in {self.page}-token pages, {tokens}, {scale}, "
            f"{'returning' if self.lse else 'not returning'} the LSE."
        )


def _in(value: Any, lo: int, hi: int | None) -> bool:
    return isinstance(value, int) and value >= lo and (hi is None or value <= hi)


_FIELDS = tuple(f.name for f in dataclasses.fields(MLASpec) if not f.name.startswith("_"))


def _check_names(names: Mapping[str, Any], where: str) -> None:
    unknown = sorted(set(names) - set(_FIELDS))
    if unknown:
        raise SpecError(f"{where}: unknown field {', '.join(map(repr, unknown))} (fields: {', '.join(_FIELDS)})")


# ------------------------------------------------------------------ spec files
@dataclass(frozen=True)
class SpecFile:
    """A loaded spec file: its path, ``spec``, optional ``model`` and a title
    (the first line of its docstring, else the model's name, else the file stem)."""

    path: Path
    spec: MLASpec
    model: MLAModel | None
    title: str


def _first_line(text: str) -> str:
    for line in str(text).strip().splitlines():
        if line.strip():
            return line.strip()
    return ""


def _where(path: Path, exc: BaseException) -> str:
    """`path:line` of the innermost frame of the spec file itself, if any."""
    line = None
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if Path(frame.f_code.co_filename) == path:
            line = lineno
    return f"{path}:{line}" if line else str(path)


def load_spec_file(path: str | Path) -> SpecFile:
    """Run a spec file and return what it defines.

    The file must define a module-level ``spec`` (an :class:`MLASpec`) and may
    define ``model`` (an :class:`mlagen.MLAModel`). Every failure raises
    :class:`SpecFileError` with one line naming the file.
    """
    from mlagen.models import MLAModel  # models imports this module

    path = Path(path)
    if not path.exists():
        raise SpecFileError(f"{path}: no such spec file")
    if not path.is_file():
        raise SpecFileError(f"{path}: not a file")
    try:
        namespace = runpy.run_path(str(path), run_name="__mlagen_spec__")
    except SyntaxError as e:
        raise SpecFileError(f"{path}:{e.lineno}: syntax error: {e.msg}") from e
    except SpecError as e:
        raise SpecFileError(f"{_where(path, e)}: {_first_line(str(e))}") from e
    except (Exception, SystemExit) as e:
        raise SpecFileError(f"{_where(path, e)}: {type(e).__name__}: {_first_line(str(e))}") from e

    if "spec" not in namespace:
        raise SpecFileError(f"{path} defines no `spec` (expected an mlagen.MLASpec)")
    spec = namespace["spec"]
    if not isinstance(spec, MLASpec):
        raise SpecFileError(f"{path}: `spec` is a {type(spec).__name__}, expected an mlagen.MLASpec")
    model = namespace.get("model")
    if model is not None and not isinstance(model, MLAModel):
        raise SpecFileError(f"{path}: `model` is a {type(model).__name__}, expected an mlagen.MLAModel")
    title = _first_line(namespace.get("__doc__") or "") or (model.name if model else path.stem)
    return SpecFile(path=path, spec=spec, model=model, title=title)


def load_spec(path: str | Path) -> MLASpec:
    """The ``spec`` of a spec file (see :func:`load_spec_file`)."""
    return load_spec_file(path).spec


def list_spec_files(directory: str | Path = "specs") -> list[Path]:
    """The spec files (``*.py``, not starting with ``_``) in a directory, sorted."""
    directory = Path(directory)
    if not directory.is_dir():
        raise SpecFileError(f"{directory}: no such directory")
    return sorted(p for p in directory.glob("*.py") if p.is_file() and not p.name.startswith("_"))
