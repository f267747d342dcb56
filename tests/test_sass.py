"""mlagen.sass: the tile loops of a kernel's SASS and what they execute. The check in test_jit.py (no
local memory in a tile loop) rests on these: a spilled tile loop is reported, the outer loops that a
compiler closes around a tile loop are not mistaken for it, and a cubin is found inside a host object."""

import struct

import pytest

from mlagen import sass

# Shaped like `cuobjdump -sass`: a segment loop (0x0040-0x0200) re-entered at 0x0060, around a tile
# loop (0x0080-0x0140) with one wgmma and a local-memory load; a spin-wait loop without wgmma.
SASS = """
        code for sm_90a
                Function : kernel_decode
        .headerflags    @"EF_CUDA_VIRTUAL_SM(EF_CUDA_SM90)"
        /*0000*/                   MOV R1, c[0x0][0x28] ;                       /* 0x0000 */
        /*0040*/                   SYNCS.PHASECHK.TRANS64.TRYWAIT P0, [UR4], R3 ;  /* 0x0000 */
        /*0050*/              @!P0 BRA 0x40 ;                                   /* 0x0000 */
        /*0060*/                   S2R R0, SR_TID.X ;                           /* 0x0000 */
        /*0080*/                   WARPGROUP.ARRIVE ;                           /* 0x0000 */
        /*0090*/                   HGMMA.64x64x16.F32.BF16 R24, gdesc[UR8], RZ, !UPT ;  /* 0x0000 */
        /*00a0*/                   LDL R5, [R1+0x8] ;                           /* 0x0000 */
        /*00b0*/                   MUFU.EX2 R6, R6 ;                            /* 0x0000 */
        /*0140*/               @P1 BRA 0x80 ;                                   /* 0x0000 */
        /*0150*/                   STL [R1+0x10], R7 ;                          /* 0x0000 */
        /*0160*/                   HGMMA.64x256x16.F32.BF16 R32, gdesc[UR12], R32 ;  /* 0x0000 */
        /*01f0*/               @P2 BRA 0x60 ;                                   /* 0x0000 */
        /*0200*/               @P3 BRA 0x40 ;                                   /* 0x0000 */
        /*0210*/                   EXIT ;                                       /* 0x0000 */
"""


def test_functions_and_loops_are_parsed():
    fns = sass.functions(SASS)
    assert list(fns) == ["kernel_decode"]
    assert sass.loops(fns["kernel_decode"]) == [(0x40, 0x50), (0x40, 0x200), (0x60, 0x1F0), (0x80, 0x140)]


def test_the_tile_loop_is_the_innermost_loop_with_wgmma_and_its_spill_is_seen(monkeypatch, tmp_path):
    obj = tmp_path / "kernel.o"
    obj.write_bytes(b"object")
    monkeypatch.setattr(sass, "cubins_of", lambda blob: [b"cubin"] if blob == b"object" else [])
    monkeypatch.setattr(sass, "disassemble", lambda cubin: SASS)
    (loop,) = sass.mma_loops(obj)
    assert (loop.start, loop.end) == (0x80, 0x140)
    assert loop.counts == {"WARPGROUP": 1, "HGMMA": 1, "LDL": 1, "MUFU": 1}
    assert loop.local_memory == 1 and "LDL 1" in loop.describe()


def test_cubins_are_found_inside_a_host_object():
    def elf(machine: int, payload: bytes) -> bytes:
        head = bytearray(64)
        head[0:4], head[4] = b"\x7fELF", 2
        struct.pack_into("<H", head, 18, machine)
        # section headers right after the payload: one 64-byte entry
        struct.pack_into("<QQ", head, 32, 0, 64 + len(payload))
        struct.pack_into("<HHHH", head, 54, 0, 0, 64, 1)
        return bytes(head) + payload + bytes(64)

    cuda, host = elf(190, b"sass!" * 10), elf(62, b"x86")
    blob = host + b"padding" + cuda + b"tail"
    assert sass.cubins_of(blob) == [cuda]


def test_command_line_asks_for_an_existing_object(capsys):
    """`python -m mlagen.sass` explains itself with --help and refuses a missing file before disassembling."""
    with pytest.raises(SystemExit) as help_exit:
        sass.main(["--help"])
    assert help_exit.value.code == 0 and "kernel.o" in capsys.readouterr().out
    with pytest.raises(SystemExit) as missing:
        sass.main(["/no/such/kernel.o"])
    assert missing.value.code == 2 and "no such file: /no/such/kernel.o" in capsys.readouterr().err
