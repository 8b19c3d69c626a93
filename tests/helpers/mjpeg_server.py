"""A tiny MJPEG-over-HTTP camera on loopback, as IP cameras serve (multipart/x-mixed-replace).

Plays the embedded clip in a loop at its frame rate. Test use only; binds 127.0.0.1.
"""

from __future__ import annotations

import http.server
import threading
import time
from pathlib import Path

import cv2

CLIP = Path(__file__).resolve().parents[2] / "edge" / "assets" / "pyfeat_single_face.mp4"
BOUNDARY = "frame"


def clip_jpegs(limit: int = 72) -> list[bytes]:
    capture = cv2.VideoCapture(str(CLIP))
    frames = []
    while len(frames) < limit:
        ok, image = capture.read()
        if not ok:
            break
        frames.append(cv2.imencode(".jpg", image)[1].tobytes())
    capture.release()
    return frames


class MjpegCamera:
    def __init__(self, port: int = 0, fps: float = 30.0) -> None:
        self.frames = clip_jpegs()
        self.fps = fps
        self.port = port
        self._server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def start(self) -> MjpegCamera:
        camera = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/stream.mjpg":  # as a camera does for a wrong path
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.end_headers()
                n = 0
                try:
                    while camera._server is not None:
                        jpeg = camera.frames[n % len(camera.frames)]
                        self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                                         f"Content-Length: {len(jpeg)}\r\n\r\n".encode())
                        self.wfile.write(jpeg + b"\r\n")
                        n += 1
                        time.sleep(1 / camera.fps)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()


def unplug(camera: MjpegCamera, source: object, timeout: float = 3.0) -> None:
    """Stop `camera` under an open LiveSource and read until the source notices."""
    camera.stop()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and source.connected:  # type: ignore[attr-defined]
        source.read(timeout=0.1)  # type: ignore[attr-defined]
