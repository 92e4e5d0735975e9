"""Triton kernels behind ncsn_fast.ops (imported lazily: triton is optional)."""

import os

# Under TRITON_INTERPRET=1 the kernels run on the CPU through numpy; libdevice does not run there.
INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"
