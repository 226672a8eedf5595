"""How the training images reach the device: resident, or streamed in chunks.

- **Resident** (whenever it fits): the whole uint8 training set and its stored masks are
  copied to the device once, and every batch is gathered there by index: no DataLoader, no
  host work per step.
- **Streamed**: when the set (images + masks) needs more than `train.resident_fraction` of
  the device's free memory (`torch.cuda.mem_get_info()` on CUDA, available RAM on a CPU), the
  images stay in the memory-mapped `images.npy`. Each epoch's shuffled order is cut into
  chunks of whole batches (up to MAX_CHUNK_BYTES); a chunk's rows are read in file order
  into a pinned host buffer, sent to the device in one transfer and put back in the epoch's
  order there. A background thread reads the next chunk while the device trains on this one.

Both give the same batches (the same images in the same order), so streaming changes where
the bytes wait, not what is learnt: on a CPU the two train to identical weights (tested).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from vaeinpaint.data.dataset import SubsetImages

log = logging.getLogger(__name__)

MAX_CHUNK_BYTES = 1 << 30  # 1 GiB: ~5,000 RGB images of 256 px, a fraction of a second of GPU training
Batch = tuple[torch.Tensor, torch.Tensor | None]  # uint8 images [b, S, S(, C)], uint8 masks [b, S, S] (or None), on the device


def free_memory(device: torch.device) -> int:
    """Bytes the training set could take: free memory of the CUDA device, or available RAM."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    import psutil

    return int(psutil.virtual_memory().available)


def set_bytes(images, masks: np.ndarray) -> int:
    return int(images.nbytes) + int(masks.nbytes)


def in_memory(images) -> np.ndarray:
    """`images` as an ordinary writable array in RAM (a memory map or a lazy subset is read)."""
    array = np.asarray(images)
    if isinstance(array, np.memmap) or not array.flags.writeable or not array.flags.c_contiguous:
        array = np.array(array, order="C")
    return array


class ResidentFeed:
    """The whole set on the device; batches gathered there by index."""

    streamed = False

    def __init__(self, images, masks: np.ndarray, device: torch.device):
        self.images = torch.from_numpy(in_memory(images)).to(device)
        self.masks = torch.from_numpy(np.ascontiguousarray(masks)).to(device)

    def gather(self, idx: torch.Tensor) -> Batch:
        return self.images[idx], self.masks[idx]

    def batches(self, order: torch.Tensor, batch: int, steps: int, with_masks: bool = True) -> Iterator[Batch]:
        """The epoch's batches; without `with_masks` (fresh masks are drawn) the stored ones
        are not gathered (None)."""
        for step in range(steps):
            idx = order[step * batch : (step + 1) * batch]
            yield self.images[idx], self.masks[idx] if with_masks else None


class StreamedFeed:
    """The set stays on the host (a memory map); chunks of `chunk_images` go to the device."""

    streamed = True

    def __init__(self, images, masks: np.ndarray, device: torch.device, chunk_images: int):
        if isinstance(images, SubsetImages):
            self.source, self.rows = images.source, images.rows
        else:
            self.source, self.rows = images, np.arange(len(images))
        self.masks = np.ascontiguousarray(masks)
        self.device, self.chunk_images = device, chunk_images
        pin = device.type == "cuda"
        shape = (chunk_images, *self.source.shape[1:])
        self.buffers = [torch.empty(shape, dtype=torch.uint8, pin_memory=pin) for _ in range(2)]
        self.mask_buffers = [torch.empty((chunk_images, *self.masks.shape[1:]), dtype=torch.uint8, pin_memory=pin) for _ in range(2)]
        self.copied = [None, None]  # CUDA events: the last transfer out of each buffer is done

    def _read(self, idx: np.ndarray, slot: int, with_masks: bool) -> np.ndarray:
        """Read the images (and masks) of subset positions `idx` into buffer `slot`, in file
        order (sequential on disk); return the order they were read in."""
        sorter = np.argsort(self.rows[idx], kind="stable")
        k = len(idx)
        np.take(self.source, self.rows[idx][sorter], axis=0, out=self.buffers[slot].numpy()[:k])
        if with_masks:
            np.take(self.masks, idx[sorter], axis=0, out=self.mask_buffers[slot].numpy()[:k])
        return sorter

    def _to_device(self, slot: int, sorter: np.ndarray, with_masks: bool) -> Batch:
        k = len(sorter)
        images = self.buffers[slot][:k].to(self.device, non_blocking=True)
        masks = self.mask_buffers[slot][:k].to(self.device, non_blocking=True) if with_masks else None
        if self.device.type == "cuda":
            self.copied[slot] = torch.cuda.Event()
            self.copied[slot].record()
        inverse = np.empty_like(sorter)
        inverse[sorter] = np.arange(k)
        back = torch.from_numpy(inverse).to(self.device)
        # The epoch's order again (indexing copies: the buffer is free).
        return images[back], masks[back] if with_masks else None

    def _wait(self, slot: int) -> None:
        if self.copied[slot] is not None:
            self.copied[slot].synchronize()

    def gather(self, idx: torch.Tensor) -> Batch:
        idx_np = idx.cpu().numpy()
        images = torch.from_numpy(np.ascontiguousarray(self.source[self.rows[idx_np]]))
        masks = torch.from_numpy(np.ascontiguousarray(self.masks[idx_np]))
        return images.to(self.device), masks.to(self.device)

    def batches(self, order: torch.Tensor, batch: int, steps: int, with_masks: bool = True) -> Iterator[Batch]:
        """The epoch's batches; without `with_masks` the stored masks are neither read nor sent (None)."""
        order_np = order[: steps * batch].cpu().numpy()
        chunks = [order_np[i : i + self.chunk_images] for i in range(0, len(order_np), self.chunk_images)]
        if not chunks:
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="feed") as reader:
            self._wait(0)
            pending = reader.submit(self._read, chunks[0], 0, with_masks)
            for c, idx in enumerate(chunks):
                images, masks = self._to_device(c % 2, pending.result(), with_masks)
                if c + 1 < len(chunks):
                    self._wait((c + 1) % 2)
                    pending = reader.submit(self._read, chunks[c + 1], (c + 1) % 2, with_masks)
                for start in range(0, len(idx), batch):
                    yield images[start : start + batch], masks[start : start + batch] if with_masks else None


def make_feed(images, masks: np.ndarray, device: torch.device, fraction: float, batch: int) -> ResidentFeed | StreamedFeed:
    """Resident if the set fits in `fraction` of the device's free memory, else streamed in
    chunks of whole batches, each at most MAX_CHUNK_BYTES and a quarter of that share."""
    needed, free = set_bytes(images, masks), free_memory(device)
    budget = fraction * free
    if needed <= budget:
        return ResidentFeed(images, masks, device)
    per_image = set_bytes(images, masks) // max(len(images), 1)
    chunk_bytes = min(MAX_CHUNK_BYTES, budget / 4)
    chunk_images = batch * max(1, int(chunk_bytes // (per_image * batch)))
    log.info(
        "train: the training set (%.2f GB) needs more than train.resident_fraction=%g of the %s's free %.2f GB: "
        "streaming it in chunks of %d images",
        needed / 1e9,
        fraction,
        device.type,
        free / 1e9,
        chunk_images,
    )
    return StreamedFeed(images, masks, device, chunk_images)
