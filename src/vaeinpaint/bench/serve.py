"""`python -m vaeinpaint.bench.serve`: clients sending inpainting requests at once to
`vaeinpaint serve`, on loopback only; counts errors and lost requests, and reports throughput
and latency percentiles. Bounded: clients x requests, each with a timeout.

Without --url it starts the server itself (a thread of this process, a free loopback port)
with --checkpoint (default: the pipeline's). Every answer is checked: status 200, a PNG of the
photo's size, every pixel outside the hole as sent. The last line printed is one JSON object.
Exit status 1 if any request failed or was lost.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import numpy as np
import requests
import typer
from PIL import Image

from vaeinpaint.apps.server import ServerSettings, background_server, is_loopback
from vaeinpaint.console import fails_in_one_line
from vaeinpaint.errors import DataError


def request_photo(size: int, seed: int = 0) -> tuple[bytes, bytes, np.ndarray, np.ndarray]:
    """(photo PNG, mask PNG, photo pixels, hole): smooth colour gradients with noise, and a
    square hole of a quarter of the side in the middle."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    rgb = np.stack([xx, yy, 1 - xx * yy], -1) * 200 + rng.normal(0, 12, (size, size, 3))
    pixels = np.clip(rgb, 0, 255).astype(np.uint8)
    hole = np.zeros((size, size), bool)
    side = size // 4
    hole[(size - side) // 2 : (size + side) // 2, (size - side) // 2 : (size + side) // 2] = True
    return png(pixels), png(np.where(hole, 255, 0).astype(np.uint8)), pixels, hole


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def run_load(url: str, clients: int, requests_each: int, size: int = 256, strategy: str = "crop", timeout: float = 120.0) -> dict:
    host = urlsplit(url).hostname or ""
    if not is_loopback(host):
        raise SystemExit(f"error: --url {url}: loopback addresses only (127.0.0.1, localhost, [::1])")
    photo, mask, pixels, hole = request_photo(size)

    def client(number: int) -> list[tuple[bool, float, str]]:
        results = []
        with requests.Session() as session:
            for _ in range(requests_each):
                start = time.perf_counter()
                try:
                    answer = session.post(
                        f"{url}/api/inpaint",
                        files={"image": ("photo.png", photo, "image/png"), "mask": ("mask.png", mask, "image/png")},
                        data={"strategy": strategy},
                        timeout=timeout,
                    )
                    problem = check(answer, pixels, hole)
                except requests.RequestException as exc:
                    problem = exc.__class__.__name__
                results.append((problem == "", time.perf_counter() - start, problem))
        return results

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        outcomes = [outcome for results in pool.map(client, range(clients)) for outcome in results]
    seconds = time.perf_counter() - start
    latencies = np.array([latency for ok, latency, _ in outcomes if ok]) * 1000
    errors = sorted({problem for ok, _, problem in outcomes if not ok})
    total = clients * requests_each
    ok = int(sum(ok for ok, _, _ in outcomes))
    return {
        "clients": clients,
        "requests_per_client": requests_each,
        "sent": total,
        "answered": len(outcomes),
        "ok": ok,
        "errors": len(outcomes) - ok,
        "lost": total - len(outcomes),
        "error_kinds": errors,
        "photo": f"{size}x{size}",
        "strategy": strategy,
        "seconds": round(seconds, 2),
        "throughput_per_s": round(ok / seconds, 2),
        "latency_p50_ms": round(float(np.percentile(latencies, 50)), 1) if ok else None,
        "latency_p95_ms": round(float(np.percentile(latencies, 95)), 1) if ok else None,
        "latency_max_ms": round(float(latencies.max()), 1) if ok else None,
    }


def check(answer: requests.Response, pixels: np.ndarray, hole: np.ndarray) -> str:
    """'' for a good answer, else what is wrong with it."""
    if answer.status_code != 200:
        return f"HTTP {answer.status_code}"
    try:
        with Image.open(io.BytesIO(answer.content)) as image:
            result = np.asarray(image.convert("RGB"))
    except Exception:
        return "not a PNG"
    if result.shape != pixels.shape:
        return "wrong size"
    return "" if np.array_equal(result[~hole], pixels[~hole]) else "pixels outside the hole changed"


def load(
    clients: int = typer.Option(8, min=1, help="clients sending at once"),
    requests_: int = typer.Option(50, "--requests", min=1, help="requests per client"),
    size: int = typer.Option(256, help="side of the square test photo, px"),
    strategy: str = typer.Option("crop", help="crop, resize or original"),
    checkpoint: str | None = typer.Option(None, help="model for the server this starts (default: the pipeline's)"),
    device: str = typer.Option("auto", help="auto, cpu or cuda"),
    url: str | None = typer.Option(None, help="a running server on loopback instead (e.g. http://127.0.0.1:7860)"),
) -> None:
    """Clients sending inpainting requests at once to `vaeinpaint serve` on loopback; exit 1 if any failed."""
    with contextlib.ExitStack() as stack:
        address = url or stack.enter_context(background_server(ServerSettings(model=checkpoint, device=device)))
        if url is None:
            health = requests.get(f"{address}/api/health", timeout=30)
            if health.status_code != 200:
                raise DataError(f"the server is not ready: {health.json().get('detail')}")
        report = run_load(address.rstrip("/"), clients, requests_, size, strategy)
    for key, value in report.items():
        typer.echo(f"{key:>20}  {value}")
    typer.echo(json.dumps(report))
    if report["ok"] != report["sent"]:
        raise typer.Exit(1)


def main(argv: list[str] | None = None) -> int:
    """The command with these arguments (default: the process's); its exit status."""
    try:
        typer_app()(args=argv, prog_name="python -m vaeinpaint.bench.serve")
    except SystemExit as exc:  # typer's standalone mode always ends with one
        return int(exc.code or 0)
    return 0


def typer_app() -> typer.Typer:
    app = typer.Typer(add_completion=False)
    app.command()(fails_in_one_line(load))
    return app


if __name__ == "__main__":
    sys.exit(main())
