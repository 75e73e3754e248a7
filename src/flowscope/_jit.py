"""The decorators every per-packet kernel uses, and a cache-prefetch hint.

``_nrt=False`` compiles without numba's reference-counting runtime. Kernels that only
read and write arrays they are given (never allocate) need no reference counts, and
with them every call between kernels paid an atomic increment and decrement per array
argument: 10–20 arrays per packet made metering four times slower than without.
``cache=True`` keeps the compiled code on disk, so the compile cost (tens of seconds)
is paid once per machine and installation, not per run.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any, cast

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

kernel = njit(_nrt=False, cache=True)  # type: ignore[call-overload]
"""A compiled function called per packet or per record."""

inline_kernel = njit(_nrt=False, cache=True, inline="always")  # type: ignore[call-overload]
"""Like :data:`kernel`, inlined into its callers at numba IR level (hot, small helpers)."""

hot_kernel = njit(_nrt=False, cache=True, forceinline=True)  # type: ignore[call-overload]
"""Like :data:`kernel`, compiled once and inlined by LLVM into every caller.

For large per-packet functions: a call would pass every array argument as a dozen
machine words on the stack (over a hundred per packet for the meter), while numba-level
inlining re-types the whole body at each call site and multiplies compile time.
"""


def _prefetch_intrinsic(locality: int, name: str) -> Any:
    """An intrinsic issuing LLVM's ``llvm.prefetch`` (read, data cache) at ``locality``."""

    def impl(typingctx: Any, arr: Any, idx: Any) -> Any:
        if not isinstance(arr, types.Array) or arr.layout != "C":
            return None
        if not isinstance(idx, types.Integer):
            return None
        sig = types.void(arr, idx)

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            ary = context.make_array(signature.args[0])(context, builder, args[0])
            ptr = builder.gep(ary.data, [args[1]])
            i8p = ir.IntType(8).as_pointer()
            i32 = ir.IntType(32)
            fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
            fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
            builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(locality), i32(1)])
            return context.get_dummy_value()

        return sig, codegen

    impl.__name__ = impl.__qualname__ = name
    return intrinsic(impl)


_prefetch = _prefetch_intrinsic(3, "prefetch")
_prefetch_l2 = _prefetch_intrinsic(2, "prefetch_l2")

prefetch = cast(Callable[[Any, int], None], _prefetch)
"""``prefetch(a, i)``: ask the CPU to start loading the cache line of ``a.flat[i]``.

``a`` must be C-contiguous; ``i`` counts elements from its start. A hint only (LLVM's
``llvm.prefetch``, x86 ``prefetcht0``): it never faults, even for an index outside the
array, and changes no result. Kernels issue it for data they will touch a few packets
later, so the memory latency overlaps with work.
"""

prefetch_l2 = cast(Callable[[Any, int], None], _prefetch_l2)
"""Like :data:`prefetch` into the second-level cache only (``prefetcht1``): for data
streamed past, most of which is never read, so it does not push hot lines out of the
first-level cache."""


@contextlib.contextmanager
def without_blas() -> Iterator[None]:
    """Let numba load its implementations without importing scipy's BLAS.

    The first cached kernel numba loads in a process makes it import all its
    implementations, and one of them imports ``scipy.linalg`` (a tenth of a second) to
    look for BLAS. Inside this block that import fails, as on a machine without scipy,
    so numba-compiled linear algebra is unavailable for the rest of the process (our
    kernels use none). For command-line processes only; scipy itself stays importable.
    """
    blocked = "scipy.linalg" not in sys.modules
    if blocked:
        sys.modules["scipy.linalg"] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        if blocked and sys.modules.get("scipy.linalg", 0) is None:
            del sys.modules["scipy.linalg"]
