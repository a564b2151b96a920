"""The CPU a run or a benchmark is measured on: its model name and the instruction-set flags that change which kernels
the runtimes pick (and so their speed, and in OpenVINO their default precision)."""

from __future__ import annotations

import platform
from functools import lru_cache
from pathlib import Path

# The flags that decide the kernels: vector width (AVX2, AVX-512), 8-bit dot products (VNNI), bfloat16 and the AMX
# tile units. Reported in this order, those the CPU has.
KERNEL_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_tile",
                "amx_bf16", "amx_int8")  # fmt: skip


@lru_cache(maxsize=1)
def cpu() -> dict:
    """{"model": name, "flags": [the KERNEL_FLAGS it has]}: from /proc/cpuinfo on Linux, else what platform says
    (flags then unknown: an empty list)."""
    model, flags = platform.processor() or platform.machine(), set()
    info = Path("/proc/cpuinfo")
    if info.is_file():
        for line in info.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name":
                model = value.strip()
            elif key in ("flags", "Features"):
                flags = set(value.split())
            if key == "" and flags:  # the first processor's block is enough: the cores are alike
                break
    return {"model": model, "flags": [f for f in KERNEL_FLAGS if f in flags]}


def describe() -> str:
    """One line for a table's header: 'AMD EPYC (avx2, fma)'."""
    c = cpu()
    return f"{c['model']} ({', '.join(c['flags']) or 'no AVX2'})"
