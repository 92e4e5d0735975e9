"""The CPU loops compiled once per vector ISA (csrc/cpu_isa.h: AVX-512, AVX2, the x86-64 baseline) do the same IEEE
operations in the same order (no FMA contraction): every op gives the same bits whichever ISA the CPU picks, so
samples do not depend on which machine drew them. NCSN_FAST_CPU_ISA caps the choice; one process per cap runs
every op (the choice is made once per process)."""

import json

from conftest import python_stdout, skip_unless_backend

# Prints the ISA the loops picked, then {op and case: sha256 of its output's bytes}. Channels multiples of 8 (the
# Winograd convolution's rule), odd image sides (the loops' remainders), both layouts where the op takes both.
CODE = """
import hashlib, json, torch, ncsn_fast._C as C
from ncsn_fast.ops import conv3x3, elu, group_norm_act, instance_norm_plus, philox_normal, pool5x5
g = torch.Generator().manual_seed(0)
x = torch.randn(2, 16, 9, 7, generator=g) * 3 + 1
w, b, e = torch.randn(16, generator=g), torch.randn(16, generator=g), torch.randn(2, 16, generator=g)
wc, bc = torch.randn(24, 16, 3, 3, generator=g), torch.randn(24, generator=g)
out = {"philox_normal": philox_normal(5, 2, torch.arange(8), 3 * 32 * 32 + 5, backend="cpu")}
for layout, xx in (("nchw", x), ("nhwc", x.to(memory_format=torch.channels_last))):
    out[f"group_norm_act {layout}"] = group_norm_act(xx, w, b, 4, 1e-6, e, True, backend="cpu")
    out[f"instance_norm_plus {layout}"] = instance_norm_plus(xx, w, b, e[0], elu=True, backend="cpu")
    out[f"elu {layout}"] = elu(xx, backend="cpu")
    for mode in ("max", "avg"):
        out[f"pool5x5 {mode} {layout}"] = pool5x5(xx, mode, backend="cpu")
for d in (1, 2):
    out[f"conv3x3 dilation {d}"] = conv3x3(x.to(memory_format=torch.channels_last), wc, bc, d, backend="cpu")
print(C.normals_isa())
print(json.dumps({k: hashlib.sha256(v.contiguous().numpy().tobytes()).hexdigest() for k, v in out.items()}))
"""


def test_every_cpu_op_gives_the_same_bits_on_every_vector_unit():
    skip_unless_backend("cpu")
    digests = {}  # {ISA picked: {case: digest}}
    for cap in ("", "avx2", "baseline"):
        picked, printed = python_stdout(CODE, NCSN_FAST_CPU_ISA=cap).split("\n", 1)
        digests[picked] = json.loads(printed)
    assert "baseline" in digests, digests  # the cap took: at least two builds compared on any x86 CPU
    base = digests["baseline"]
    assert len(base) == 13
    for isa, got in digests.items():
        assert [case for case in base if got[case] != base[case]] == [], isa
