"""The ``mlagen`` command line.

Subcommands are listed in :func:`commands`; each is a :class:`Command` made of
a function that adds its arguments and a function that runs it. User errors
(an invalid spec, a missing or broken spec file, bad arguments) print one line
``mlagen: error: ...`` to stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from mlagen.spec import MLASpec, SpecError, SpecFile, list_spec_files, load_spec_file
from mlagen import tune as _tune  # light: no torch or CuTe DSL at import
from mlagen import export as _export  # light: no torch or CuTe DSL at import
from mlagen import bench as _bench  # light: no torch or CuTe DSL at import

PROG = "mlagen"


class CLIError(Exception):
    """A user error; main() prints it as one line and exits with status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[override]
        # argparse would print the usage block too; keep errors to one line.
        raise CLIError(f"{message} (see '{self.prog} --help')")


@dataclass(frozen=True)
class Command:
    """One subcommand: ``configure`` adds its arguments, ``run`` returns the exit status."""

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def commands() -> list[Command]:
    """Every subcommand, in the order ``mlagen --help`` lists them."""
    return [
        Command("specs", "list the spec files in a directory", _specs_args, _specs_run),
        Command("show", "show a spec, its cache footprint and its roofline", _show_args, _show_run),
        Command("new", "write a spec file for a model from its Hugging Face config.json", _new_args, _new_run),
        Command("build", "render spec files' kernels and compile them into the cache (no GPU needed)", _build_args,
                _build_run),
        Command("bench", _bench.HELP, _bench.configure, _bench.run),
        Command("tune", _tune.HELP, _tune.configure, _tune.run_cli),
        Command("export", _export.HELP, _export.configure, _export.run),
    ]


