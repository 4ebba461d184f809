"""Ingest's processes: one photo function run over many photos in a pool of workers.

`process(todo, photo_fn, ctx, workers)` yields (path, digest, result) in `todo`'s order, each
result being `photo_fn(photo bytes, ctx)` (physical.ingest.ingest_photo). Fewer than 3 photos are
done in this process. Workers start from a forkserver (see `pool_context`), and this process
ingests photos from the end of the queue itself until the first worker answers.
"""
from __future__ import annotations

import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from typing import Callable

import cv2

from physical.heap import keep_freed_memory

_WORKER: tuple[Callable, object] | None = None   # this worker process's (photo function, context)


def _worker_init(photo_fn: Callable, ctx) -> None:
    global _WORKER
    cv2.setNumThreads(1)
    keep_freed_memory()   # each 12 MP photo allocates ~80 MB in large blocks: reuse them
    _WORKER = (photo_fn, ctx)


def _worker(path: str) -> dict:
    with open(path, "rb") as f:
        data = f.read()
    photo_fn, ctx = _WORKER
    return photo_fn(data, ctx)


def pool_size(workers: int | None, n: int) -> int:
    """Worker processes for `n` photos: 1 (this process) for fewer than 3."""
    if workers is None:
        workers = min(os.cpu_count() or 1, 4)
    return 1 if n < 3 else max(1, min(workers, n))


def start_forkserver() -> None:
    if "forkserver" in multiprocessing.get_all_start_methods():
        from multiprocessing import forkserver

        pool_context()
        forkserver.ensure_running()   # returns at once; the server process loads its modules itself


def process(todo, photo_fn: Callable, ctx, workers: int | None):
    workers = pool_size(workers, len(todo))
    if workers == 1:
        keep_freed_memory()   # e.g. serve's worker process, which ingests every photo itself
        for path, digest in todo:
            yield path, digest, photo_fn(path.read_bytes(), ctx)
        return
    keep_freed_memory()   # this process ingests photos too (the queue's end, while workers start)
    n, lock = len(todo), threading.Lock()
    futures: dict = {}               # index -> Future of a worker
    share = {"next": 0, "end": n}    # the feeder submits [next, end); this process does [end, n)
    failed: list[BaseException] = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=pool_context(), initializer=_worker_init,
                             initargs=(photo_fn, ctx)) as pool:
        def feed():
            # submitting the first photos starts the workers, which waits until the forkserver has
            # imported cv2 & co. (~0.3 s): a thread does it, so this process works meanwhile
            try:
                while True:
                    with lock:
                        i = share["next"]
                        if i >= share["end"]:
                            return
                        share["next"] = i + 1
                    # absolute: forkserver workers keep the server's working directory, not ours
                    future = pool.submit(_worker, os.path.abspath(todo[i][0]))
                    with lock:
                        futures[i] = future
            except BaseException as exc:   # re-raised below, in the caller's thread
                failed.append(exc)

        feeder = threading.Thread(target=feed, name="ingest-pool-feeder", daemon=True)
        feeder.start()
        # Until a worker answers, this process ingests photos from the end of the queue itself:
        # ones not yet submitted (the feeder then stops before them) or not yet handed to a worker
        # (cancel() succeeds). One OpenCV thread meanwhile, like the workers: on cores the
        # workers share, OpenCV's threads only add overhead.
        mine, threads = {}, cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            for i in range(n - 1, 0, -1):
                with lock:
                    if any(f.done() and not f.cancelled() for f in futures.values()):
                        break
                    if i >= share["next"]:
                        share["end"] = i
                    elif i not in futures or not futures[i].cancel():
                        break   # being submitted, or a worker has it
                mine[i] = photo_fn(todo[i][0].read_bytes(), ctx)
        finally:
            cv2.setNumThreads(threads)
            feeder.join()
        if failed:
            raise failed[0]
        for i, (path, digest) in enumerate(todo):
            yield path, digest, mine[i] if i in mine else futures[i].result()


def pool_context():
    """Not fork: a forked child can inherit OpenCV's/OpenMP's thread-pool locks mid-use and hang.
    forkserver where there is one: a fresh single-threaded server process imports physical.ingest
    (and so this module) once and forks every worker from it, so a pool's workers start without
    importing cv2 and numpy each (~0.35 s of CPU per worker) and later pools of the same process
    start at once; spawn elsewhere."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["physical.ingest"])  # no effect once the server runs (same list anyway)
    return context
