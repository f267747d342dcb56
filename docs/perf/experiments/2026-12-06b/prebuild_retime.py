"""Compile, without a GPU, the kernels run-next-6.sh times: main and each retime.txt variant on its cells.

    python docs/perf/experiments/2026-12-06b/prebuild_retime.py CACHE [PICK] [--jobs N] [--names "a b"]

PICK (16 or 128) keeps the heads_n or the seesaw variants, --names those named (run-next-6.sh's NAMES). The kernels land in CACHE (the run's
MLAGEN_CACHE_DIR); delete their kernel.ptx files before a GPU call (`find CACHE -name kernel.ptx -delete`)
to fit its 64 MiB.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[4]
RETIME = REPO / "docs" / "perf" / "experiments" / "2026-12-06" / "retime.txt"


def _build(item):
    cell, template_dir, cache = item
    sys.path.insert(0, str(REPO / "tools"))
    import ab_templates

    ab_templates.kernel_for(ab_templates._spec_of(cell), template_dir, cache)
    return f"{cell} {template_dir or 'main'}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cache")
    ap.add_argument("pick", nargs="?", default=None)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--names", default=None, help="space-separated variant names (default: all)")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp())
    items = []
    for line in RETIME.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, patch, *cells = line.split()
        if args.pick and not cells[0].startswith(args.pick + ","):
            continue
        if args.names and name not in args.names.split():
            continue
        folder = work / name
        shutil.copytree(REPO / "templates", folder)
        subprocess.run(["patch", "-s", "-p1", "-i", str(REPO / patch)], cwd=folder, check=True)
        for orig in folder.rglob("*.orig"):
            orig.unlink()
        for cell in cells:
            items += [(cell, None, os.path.abspath(args.cache)), (cell, str(folder), os.path.abspath(args.cache))]
    items = list(dict.fromkeys(items))  # main once per cell
    with ProcessPoolExecutor(args.jobs) as pool:
        for line in pool.map(_build, items):
            print("built", line, flush=True)
    shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
