"""`vaeinpaint serve`: one static page (apps/static, served by the package: nothing from a
CDN) over a small HTTP API, with FastAPI and uvicorn.

API (fixed: scripts rely on it):
- `POST /api/inpaint`: multipart files `image` and `mask` (white = missing, the image's
  size), optional fields `samples` (1), `seed` (0), `strategy`, `model` (an id from
  `/api/models`) -> `image/png`; with samples > 1, `application/zip` of sample_1.png ...;
  header `X-Vaeinpaint-Prior`: where the draws came from, `learned` (the model's learned
  prior) or `standard` (its encoder's latent).
- `GET /api/health`: 200 when the default model is loaded (its `size` and `prior`), 503 otherwise.
- `POST /api/baseline`: `image`, `mask`, `method` (biharmonic | telea) -> `image/png`.
- `GET /api/models`: the model picker's ids and labels, the strategies, the limits.
Errors are JSON `{"detail": "one line"}` with a 4xx status (503 without a model).

Uploads stay in memory and never reach the file system; a client names models by id, never
by path. With a token, every request needs it (`Authorization: Bearer ...`, or the cookie
the page gets from opening `/?token=...` once).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hmac
import io
import ipaddress
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.formparsers import MultiPartParser
from starlette.middleware.trustedhost import TrustedHostMiddleware

from vaeinpaint.apps.models import ModelChoice, available_models, load_model
from vaeinpaint.errors import DataError, ParamError, VaeinpaintError
from vaeinpaint.inference.compose import baseline_photo
from vaeinpaint.inference.encoding import encode
from vaeinpaint.inference.engine import inpaint_image
from vaeinpaint.inference.holes import read_mask
from vaeinpaint.inference.photos import Photo, TooLarge, load_photo
from vaeinpaint.inference.windows import DEFAULT_STRATEGY, STRATEGIES
from vaeinpaint.options import MAX_SAMPLES, ServedSampling, checked

STATIC_DIR = Path(__file__).parent / "static"
TOKEN_COOKIE = "vaeinpaint_token"
BASELINES = ("biharmonic", "telea")
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "[::1]")


@dataclass(frozen=True)
class ServerSettings:
    model: str | None = None  # the default model's spec (None: the pipeline's checkpoint)
    token: str | None = None
    max_pixels: int = 40_000_000
    max_request_bytes: int = 100_000_000
    device: str = "auto"
    allowed_hosts: tuple[str, ...] | None = None  # Host headers accepted (None: any)


class ModelUnavailable(Exception):
    pass


class Models:
    """The models a client may pick, each loaded once, on first use. Inference runs one
    request at a time: torch already spreads one over every core."""

    def __init__(self, given: str | None, device: str):
        self.given, self.device = given, device
        self.loaded: dict[str, object] = {}
        self.load_lock, self.run_lock = threading.Lock(), threading.Lock()

    def choices(self) -> list[ModelChoice]:
        return available_models(self.given)

    def get(self, model_id: str | None):
        choices = {choice.id: choice for choice in self.choices()}
        model_id = model_id or next(iter(choices))
        if model_id not in choices:
            raise HTTPException(400, f"model: unknown id {model_id!r} (one of: {', '.join(choices)})")
        spec = choices[model_id].spec
        with self.load_lock:
            if spec not in self.loaded:
                try:
                    self.loaded[spec] = load_model(spec, self.device)
                except VaeinpaintError as exc:
                    raise ModelUnavailable(f"model {model_id}: {exc}") from None
            return self.loaded[spec]


def create_app(settings: ServerSettings) -> FastAPI:
    # Multipart uploads stay in memory up to the request limit, never in a temporary file.
    MultiPartParser.spool_max_size = settings.max_request_bytes
    app = FastAPI(title="vaeinpaint", docs_url=None, redoc_url=None)
    app.add_middleware(RequestSizeLimit, limit=settings.max_request_bytes)
    models = Models(settings.model, settings.device)
    with contextlib.suppress(ModelUnavailable):
        models.get(None)  # loaded now, so that the first request does not wait and health tells at once
    if settings.allowed_hosts is not None:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(settings.allowed_hosts))

    @app.middleware("http")
    async def require_token(request: Request, call_next):
        if settings.token is None:
            return await call_next(request)
        given = request.query_params.get("token")
        if given is not None and request.url.path == "/" and same(given, settings.token):
            # The page's address carries the token once; a cookie carries it from then on.
            response = RedirectResponse("/", status_code=303)
            response.set_cookie(TOKEN_COOKIE, settings.token, httponly=True, samesite="strict")
            return response
        header = request.headers.get("authorization", "")
        bearer = header[7:] if header.lower().startswith("bearer ") else None
        if any(same(value, settings.token) for value in (bearer, request.cookies.get(TOKEN_COOKIE)) if value):
            return await call_next(request)
        return JSONResponse({"detail": "a token is required: Authorization: Bearer <token>, or open /?token=<token>"}, status_code=401)

    @app.exception_handler(RequestValidationError)
    async def one_line_validation_error(request: Request, exc: RequestValidationError):
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first.get("loc", ())[1:]) or "request"
        return JSONResponse({"detail": f"{field}: {first.get('msg', 'invalid')}"}, status_code=422)

    @app.exception_handler(ModelUnavailable)
    async def no_model(request: Request, exc: ModelUnavailable):
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-store"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/api/health")
    def health():
        try:
            model = models.get(None)
        except ModelUnavailable as exc:
            return JSONResponse({"status": "no model", "detail": str(exc)}, status_code=503)
        return {"status": "ok", "model": model.spec, "size": model.size, "prior": model.prior}

    @app.get("/api/models")
    def list_models():
        return {
            "models": [{"id": choice.id, "label": choice.label} for choice in models.choices()],
            "strategies": list(STRATEGIES),
            "default_strategy": DEFAULT_STRATEGY,
            "max_samples": MAX_SAMPLES,
            "max_megapixels": settings.max_pixels / 1e6,
        }

    @app.post("/api/inpaint")
    def inpaint(
        image: UploadFile = File(..., description="the photo"),
        mask: UploadFile = File(..., description="white = missing, the photo's size"),
        samples: int = Form(1),
        seed: int = Form(0),
        strategy: str = Form(DEFAULT_STRATEGY),
        model: str | None = Form(None),
    ):
        try:  # the form's types are FastAPI's (422); its values' rules are the command's (400)
            checked(ServedSampling, shown=False, samples=samples, seed=seed, strategy=strategy)
        except ParamError as exc:
            raise HTTPException(400, str(exc)) from None
        photo, hole = read_upload(image, mask, settings.max_pixels)
        chosen = models.get(model)
        with models.run_lock, bad_input():
            filled = inpaint_image(chosen, photo.image, hole, strategy=strategy, samples=samples, seed=seed)
        pngs = [encode(result, Path("result.png"), photo.icc_profile) for result in filled]
        prior = {"X-Vaeinpaint-Prior": chosen.prior}
        if samples == 1:
            return png_response(pngs[0], "inpainted.png", prior)
        headers = {"Content-Disposition": 'attachment; filename="samples.zip"', **prior}
        return Response(zip_of(pngs), media_type="application/zip", headers=headers)

    @app.post("/api/baseline")
    def baseline(image: UploadFile = File(...), mask: UploadFile = File(...), method: str = Form(...)):
        if method not in BASELINES:
            raise HTTPException(400, f"method: must be one of {', '.join(BASELINES)}, got {method!r}")
        photo, hole = read_upload(image, mask, settings.max_pixels)
        with models.run_lock, bad_input():  # one heavy computation at a time, as for the model
            filled = baseline_photo(method, photo.image, hole)
        return png_response(encode(filled, Path("result.png"), photo.icc_profile), f"{method}.png")

    return app


class RequestSizeLimit:
    """413 for a request body over `limit` bytes: at once when its Content-Length says so,
    else as soon as the bytes received pass it (FastAPI re-raises an HTTPException met while
    it reads a form, so the answer is the usual JSON)."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit
        self.message = f"the request is over the limit of {limit / 1e6:g} MB (vaeinpaint serve --max-request-mb)"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.limit:
            return await JSONResponse({"detail": self.message}, status_code=413)(scope, receive, send)
        received = 0

        async def counted():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise HTTPException(413, self.message)
            return message

        await self.app(scope, counted, send)


