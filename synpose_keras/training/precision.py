"""Which precision a training run uses: ``mixed_precision`` = True, False or "auto".

"auto" turns Keras's ``mixed_bfloat16`` policy on where it pays without a GPU: on CPUs with
AVX-512 BF16 (``avx512_bf16``) or AMX (``amx_bf16``), where oneDNN runs bfloat16 convolutions
natively. On other CPUs bfloat16 is emulated and slower, and on GPUs the choice is the user's
(``--set mixed_precision=true``), so "auto" leaves the run in float32 there. The demo preset's
speed and PCK in both precisions are measured in docs/results.md ("Mixed bfloat16 on the demo").
"""

from __future__ import annotations

from typing import Optional, Tuple, Union

__all__ = ["BF16_CPU_FLAGS", "cpu_bf16_flags", "resolve_mixed_precision"]

#: /proc/cpuinfo flags of native bfloat16 arithmetic on x86 CPUs.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_bf16_flags(cpuinfo: str = "/proc/cpuinfo") -> Optional[Tuple[str, ...]]:
    """The :data:`BF16_CPU_FLAGS` the CPU reports, or None when ``cpuinfo`` cannot be read
    (not Linux)."""
    try:
        with open(cpuinfo) as f:
            text = f.read()
    except OSError:
        return None
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags") and ":" in line:
            flags.update(line.split(":", 1)[1].split())
    return tuple(flag for flag in BF16_CPU_FLAGS if flag in flags)


def _visible_gpus() -> int:
    try:
        import tensorflow as tf

        return len(tf.config.list_physical_devices("GPU"))
    except Exception:  # noqa: BLE001 (no TensorFlow, or a broken driver: treat as no GPU)
        return 0


def resolve_mixed_precision(setting: Union[bool, str], cpuinfo: str = "/proc/cpuinfo",
                            gpus: Optional[int] = None) -> Tuple[bool, str]:
    """``(use_bfloat16, reason)`` for a ``mixed_precision`` setting.

    Args:
        setting: True, False or "auto".
        cpuinfo: str. Where the CPU flags are read (tests pass a file).
        gpus: optional int. Visible GPUs; None asks TensorFlow.

    Returns:
        ``(bool, str)``: whether to train in mixed bfloat16, and the reason in words, for the
        run's log line.

    Raises:
        ValueError: for any other setting.

    Example:

    >>> resolve_mixed_precision(False)
    (False, 'off (mixed_precision=false)')
    """
    if setting is True:
        return True, "on (mixed_precision=true)"
    if setting is False:
        return False, "off (mixed_precision=false)"
    if setting != "auto":
        raise ValueError("mixed_precision must be true, false or 'auto'. Received: "
                         f"mixed_precision={setting!r}")
    gpus = _visible_gpus() if gpus is None else int(gpus)
    if gpus:
        return False, (f"off (auto: {gpus} GPU(s) visible; set mixed_precision=true to train "
                       "them in bfloat16)")
    flags = cpu_bf16_flags(cpuinfo)
    if flags is None:
        return False, f"off (auto: cannot read the CPU flags from {cpuinfo})"
    if flags:
        return True, f"on (auto: this CPU has {' and '.join(flags)})"
    return False, ("off (auto: this CPU has neither AVX-512 BF16 nor AMX, where bfloat16 would "
                   "be emulated and slower)")
