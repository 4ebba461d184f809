"""Ingest's processes: one photo function run over many photos, by this process and a pool of workers.

`process(todo, photo_fn, ctx, workers)` yields (path, digest, result) in `todo`'s order, each
result being `photo_fn(photo bytes, ctx)` (physical.ingest.ingest_photo). `workers` counts the
processes ingesting photos, this one included: fewer than 3 photos, or workers=1, are done here
alone; otherwise `workers - 1` pool processes (started from a forkserver, see `pool_context`)
take photos from the front of the queue and this process takes the first one no worker has yet,
between writing the results (a process fewer to warm up than a pool of `workers`, and no core
idles while the forkserver imports its modules).
"""
from __future__ import annotations

import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from typing import Callable

import cv2

from physical.heap import freed_memory_kept, keep_freed_memory
from physical.ingest_warp import release_buffer

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
    """Processes ingesting `n` photos, this one included: 1 (this process alone) for fewer than 3."""
    if workers is None:
        workers = min(os.cpu_count() or 1, 4)
    return 1 if n < 3 else max(1, min(workers, n))


def start_forkserver() -> None:
    if "forkserver" in multiprocessing.get_all_start_methods():
        pool_context()
        _ensure_forkserver()   # returns at once; the server process loads its modules itself


def _ensure_forkserver() -> None:
    """Start the forkserver (if it is not running) so that it imports this process's `physical`.
    It runs `python -c`, whose sys.path starts with the working directory, and Python 3.11's
    forkserver ignores the sys.path it is sent: run from a checkout's root, every worker ran that
    checkout's physical.ingest, whatever this process had imported (benchmarks comparing two trees
    compared one with a mix of both). So the server starts without that entry (PYTHONSAFEPATH,
    Python >= 3.11) and with the folder holding this process's `physical` first on PYTHONPATH."""
    from multiprocessing import forkserver

    import physical

    root = os.path.dirname(os.path.dirname(os.path.abspath(physical.__file__)))
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "PYTHONSAFEPATH")}
    os.environ["PYTHONSAFEPATH"] = "1"
    if os.path.basename(root) not in ("site-packages", "dist-packages"):
        # a checkout or a PYTHONPATH folder; an installed physical is found without it (and putting
        # site-packages ahead of the standard library could shadow it)
        os.environ["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [saved["PYTHONPATH"]])])
    try:
        forkserver.ensure_running()   # spawns the server here, with this environment, if it is not running
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def process(todo, photo_fn: Callable, ctx, workers: int | None):
    workers = pool_size(workers, len(todo))
    if workers == 1:
        keep_freed_memory()   # e.g. serve's worker process, which ingests every photo itself
        for path, digest in todo:
            yield path, digest, photo_fn(path.read_bytes(), ctx)
        return
    with freed_memory_kept():   # this process ingests photos too, then maybe other things
        try:
            yield from _pooled(todo, photo_fn, ctx, workers)
        finally:
            release_buffer()   # the crop warps' photo-sized buffer (48 MB at 12 MP)


def _pooled(todo, photo_fn: Callable, ctx, workers: int):
    n, lock = len(todo), threading.Lock()
    futures: dict = {}      # index -> a worker's Future
    taken: set = set()      # indices this process does; the feeder skips them
    share = {"next": 0}     # the feeder has submitted, or is submitting, every index below this not taken
    failed: list[BaseException] = []
    slots = threading.Semaphore(workers - 1)   # futures not done yet, at most one per worker
    context = pool_context()
    if context.get_start_method() == "forkserver":
        _ensure_forkserver()
    with ProcessPoolExecutor(max_workers=workers - 1, mp_context=context, initializer=_worker_init,
                             initargs=(photo_fn, ctx)) as pool:
        def feed():
            # submitting the first photos starts the workers, which waits until the forkserver has
            # imported cv2 & co. (~0.3 s): a thread does it, so this process ingests meanwhile
            try:
                while True:
                    # one photo at a time per worker, not the executor's one more queued: a photo
                    # queued behind a worker's is one this process can no longer take, which at
                    # the end left it waiting for two photos instead of at most one
                    slots.acquire()
                    with lock:
                        i = share["next"]
                        while i < n and i in taken:
                            i += 1
                        share["next"] = min(i + 1, n)
                        if i >= n:
                            return
                    # absolute: forkserver workers keep the server's working directory, not ours
                    future = pool.submit(_worker, os.path.abspath(todo[i][0]))
                    future.add_done_callback(lambda _: slots.release())
                    with lock:
                        futures[i] = future
            except BaseException as exc:   # re-raised in the caller's thread
                failed.append(exc)

        def claim(start: int) -> int | None:
            """The first photo from `start` on that no worker has: not submitted yet, or still
            waiting in the executor's queue (cancel() succeeds)."""
            with lock:
                for j in range(start, n):
                    if j in taken:
                        continue
                    if j >= share["next"] or (j in futures and futures[j].cancel()):
                        taken.add(j)
                        return j
            return None

        feeder = threading.Thread(target=feed, name="ingest-pool-feeder", daemon=True)
        feeder.start()
        # One OpenCV thread here, like the workers: on cores they share, its threads only add overhead.
        mine, threads = {}, cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            i = 0
            while i < n:
                with lock:
                    future = futures.get(i)
                if i not in mine and not (future is not None and future.done()):
                    j = claim(i)
                    if j is not None:   # work while photo i is with a worker (or is this one)
                        mine[j] = photo_fn(todo[j][0].read_bytes(), ctx)
                        continue
                    feeder.join()   # everything from i on is submitted (or being): wait for photo i
                    if failed:
                        raise failed[0]
                    future = futures[i]
                result = mine.pop(i) if i in mine else future.result()
                yield todo[i][0], todo[i][1], result
                i += 1
        finally:
            cv2.setNumThreads(threads)
            with lock:
                share["next"] = n   # a feeder still running submits nothing more
            slots.release(n)
            feeder.join()


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
