"""The CPU cores this process may run on (its affinity: a job scheduler's or ``taskset``'s limit, not the machine's)."""
import os


def available_cores() -> int:
    """Cores this process may use: its CPU affinity where the OS has one, else the machine's count."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
