"""The test app: an HTTP server whose start-up, warm-up and shutdown are set by its environment.

VERSION       text served at / (default v1)
PORT          port to listen on (default 8000)
LISTEN_DELAY  seconds before it listens at all (default 0)
WARMUP        seconds after it listens during which every request gets 503 (default 0)
EXIT_AFTER    exit with code 3 this many seconds after start (default: never)
NEVER_READY   when set, /healthz answers 503 forever
ERRORS        when set, GET / answers 500 once warm (a bad release that passes its health check)

GET /            200 VERSION
GET /slow?seconds=S   200 after S seconds
GET /healthz     200 once warm
POST any path    200 with the length of the body read

SIGTERM makes it exit at once, dropping requests in flight: the worst case for a deploy tool.
"""

import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

VERSION = os.environ.get("VERSION", "v1")
PORT = int(os.environ.get("PORT", "8000"))
LISTEN_DELAY = float(os.environ.get("LISTEN_DELAY", "0"))
WARMUP = float(os.environ.get("WARMUP", "0"))
EXIT_AFTER = os.environ.get("EXIT_AFTER")
NEVER_READY = bool(os.environ.get("NEVER_READY"))
ERRORS = bool(os.environ.get("ERRORS"))
state = {"warm_at": float("inf")}


def log(text: str) -> None:
    print(f"{time.time():.3f} {VERSION} {text}", flush=True)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, the second waits for the peer's
    # delayed ACK (40 ms) whenever the proxy keeps its upstream connection alive.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        url = urlparse(self.path)
        if time.monotonic() < state["warm_at"]:
            self.answer(503, "warming up\n")
        elif url.path == "/healthz":
            self.answer(503 if NEVER_READY else 200, "ok\n")
        else:
            if url.path == "/slow":
                time.sleep(float(parse_qs(url.query).get("seconds", ["2"])[0]))
            self.answer(500 if ERRORS else 200, f"{VERSION}\n")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if time.monotonic() < state["warm_at"]:
            self.answer(503, "warming up\n")
        else:
            self.answer(200, f"{VERSION} got {len(body)} bytes\n")

    def answer(self, status: int, text: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024


def crash() -> None:
    log("crashing")
    os._exit(3)


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))  # PID 1 ignores SIGTERM otherwise
    log("starting")
    if EXIT_AFTER:
        threading.Timer(float(EXIT_AFTER), crash).start()
    time.sleep(LISTEN_DELAY)
    server = Server(("0.0.0.0", PORT), Handler)
    state["warm_at"] = time.monotonic() + WARMUP
    log(f"listening on {PORT}")
    threading.Timer(WARMUP, lambda: log("warm")).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
