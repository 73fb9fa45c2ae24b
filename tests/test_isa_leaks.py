"""The AVX leak check (tools/check_isa_leaks.py) itself, and the built extension."""

import importlib.util
import pathlib
import platform

import pytest

import fastsoftmax._core as core

TOOL = pathlib.Path(__file__).resolve().parents[1] / "tools" / "check_isa_leaks.py"
spec = importlib.util.spec_from_file_location("check_isa_leaks", TOOL)
check_isa_leaks = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_isa_leaks)

SAMPLE = """
0000000000001000 <fastsoftmax::avx2::f32_two_pass_softmax(unsigned long, float const*, float*)>:
    1000:	vmulps %ymm1,%ymm2,%ymm3
0000000000002000 <fastsoftmax::avx512::f32_online_softmax(unsigned long, float const*, float*)>:
    2000:	vscalefps %zmm1,%zmm2,%zmm3
0000000000003000 <fastsoftmax::run_rows(fastsoftmax::KernelEntry const&)>:
    3000:	movss %xmm0,(%rdi)
"""


def test_clean_disassembly_passes():
    assert check_isa_leaks.leaks(SAMPLE) == {}


@pytest.mark.parametrize("reg", ["%ymm0", "%zmm17"])
def test_wide_register_outside_isa_namespace_is_reported(reg):
    leaked = SAMPLE + f"0000000000004000 <std::max<float>(float const&, float const&)>:\n    4000:\tvmaxps {reg},{reg},{reg}\n"
    found = check_isa_leaks.leaks(leaked)
    assert list(found) == ["std::max<float>(float const&, float const&)"]


def test_scalar_namespace_is_not_allowed_wide_registers():
    leaked = "0000000000005000 <fastsoftmax::scalar::f32_two_pass_softmax()>:\n    5000:\tvaddps %ymm1,%ymm1,%ymm1\n"
    assert list(check_isa_leaks.leaks(leaked)) == ["fastsoftmax::scalar::f32_two_pass_softmax()"]


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="AVX tiers exist on x86-64 only (not this CPU)")
def test_built_extension_has_no_leaks():
    assert check_isa_leaks.main(["check_isa_leaks", core.__file__]) == 0
