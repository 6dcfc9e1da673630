"""Whether this CPU has int8 dot-product instructions: where the int8 model pays.

Measured with the served model (EfficientNet-Lite0, 348 px, whitened to 256-d) through LiteRT at
batch 1 (`bench/int8.py`): on a 2-core AMD EPYC with AVX2 only, the int8 file took 1.0x the float
file's time (2026-12-06); on one with AVX-512 VNNI, 0.42x (2026-12-07). Without such instructions an
int8 convolution multiplies in 16-bit pairs and gains nothing over float FMA, so the platform
quantizes and serves int8 only where they are.
"""

from __future__ import annotations

from pathlib import Path

# x86: VNNI in its AVX-512 and AVX (256-bit) forms, AMX's int8 tiles; ARM: the dot-product extension.
INT8_DOT_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8", "asimddp"})
CPUINFO = Path("/proc/cpuinfo")


def has_int8_dot_product(cpuinfo: str | None = None) -> bool:
    """From ``/proc/cpuinfo``'s flag lines (``flags`` on x86, ``Features`` on ARM); False where there
    is no such file (not Linux), since then nothing says int8 would pay."""
    if cpuinfo is None:
        try:
            cpuinfo = CPUINFO.read_text(encoding="ascii", errors="replace")
        except OSError:
            return False
    for line in cpuinfo.splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() in ("flags", "features") and INT8_DOT_FLAGS & set(value.split()):
            return True
    return False
