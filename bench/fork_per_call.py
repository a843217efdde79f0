"""fork_per_call.py — the peer of process mode: restful-functions' pattern, a process forked
for each call (multiprocessing, fork start method) that runs the function and sends its result
back on a pipe, under FastAPI. Run by bench/process_bench.py with uvicorn (Debian's
python3-fastapi, python3-uvicorn, python3-uvloop, python3-httptools)."""
import asyncio
import multiprocessing as mp

from fastapi import FastAPI
from pydantic import BaseModel

ctx = mp.get_context("fork")
app = FastAPI()


class Add(BaseModel):
    x: int
    y: int


def add(conn, x, y):
    conn.send(x + y)
    conn.close()


def run_in_process(x, y):
    parent, child = ctx.Pipe(duplex=False)
    p = ctx.Process(target=add, args=(child, x, y))
    p.start()
    child.close()
    out = parent.recv()
    p.join()
    return out


@app.post("/add")
async def add_route(a: Add):
    loop = asyncio.get_running_loop()
    return {"result": await loop.run_in_executor(None, run_in_process, a.x, a.y)}