def same(given: str, token: str) -> bool:
    return hmac.compare_digest(given.encode(), token.encode())


@contextlib.contextmanager
def bad_input() -> Iterator[None]:
    """The engine's one-line errors as 4xx answers: 413 for too many pixels, else 400."""
    try:
        yield
    except TooLarge as exc:
        raise HTTPException(413, str(exc)) from None
    except DataError as exc:
        raise HTTPException(400, str(exc)) from None


def read_upload(image: UploadFile, mask: UploadFile, max_pixels: int) -> tuple[Photo, np.ndarray]:
    with bad_input():
        photo = load_photo(io.BytesIO(image.file.read()), "image", max_pixels)
        hole = read_mask(io.BytesIO(mask.file.read()), photo.image.size, "mask")
    return photo, hole


def png_response(data: bytes, filename: str, headers: dict[str, str] | None = None) -> Response:
    return Response(data, media_type="image/png", headers={"Content-Disposition": f'inline; filename="{filename}"', **(headers or {})})


def zip_of(pngs: list[bytes]) -> bytes:
    """Stored, not deflated: PNGs are compressed already (and the page reads stored zips)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for number, data in enumerate(pngs, 1):
            archive.writestr(f"sample_{number}.png", data)
    return buffer.getvalue()


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def server_config(settings: ServerSettings, host: str, port: int):
    import uvicorn

    if settings.allowed_hosts is None and is_loopback(host):
        # A page on another site could reach a loopback server through DNS rebinding; only
        # requests addressed to this machine by a loopback name are answered.
        settings = dataclasses.replace(settings, allowed_hosts=("localhost", "127.0.0.1", "[::1]", "::1"))
    return uvicorn.Config(create_app(settings), host=host, port=port, log_level="warning", access_log=False)


def run_server(settings: ServerSettings, host: str, port: int) -> None:
    import uvicorn

    if not is_loopback(host):
        print(
            f"warning: listening on {host}: other machines can reach this server"
            + ("" if settings.token else "; anyone who can reach it can use it (set --token)"),
            flush=True,
        )
    server = uvicorn.Server(server_config(settings, host, port))
    shown = f"[{host}]" if ":" in host else host
    print(f"vaeinpaint: serving on http://{shown}:{port}/ (Ctrl+C to stop)", flush=True)
    server.run()


@contextlib.contextmanager
def background_server(settings: ServerSettings, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """The server in a thread of this process, on a free loopback port; yields its base URL."""
    import uvicorn

    server = uvicorn.Server(server_config(settings, host, port))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
