"""celery_add.py — Celery's way, for bench/tasks_bench.py: the same add as a Celery task over
Redis (broker and result backend). Worker: `/usr/bin/python3 -m celery -A celery_add worker
--concurrency 2 --pool prefork`; client: `/usr/bin/python3 celery_add.py PORT N` submits N
tasks in windows of 500 and waits for every result, then prints tasks per second."""
import os
import sys
import time

from celery import Celery

PORT = int(os.environ.get("IM_BENCH_REDIS_PORT", "16379"))
app = Celery("celery_add", broker=f"redis://127.0.0.1:{PORT}/0",
             backend=f"redis://127.0.0.1:{PORT}/1")
app.conf.update(task_acks_late=False, worker_prefetch_multiplier=16, result_expires=600)


@app.task
def add(x, y):
    return x + y


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    assert add.delay(1, 2).get(timeout=30) == 3  # the worker is up
    t0 = time.monotonic()
    done = 0
    while done < n:
        window = [add.delay(3, 6) for _ in range(min(500, n - done))]
        for r in window:
            assert r.get(timeout=60) == 9
        done += len(window)
    t = time.monotonic() - t0
    print(f"tasks={done} seconds={t:.2f} tasks_per_s={done / t:.0f}")
