"""The heap of the processes that stream (loader workers, soft-target shards): their memory must not
grow with the corpus. glibc's malloc keeps freed memory for reuse, and by default serves a large
block from the heap once a block of that size has been freed: arrays of varying sizes (a block's
features, labels and targets; numpy, torch, lilcom and HDF5 buffers) then fragment the heap, and a
loader worker's peak drifted up with the number of blocks it had read (measured:
benchmarks/scale_memory.py, RESULTS.md). Both calls are no-ops where the C library is not glibc.
"""

import ctypes
import ctypes.util
import functools

_M_MMAP_THRESHOLD = -3  # mallopt parameter numbers of glibc's malloc.h
LARGE_BLOCK_BYTES = 1 << 20


@functools.lru_cache(maxsize=None)
def _libc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def map_large_blocks(threshold: int = LARGE_BLOCK_BYTES) -> bool:
    """Serve every allocation of ``threshold`` bytes or more by its own mapping, handed back to the
    OS when freed (a fixed threshold turns off glibc's sliding one): a block's arrays no longer
    fragment the heap. For processes that allocate large arrays now and then (a loader worker, a
    soft-target shard), not for a training step's process: a fresh mapping per 1 MB gradient cost the
    default model 30% of its throughput (measured). True if it took effect."""
    libc = _libc()
    return bool(libc is not None and libc.mallopt(_M_MMAP_THRESHOLD, int(threshold)))


def release_freed_memory() -> None:
    """Hand the heap's free pages back to the OS: called between the chunks and blocks of the
    streaming steps."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
