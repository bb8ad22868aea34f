"""The baseline for the intake benchmark: the same framework and server, no work.

``uvicorn benchmarks.bare_app:app`` answers ``POST /webhooks/meta`` with 200 after reading the
body, which is what any receiver costs before it verifies, stores or enqueues anything.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse

app = FastAPI()


@app.post("/webhooks/meta")
async def receive(request: Request) -> PlainTextResponse:
    await request.body()
    return PlainTextResponse("OK")


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
