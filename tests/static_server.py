"""Serve a built site on 127.0.0.1 as a static host does: files as they are, text gzip-compressed.

GitHub Pages (where the site is deployed) compresses HTML, CSS, JavaScript, JSON and SVG with gzip for a
browser that accepts it, and sends images and fonts as they are; so does this server, so that the bytes
the browser tests and the page benchmark count are those a reader downloads.

    with serve(Path("_build/html")) as url:  # "http://127.0.0.1:PORT/"
        ...
"""

import gzip
import mimetypes
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

COMPRESSED_TYPES = (
    "text/",
    "application/javascript",
    "application/json",
    "image/svg+xml",
    "application/x-ipynb+json",
)
mimetypes.add_type("application/x-ipynb+json", ".ipynb")
mimetypes.add_type("application/javascript", ".js")
mimetypes.add_type("text/markdown", ".md")


class GzipHandler(SimpleHTTPRequestHandler):
    """A static file handler that compresses text types, and keeps quiet."""

    def send_head(self):
        path = Path(self.translate_path(self.path))
        if path.is_dir():
            path = path / "index.html"
        content_type = self.guess_type(str(path))
        wants_gzip = "gzip" in self.headers.get("Accept-Encoding", "")
        if not path.is_file() or not wants_gzip or not content_type.startswith(COMPRESSED_TYPES):
            return super().send_head()
        body = gzip.compress(path.read_bytes(), compresslevel=6, mtime=0)
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Vary", "Accept-Encoding")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        return None

    def log_message(self, format, *args):
        pass


@contextmanager
def serve(directory: Path) -> Iterator[str]:
    """Serve ``directory`` in a background thread for the duration of the block; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(GzipHandler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
