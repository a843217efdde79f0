"""fastapi_queue.py — the seed pattern immersive's tasks replace, for bench/tasks_bench.py: a
FastAPI handler puts the call on a bounded queue served by one worker thread and awaits a
future the worker completes (429 when the queue is full). Run it with Debian's python3
(python3-fastapi, python3-uvicorn with uvloop and httptools):
  /usr/bin/python3 -m uvicorn fastapi_queue:app --loop uvloop --http httptools --port P"""
import asyncio
import queue
import threading

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

app = FastAPI()
jobs = queue.Queue(maxsize=1024)


class AddIn(BaseModel):
    x: int
    y: int


def worker():
    while True:
        fut, loop, x, y = jobs.get()
        loop.call_soon_threadsafe(fut.set_result, x + y)


threading.Thread(target=worker, daemon=True).start()


@app.post("/add")
async def add(a: AddIn):
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    try:
        jobs.put_nowait((fut, loop, a.x, a.y))
    except queue.Full:
        raise HTTPException(429, "the work queue is full", headers={"Retry-After": "1"})
    return {"result": await fut}
