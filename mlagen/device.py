"""Facts about the target GPU that the planner needs.

Building a kernel needs no GPU: without one the planner assumes an H100 SXM
(the machine the project is measured on). With one, the facts are read from
the device so the split-KV grid matches its multiprocessor count.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DeviceFacts", "H100_SXM", "current_device_facts"]


@dataclass(frozen=True)
class DeviceFacts:
    """What a kernel plan is checked against.

    ``smem_per_block`` is the opt-in dynamic shared memory limit of one CTA
    (227 KiB on Hopper); ``regs_per_sm`` the register file size in 32-bit
    registers.
    """

    name: str
    sm_count: int
    smem_per_block: int = 232448
    regs_per_sm: int = 65536
    max_threads_per_block: int = 1024
    arch: str = "sm_90a"

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "sm_count": self.sm_count,
            "smem_per_block": self.smem_per_block,
            "regs_per_sm": self.regs_per_sm,
            "arch": self.arch,
        }


H100_SXM = DeviceFacts(name="NVIDIA H100 80GB HBM3", sm_count=132)


def current_device_facts(device=None) -> DeviceFacts:
    """Facts of ``device`` (a torch device or index), or the H100 defaults without a GPU."""
    import torch

    if not torch.cuda.is_available():
        return H100_SXM
    index = torch.device(device).index if device is not None else torch.cuda.current_device()
    if index is None:
        index = torch.cuda.current_device()
    props = torch.cuda.get_device_properties(index)
    major, minor = props.major, props.minor
    if (major, minor) != (9, 0):
        raise RuntimeError(
            f"mlagen kernels target sm_90a (Hopper); {props.name} is sm_{major}{minor}"
        )
    smem = getattr(props, "shared_memory_per_block_optin", H100_SXM.smem_per_block)
    return DeviceFacts(
        name=props.name,
        sm_count=props.multi_processor_count,
        smem_per_block=int(smem),
        regs_per_sm=int(getattr(props, "regs_per_multiprocessor", 65536)),
    )
