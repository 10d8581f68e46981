"""Timing and peak memory of one training step, shared by the benchmark tools.

Peak memory is the step's own: on CUDA ``torch.cuda.max_memory_allocated`` above what was
allocated before; on CPU the rise of the process's peak resident memory (``VmHWM``, reset
through ``/proc/self/clear_refs``) over its resident memory before the step. Times are medians
after one warm-up run (allocator, kernel selection).
"""
import statistics
import time
from typing import Callable, Dict

import torch


def _status_kib(field: str) -> int:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise RuntimeError(f'{field} not in /proc/self/status')


def _reset_peak_memory(device: str) -> int:
    """Reset the peak counter; returns the bytes in use now."""
    if device == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated()
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')  # resets VmHWM to the current resident size
        return _status_kib('VmRSS') * 1024
    except OSError:  # not Linux: no peak memory figure
        return -1


def _peak_memory(device: str) -> int:
    if device == 'cuda':
        return torch.cuda.max_memory_allocated()
    try:
        return _status_kib('VmHWM') * 1024
    except OSError:
        return -1


def measure_step(step: Callable[[], None], device: str = 'cpu', repeats: int = 3,
                 clock: Callable[[], float] = time.perf_counter) -> Dict[str, float]:
    """Median seconds of ``step()`` over ``repeats`` runs after one warm-up, and its peak
    extra memory in MiB (NaN where the platform gives none).

    Args:
        step: Runs one measured unit of work (e.g. forward + backward).
        device (str): ``'cpu'`` or ``'cuda'`` (CUDA work is synchronised before reading the
            clock).
        repeats (int): Timed runs. Defaults to 3.
        clock: Seconds as a float; tests pass a fake one. Defaults to ``time.perf_counter``.

    Example:
        >>> ticks = iter([0.0, 1.0, 1.0, 3.0, 3.0, 4.5])
        >>> measure_step(lambda: None, clock=lambda: next(ticks))['seconds']
        1.5
    """
    step()  # warm-up
    base = _reset_peak_memory(device)
    times = []
    for _ in range(repeats):
        start = clock()
        step()
        if device == 'cuda':
            torch.cuda.synchronize()
        times.append(clock() - start)
    peak = _peak_memory(device)
    peak_mib = max(peak - base, 0) / 2**20 if base >= 0 and peak >= 0 else float('nan')
    return dict(seconds=statistics.median(times), peak_mib=peak_mib)


def peak_tensor_mib(step: Callable[[], None]) -> float:
    """Peak of the tensor memory ``step()`` allocates on the CPU, in MiB, above what was live
    when it started: the running sum of the allocations and frees that torch's profiler
    records (``profile_memory=True``), in time order.

    Unlike the process's peak resident memory (:func:`measure_step` on CPU), this does not
    depend on what the allocator kept from earlier steps, so steps measured one after another
    in one process compare fairly; it counts tensors only (not Python objects or oneDNN
    scratch space). One extra, untimed run.

    Example:
        >>> import torch
        >>> round(peak_tensor_mib(lambda: torch.zeros(2**18) + 1), 1)  # two 1 MiB tensors
        2.0
    """
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == '[memory]'
              and e.device_type() == torch.autograd.DeviceType.CPU]
    live = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        live += event.nbytes()
        peak = max(peak, live)
    return peak / 2**20
