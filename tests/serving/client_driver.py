"""Client side of the serving tests, run in the serve Python (which has tritonclient).

Usage: ``python client_driver.py JOB.json``; prints one JSON answer on stdout. Job kinds:

- ``tensors``: send ``npz_in`` (batch-first arrays) as one request, or one request per row
  concurrently (``concurrency`` > 1); write the outputs to ``npz_out``.
- ``studies``: send each file of ``payloads`` (study payload bytes) as one request, with
  ``concurrency`` threads; answer the records in order.
- ``stats``: answer Triton's inference statistics of ``models``.

Every address is 127.0.0.1; request counts are bounded by the job.
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from medfuse.serving.client import ServeClient


def _client(job: dict[str, Any]) -> ServeClient:
    assert job["url"].startswith("127.0.0.1:"), "loopback only"
    return ServeClient(
        job["url"], job["model"], protocol=job.get("protocol", "http"), timeout_s=120
    )


def tensors(job: dict[str, Any]) -> dict[str, Any]:
    feeds = dict(np.load(job["npz_in"]))
    outputs = job["outputs"]
    n = len(next(iter(feeds.values())))
    conc = int(job.get("concurrency", 1))
    if conc <= 1:
        with _client(job) as c:
            result = c.infer(feeds, outputs)
    else:

        def one(i: int) -> dict[str, Any]:
            with _client(job) as c:
                return c.infer({k: v[i : i + 1] for k, v in feeds.items()}, outputs)

        with ThreadPoolExecutor(conc) as pool:
            rows = list(pool.map(one, range(n)))
        result = {o: np.concatenate([r[o] for r in rows]) for o in outputs}
    np.savez(job["npz_out"], **result)
    return {"ok": True, "rows": n}


def studies(job: dict[str, Any]) -> dict[str, Any]:
    payloads = [Path(p).read_bytes() for p in job["payloads"]]

    def one(data: bytes) -> dict[str, Any]:
        with _client(job) as c:
            return c.predict_study(data)

    with ThreadPoolExecutor(int(job.get("concurrency", 1))) as pool:
        records = list(pool.map(one, payloads))
    return {"records": records}


def stats(job: dict[str, Any]) -> dict[str, Any]:
    with _client(job) as c:
        return {m: c.statistics(m) for m in job["models"]}


def main() -> None:
    job = json.loads(Path(sys.argv[1]).read_text())
    answer = {"tensors": tensors, "studies": studies, "stats": stats}[job["kind"]](job)
    print(json.dumps(answer))


if __name__ == "__main__":
    main()