def build_parser() -> argparse.ArgumentParser:
    from mlagen import __version__

    parser = _Parser(prog=PROG, description="Compile MLA decode variants into Hopper kernels.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for cmd in commands():
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        cmd.configure(p)
        p.set_defaults(_run=cmd.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
        run = getattr(args, "_run", None)
        if run is None:
            names = ", ".join(c.name for c in commands())
            raise CLIError(f"no command given (choose from {names}; see '{PROG} --help')")
        return run(args)
    except (SpecError, CLIError) as e:
        print(f"{PROG}: error: {_one_line(str(e))}", file=sys.stderr)
        return 2


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _console():
    from rich.console import Console

    # Piped output gets a wide page so tables are not squeezed to 80 columns.
    width = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 200
    return Console(width=width, markup=False, highlight=False, emoji=False)


def _table(title: str | None = None, *columns: str, right: Sequence[int] = (), fold: Sequence[int] = ()):
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for i, col in enumerate(columns):
        # Folded columns (keys) wrap at any character instead of being cut.
        table.add_column(col, justify="right" if i in right else "left", overflow="fold" if i in fold else "ellipsis")
    return table


# ----------------------------------------------------------------- specs
def _specs_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("directory", nargs="?", default="specs", help="directory of spec files (default: specs)")


def _specs_run(args: argparse.Namespace) -> int:
    files = list_spec_files(args.directory)
    console = _console()
    if not files:
        console.print(f"no spec files in {args.directory}")
        return 0
    table = _table(
        None, "file", "model", "heads", "latent+rope", "dtype/cache", "page", "max_q", "key", right=(2, 5, 6), fold=(0, 7)
    )
    errors = []
    for path in files:
        try:
            sf = load_spec_file(path)
        except SpecError as e:
            errors.append(str(e))
            table.add_row(path.name, "(failed to load)", *[""] * 6)
            continue
        s = sf.spec
        heads = str(s.q_heads) if s.kv_heads == 1 else f"{s.q_heads}/kv{s.kv_heads}"
        rope = f"{s.latent}+{s.rope}" + ("" if s.rope_at == "tail" or not s.rope else " (head)")
        max_q = f"{s.max_q}{' causal' if s.causal else ''}"
        table.add_row(path.name, sf.model.name if sf.model else sf.title, heads, rope, f"{s.dtype}/{s.cache_dtype}", str(s.page), max_q, s.key)
    console.print(table)
    for err in errors:
        print(f"{PROG}: error: {_one_line(err)}", file=sys.stderr)
    return 2 if errors else 0


# ------------------------------------------------------------------ show
def _new_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", type=Path, help="the spec file to write (e.g. specs/my_model_tp8.py)")
    p.add_argument("--config", type=Path, required=True, metavar="PATH",
                   help="the model's config.json, or the folder holding it")
    p.add_argument("--name", default=None, help="the model's name (default: from the config or its folder)")
    p.add_argument("--tp", type=_positive_int, default=1, help="tensor-parallel GPUs the heads are split over (default 1)")
    p.add_argument("--page", type=_positive_int, default=64, help="tokens per cache page (default 64)")
    p.add_argument("--max-q", type=_positive_int, default=1,
                   help="most query tokens per request, 1 + drafted tokens (default 1)")
    p.add_argument("--no-causal", action="store_true",
                   help="no causal masking among a request's query tokens (default: causal when --max-q > 1)")
    p.add_argument("--dtype", choices=["bf16", "fp16"], default="bf16", help="query/output dtype (default bf16)")
    p.add_argument("--cache-dtype", choices=["fp8_e4m3"], default=None,
                   help="store the latent cache as FlashMLA's fp8 rows (default: the query dtype)")
    p.add_argument("--force", action="store_true", help="overwrite the file if it exists")


def _new_run(args: argparse.Namespace) -> int:
    from mlagen.models import MLAModel
    from mlagen.plan import UnsupportedSpecError, plan_for

    model = MLAModel.from_config(args.config, name=args.name)
    knobs = {"tp": args.tp, "page": args.page, "dtype": args.dtype}
    if args.max_q > 1:
        knobs.update(max_q=args.max_q, causal=not args.no_causal)
    if args.cache_dtype:
        knobs["cache_dtype"] = args.cache_dtype
    spec = model.decode_spec(**knobs)
    try:
        plan_for(spec)
    except UnsupportedSpecError as e:
        raise CLIError(f"{args.out}: not written: {e}") from None
    if args.out.exists() and not args.force:
        raise CLIError(f"{args.out} exists (--force overwrites it)")
    text = _spec_file_text(model, knobs, spec, args.config)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    written = load_spec_file(args.out).spec
    if written != spec:  # the file must mean what was asked
        raise CLIError(f"{args.out}: reads back as {written.key}, not {spec.key}")
    print(f"wrote {args.out}: {spec.describe()}")
    print(f"next: {PROG} build {args.out}")
    return 0


def _spec_file_text(model, knobs: dict, spec: MLASpec, config: Path) -> str:
    """A spec file holding the model's numbers (not a path to its config: the file stays valid elsewhere)."""
    heads = f"{spec.q_heads} heads" + (f" ({model.q_heads} over {knobs['tp']} GPUs)" if knobs["tp"] > 1 else "")
    cache = "fp8_e4m3" if spec.cache_dtype == "fp8_e4m3" else spec.dtype
    extra = f", {spec.max_q} {'causal ' if spec.causal else ''}query tokens per request" if spec.max_q > 1 else ""
    fields = ", ".join(f"{k}={getattr(model, k)!r}"
                       for k in ("hidden", "q_heads", "q_lora", "kv_lora", "rope", "nope", "v_head", "layers"))
    args = ", ".join(f"{k}={v!r}" for k, v in knobs.items() if not (k == "tp" and v == 1))
    return (
        f'"""{model.name} decode: {heads} over a {spec.latent} + {spec.rope} latent cache in {cache}, '
        f"{spec.page}-token pages{extra}.\n\n"
        f"Written by `mlagen new` from {config}: the attention numbers of the model's config.json, and its softmax\n"
        f"scale as mlagen.MLAModel.from_config derives it ((nope + rope) ** -0.5, times YaRN's correction squared\n"
        f"where rope_scaling has mscale_all_dim).\n"
        f'"""\n'
        f"from mlagen import MLAModel\n\n"
        f"model = MLAModel(\n"
        f"    name={model.name!r},\n"
        f"    {fields},\n"
        f"    softmax_scale={model.softmax_scale!r},\n"
        f")\n"
        f"spec = model.decode_spec({args})\n"
    )


def _show_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", type=Path, help="spec file (e.g. specs/deepseek_v3.py)")
    p.add_argument("--batch", type=_positive_int, default=64, help="requests per decode step (default: 64)")
    p.add_argument("--seqlen", type=_positive_int, default=4096, help="mean cached tokens per request (default: 4096)")
    p.add_argument("--s-q", type=_positive_int, default=None, help="query tokens per request (default: the spec's max_q)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _show_run(args: argparse.Namespace) -> int:
    sf = load_spec_file(args.spec)
    s = sf.spec
    s_q = s.max_q if args.s_q is None else args.s_q
    console = _console()
    console.print(f"{sf.title}  ({sf.path})")
    console.print(s.describe())
    console.print()
    console.print(_spec_table(s))
    if sf.model is not None:
        console.print()
        console.print(_cache_table(sf, s))
    console.print()
    console.print(_cost_table(s, args.batch, args.seqlen, s_q))
    return 0


def _spec_table(s: MLASpec):
    table = _table("Spec", "field", "value", "")
    for name, value in s.to_dict().items():
        note = ""
        if name == "scale":
            value = s.scale
            if s.is_default_scale:
                note = f"default: 1/sqrt(d_qk) = 1/sqrt({s.d_qk})"
            else:
                note = f"given (the default would be 1/sqrt({s.d_qk}) = {s.default_scale:.6g})"
        table.add_row(name, repr(value) if isinstance(value, (str, float)) else str(value), note)
    table.add_row("d_qk / d_v", f"{s.d_qk} / {s.d_v}", "latent + rope / latent")
    table.add_row("heads_per_kv", str(s.heads_per_kv), "")
    table.add_row("cache bytes/token", str(s.cache_bytes_per_token), "per layer, all KV heads")
    table.add_row("key", s.key, "cache key of every later stage")
    table.add_row("hash", s.short_hash, "")
    table.add_row("name", s.name, "")
    return table


def _cache_table(sf: SpecFile, s: MLASpec):
    model = sf.model
    assert model is not None
    rows = model.cache_comparison(gqa_groups=min(8, model.q_heads))
    mla = rows[0][2]
    title = f"KV cache per token per layer: {model.name}, whole model, bf16 ({model.layers} layers)"
    table = _table(title, "layout", "formula", "bytes", f"× {model.layers} layers", "vs MLA", right=(2, 3, 4))
    for label, formula, nbytes in rows:
        table.add_row(label, formula, str(nbytes), _si(nbytes * model.layers, "B"), f"{nbytes / mla:.1f}×")
    if s.cache_bytes_per_token != mla:
        own = s.cache_bytes_per_token
        table.add_row(
            f"this spec ({s.cache_dtype}, kv_heads {s.kv_heads})",
            "",
            str(own),
            _si(own * model.layers, "B"),
            f"{own / mla:.2f}×",
        )
    return table


def _cost_table(s: MLASpec, batch: int, seqlen: int, s_q: int):
    from mlagen.costs import GPUS, decode_cost

    cost = decode_cost(s, batch, seqlen, s_q)
    title = (
        f"One decode step: batch {batch}, seqlen {seqlen}, s_q {s_q}: {_si(cost.flops, 'FLOP')}, "
        f"{_si(cost.bytes, 'B')}, {cost.intensity:.1f} FLOP/B"
    )
    table = _table(title, "GPU", "bandwidth", "bf16 peak", "ridge", "memory", "compute", "floor", "regime", right=range(1, 7))
    for gpu in GPUS:
        r = cost.on(gpu)
        table.add_row(
            gpu.name,
            _si(gpu.bandwidth, "B/s", 2),
            _si(gpu.flops, "FLOP/s", 0),
            f"{gpu.ridge:.0f} FLOP/B",
            _time(r.memory_s),
            _time(r.compute_s),
            _time(r.time_s),
            r.regime,
        )
    return table


# ----------------------------------------------------------------- build
def _build_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", type=Path, nargs="+", help="spec file(s) (e.g. specs/deepseek_v3.py, or specs/*.py)")
    p.add_argument(
        "--plan", action="append", default=[], metavar="KEY=VALUE", type=_plan_override,
        help="pin a plan knob instead of the planner's choice (repeatable), e.g. --plan block_n=64 --plan stages=2",
    )
    p.add_argument("--cache", type=Path, default=None, metavar="DIR",
                   help="kernel cache folder (default: $MLAGEN_CACHE_DIR, else ~/.cache/mlagen)")
    p.add_argument("--generated", type=Path, default=Path("generated"), metavar="DIR",
                   help="where the rendered module is written (default: generated/ of the current directory)")
    p.add_argument("--force", action="store_true", help="compile even if the cache holds the kernel")
    p.add_argument("--json", action="store_true",
                   help="print a JSON object instead of the summary (a list of them for several spec files)")
    p.add_argument("--jobs", type=_positive_int, default=1, metavar="N",
                   help="with several spec files, build N of them at once in worker processes (default 1)")


def _plan_override(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` for a plan knob (argparse type)."""
    from mlagen.plan import parse_knob

    try:
        return parse_knob(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _build_run(args: argparse.Namespace) -> int:
    if len(args.spec) == 1:
        info = _build_one(args.spec[0], dict(args.plan), args.cache, args.generated, args.force)
        _print_build(info, args.json)
        return 0
    return _build_many(args)


def _build_many(args: argparse.Namespace) -> int:
    """Several spec files: each one's summary (or JSON object) in the order given, a spec that fails as one
    error line, then a count; exit status 2 if any failed."""
    import concurrent.futures
    import multiprocessing

    jobs = [(path, dict(args.plan), args.cache, args.generated, args.force) for path in args.spec]
    if args.jobs > 1:
        # spawn: the workers import the compiler themselves instead of inheriting a half-initialised one
        pool = concurrent.futures.ProcessPoolExecutor(min(args.jobs, len(jobs)),
                                                      mp_context=multiprocessing.get_context("spawn"))
        pending = [pool.submit(_build_one_or_error, *job) for job in jobs]
        results = (f.result() for f in pending)
    else:
        pool = None
        results = (_build_one_or_error(*job) for job in jobs)
    infos, failed, cold = [], 0, 0
    try:
        for info, error in results:
            if error is not None:
                failed += 1
                print(f"{PROG}: error: {error}", file=sys.stderr, flush=True)
                continue
            cold += info["cold"]
            infos.append(info)
            if not args.json:
                _print_build(info, False)
                print(flush=True)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    if args.json:
        print(json.dumps(infos, indent=1))
    else:
        print(f"built {len(infos)} of {len(jobs)} spec files ({cold} compiled now, {len(infos) - cold} from the cache)"
              + (f"; {failed} failed (above)" if failed else ""))
    return 2 if failed else 0


def _build_one_or_error(path, pinned, cache, generated, force):
    """``(info, None)``, or ``(None, message)`` for a user error (kept out of the worker's exceptions, so
    that one failing spec file does not stop the others)."""
    try:
        return _build_one(path, pinned, cache, generated, force), None
    except (CLIError, SpecError) as e:
        return None, str(e)


def _print_build(info: dict, as_json: bool) -> None:
    from mlagen.plan import KernelPlan

    if as_json:
        print(json.dumps(info, indent=1))
        return
    for label, value in _build_lines(info, KernelPlan.from_dict(info["plan"])):
        print(f"{label:<15}{value}")


def _build_one(path: Path, pinned: dict, cache, generated_dir: Path, force: bool) -> dict:
    """Render, compile and cache one spec file's kernels; the facts ``mlagen build`` reports."""
    # The compiler (CuTe DSL, which imports torch) is loaded here, not when the CLI starts.
    from mlagen.codegen import render, write_generated
    from mlagen.device import H100_SXM
    from mlagen.jit import build, cache_root
    from mlagen.plan import PlanError, consumer_registers, kernel_spec, plan_for, plans_by_s_q, smem_bytes

    sf = load_spec_file(path)
    spec = sf.spec
    device = H100_SXM
    try:
        plan = plan_for(spec, device, **pinned)
    except PlanError as e:
        raise CLIError(f"{sf.path}: {e}") from None
    start = time.perf_counter()
    rendered = render(spec, plan)
    generated = write_generated(rendered, generated_dir)
    result = build(spec, plan, device=device, cache_dir=cache, force=force)
    # where calls of some s_q run another plan (fp8 m-block pairs only they fill), mlagen.compile dispatches on
    # s_q: build those kernels too, so the cache holds every kernel the spec's calls run
    by_s_q = {} if pinned else plans_by_s_q(spec, device)
    also = {}
    for other in dict.fromkeys(by_s_q.values()):
        if other != plan:
            write_generated(render(spec, other), generated_dir)
            also[other] = build(spec, other, device=device, cache_dir=cache, force=force)
    total = time.perf_counter() - start
    kspec, kplan = kernel_spec(spec, plan)  # a pinned q_tokens: the narrower spec's kernel
    smem, regs = smem_bytes(kspec, kplan), consumer_registers(kspec, kplan)
    counts = dict(result.meta.get("instructions", {}))
    info = {
        "spec_file": str(sf.path),
        "title": sf.title,
        "spec_key": spec.key,
        "spec_name": spec.name,
        "plan": plan.to_dict(),
        "plan_tag": plan.tag,
        "plan_key": plan.key,
        "pinned": pinned,
        "device": device.name,
        "smem_bytes": smem,
        "smem_limit": device.smem_per_block,
        "consumer_registers": regs,
        "cold": result.cold,
        "seconds": round(result.seconds, 4),
        "compile_seconds": result.compile_seconds,
        "total_seconds": round(total, 4),
        "instructions": counts,
        "ptxas": result.meta.get("ptxas", "not recorded"),
        "kernel_key": result.identity.key,
        "generated": str(generated),
        "cache": str(Path(cache) if cache is not None else cache_root()),
        "entry": str(result.entry_dir),
        "object": str(result.object_path),
        "ptx": str(result.ptx_path),
        "plans_by_s_q": {q: p.tag for q, p in by_s_q.items()} if also else {},
        "also_built": [{"plan_tag": p.tag, "s_q": [q for q, x in by_s_q.items() if x == p], "cold": r.cold,
                        "object": str(r.object_path)} for p, r in also.items()],
    }
    return info


def _ptxas_line(ptxas) -> str:
    """The build's ptxas -v report (meta.json) in one line."""
    if ptxas == "not recorded":
        return "not recorded (the cache entry predates the report; --force rebuilds it)"
    if ptxas is None:
        return "not run: no ptxas found (pip install -e '.[dev]' installs one, or set MLAGEN_PTXAS)"
    if "error" in ptxas:
        return f"failed: {ptxas['error']}"
    spills = f"spills {ptxas['spill_store_bytes']} B stored / {ptxas['spill_load_bytes']} B loaded"
    if ptxas["serialized"]:
        return (f"WARNING: wgmmas serialised ({', '.join(ptxas['serialized'])}): correct, but much of the MMA "
                f"rate lost; {spills}")
    return f"wgmmas pipelined, {spills}"


def _build_lines(info: dict, plan) -> list[tuple[str, str]]:
    counts = info["instructions"]
    knobs = " ".join(f"{k}={v}" for k, v in info["plan"].items())
    how = "pinned: " + ", ".join(f"{k}={v}" for k, v in info["pinned"].items()) if info["pinned"] else "planner's choice"
    compiled = info["compile_seconds"]
    compiled_text = f"{compiled:.2f} s" if compiled is not None else "unknown"
    if info["cold"]:
        when = f"cold: compiled now, cute.compile {compiled_text}, total {info['seconds']:.2f} s"
    else:
        when = f"warm: found in the cache in {info['seconds']:.3f} s (cute.compile took {compiled_text} when built)"
    ptx_target = "PTX .target sm_90a" if counts.get("target_sm_90a") else "no .target sm_90a in the PTX"
    return [
        ("spec file", f"{info['spec_file']}: {info['title']}"),
        ("spec", info["spec_key"]),
        ("plan", f"{info['plan_tag']} ({how})"),
        ("", knobs),
        ("shared memory", f"{info['smem_bytes']} bytes per CTA (limit {info['smem_limit']} on {info['device']})"),
        ("registers", f"~{info['consumer_registers']} per MMA thread (setmaxnreg: producer {plan.producer_regs}, "
                      f"consumers {plan.consumer_regs}); {plan.threads} threads per CTA"),
        ("build", when),
        ("instructions", f"wgmma {counts.get('wgmma', 0)}, TMA {counts.get('tma_load', 0)}, "
                         f"setmaxnreg {counts.get('setmaxnreg', 0)} ({ptx_target})"),
        ("ptxas", _ptxas_line(info["ptxas"])),
        ("generated", info["generated"]),
        ("cache entry", info["entry"]),
        ("object", info["object"]),
        ("PTX", info["ptx"]),
        *[("s_q " + ",".join(map(str, a["s_q"])),
           f"{a['plan_tag']} ({'compiled now' if a['cold'] else 'cached'}; mlagen.compile picks it by s_q): "
           f"{a['object']}") for a in info["also_built"]],
    ]


def _si(value: float, unit: str, digits: int = 1) -> str:
    for factor, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.{digits}f} {prefix}{unit}"
    return f"{value:.0f} {unit}"


def _time(seconds: float) -> str:
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} µs"


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
