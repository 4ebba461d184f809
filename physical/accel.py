"""The accelerator side of crafting: reproducible numerics, decoding off the model's thread, and
a batch size that fits the device.

* TF32 is off (matmul and cuDNN): BIM/ILL take the sign of every gradient value, and TF32's
  10-bit mantissa flips the sign of near-zero values from run to run and GPU to GPU. What was
  used goes into the manifest (`numerics`).
* Source images (JPEG decode, resize, centre crop: tens of ms each) are decoded by a torch
  DataLoader with worker processes, a batch ahead, so a GPU never waits for Pillow.
* On CUDA, without --batch-size, the batch is the largest power of two (≤ 256) whose forward +
  backward pass fits in memory with a quarter spare; on CPU it stays 16 (larger batches gain
  nothing there).
"""
from __future__ import annotations

import os

import torch

DEFAULT_CPU_BATCH = 16


def configure_numerics(allow_tf32: bool = False) -> dict:
    """Set (and return, for the manifest) the float settings that change gradient signs."""
    torch.backends.cuda.matmul.allow_tf32 = allow_tf32
    torch.backends.cudnn.allow_tf32 = allow_tf32
    return {"tf32": allow_tf32, "matmul_precision": torch.get_float32_matmul_precision(),
            "cuda": torch.version.cuda if torch.cuda.is_available() else None,
            "device_name": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"}


def _decode(args):
    from physical.data import load_image

    item, crop, resize = args
    try:
        return item, load_image(item.path, crop, resize)
    except ValueError as exc:
        return item, exc


def _identity(batch):
    return batch


def decoded_batches(items: list, batch_size: int, crop: int, resize: int | None, workers: int | None = None):
    """Yield lists of (item, uint8 image or the ValueError that made it unreadable), `batch_size`
    items each, in order. Worker processes decode ahead of the model when there is more than one
    batch; one batch is decoded here (starting workers costs more than it saves)."""
    from torch.utils.data import DataLoader

    if workers is None:
        workers = 0 if len(items) <= batch_size else max(1, min(8, (os.cpu_count() or 2) // 2))
    loader = DataLoader(_Sources([(it, crop, resize) for it in items]), batch_size=batch_size, shuffle=False,
                        num_workers=workers, collate_fn=_identity, prefetch_factor=2 if workers else None)
    yield from loader


class _Sources(torch.utils.data.Dataset):
    def __init__(self, jobs):
        self.jobs = jobs

    def __len__(self):
        return len(self.jobs)

    def __getitem__(self, i):
        return _decode(self.jobs[i])


def auto_batch_size(model, device: torch.device, cap: int = 256) -> int:
    """CPU: 16. CUDA: the largest power of two ≤ cap whose input-gradient pass fits with 25 % of
    the device's memory left over (attacks keep a few more images around than the probe)."""
    if device.type != "cuda":
        return DEFAULT_CPU_BATCH
    from physical.attacks import input_gradient

    size, best = 16, 16
    total = torch.cuda.get_device_properties(device).total_memory
    while size <= cap:
        try:
            torch.cuda.reset_peak_memory_stats(device)
            x = torch.rand(size, 3, model.input_size, model.input_size, device=device) * 255
            input_gradient(model, x, torch.zeros(size, dtype=torch.long, device=device))
            if torch.cuda.max_memory_allocated(device) > 0.75 * total:
                break
            best, size = size, size * 2
        except torch.cuda.OutOfMemoryError:
            break
        finally:
            torch.cuda.empty_cache()
    return best

