"""Which CPUs get the int8 model by default: those with int8 dot-product instructions."""

from __future__ import annotations

import pytest

from ml.cpu_int8 import has_int8_dot_product

X86_AVX2 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx avx2 fma\n"
X86_VNNI = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma avx512f avx512_vnni avx512_bf16\n"
X86_AVX_VNNI = "flags\t\t: fpu avx2 avx_vnni\n"
ARM_DOTPROD = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes crc32 atomics asimddp\n"
ARM_PLAIN = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes crc32\n"


@pytest.mark.parametrize(
    ("cpuinfo", "expected"),
    [
        (X86_AVX2, False),
        (X86_VNNI, True),
        (X86_AVX_VNNI, True),
        (ARM_DOTPROD, True),
        (ARM_PLAIN, False),
        ("", False),
        # A flag's name elsewhere on the line (a model name, a bug list) is not the flag.
        ("model name\t: avx512_vnni-like\nflags\t\t: avx2\n", False),
    ],
)
def test_int8_pays_only_with_dot_product_instructions(cpuinfo: str, expected: bool) -> None:
    assert has_int8_dot_product(cpuinfo) is expected


def test_no_cpuinfo_file_means_float(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr("ml.cpu_int8.CPUINFO", tmp_path / "missing")
    assert has_int8_dot_product() is False
