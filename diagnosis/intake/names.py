"""Uploaded file names: received whatever their bytes, kept only as a safe display name.

Django's multipart parser skips a part whose header is not UTF-8, and a part whose file name it
cannot use ("..", "dir/"): the file then silently goes missing, and the page says no file was
chosen. ``ReadableNamesUploadHandler`` (first in ``FILE_UPLOAD_HANDLERS``) hands Django the same
body with such headers made readable: bytes that are not UTF-8 become U+FFFD, and an unusable
non-empty file name becomes "unnamed". Everything else, the files' bytes above all, passes on
unchanged. An empty file name is left alone: that is how a browser sends "no file chosen".

The name is never used for storage (files get generated names); ``display_name`` makes the one
shown on pages and written to the audit trail: no folders, no control or invisible characters,
at most 255 bytes of UTF-8 with the extension kept.
"""

import html
import re
import unicodedata

from django.core.files.uploadhandler import FileUploadHandler
from django.http.multipartparser import MultiPartParser
from django.utils.http import parse_header_parameters

UNNAMED = "unnamed"
MAX_NAME_BYTES = 255
# Part headers are small; one longer than this is passed on as it is (Django refuses it anyway).
MAX_HEADER_BYTES = 64 * 1024
_CHUNK = 64 * 1024


def display_name(name):
    """A safe display name for the uploaded file name ``name`` (possibly empty or hostile)."""
    name = unicodedata.normalize("NFC", name or "")
    name = re.split(r"[/\\]", name)[-1]
    # Control, format (e.g. right-to-left overrides) and other invisible characters go.
    name = "".join(char for char in name if char.isprintable()).strip()
    if name in ("", ".", ".."):
        return UNNAMED
    if len(name.encode("utf-8")) <= MAX_NAME_BYTES:
        return name
    stem, dot, extension = name.rpartition(".")
    if not dot or len(extension.encode("utf-8")) > 16:
        stem, extension = name, ""
    suffix = f".{extension}" if extension else ""
    budget = MAX_NAME_BYTES - len(suffix.encode("utf-8"))
    return stem.encode("utf-8")[:budget].decode("utf-8", errors="ignore") + suffix


def _django_would_drop(file_name):
    """Whether Django's parser would discard this non-empty file name (see sanitize_file_name)."""
    base = re.split(r"[/\\]", html.unescape(file_name))[-1]
    base = "".join(char for char in base if char.isprintable())
    return base in ("", ".", "..")


def _quoted(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def readable_header(header):
    """One part's header block (bytes), made readable by Django's parser, or unchanged."""
    if header.startswith(b"--"):  # the closing delimiter, not a part
        return header
    lines = []
    for line in header.split(b"\r\n"):
        text = line.decode("utf-8", errors="replace")
        if text.lower().startswith("content-disposition:"):
            try:
                _, params = parse_header_parameters(text)
            except ValueError:
                params = {}
            file_name = params.get("filename")
            if file_name and _django_would_drop(file_name):
                text = f"Content-Disposition: form-data; name={_quoted(params.get('name', ''))}; filename={_quoted(UNNAMED)}"
        lines.append(text.encode("utf-8"))
    return b"\r\n".join(lines)


class ReadableHeaders:
    """A file-like reader of a multipart body that passes it on with every part header
    rewritten by ``readable_header`` (the bytes between parts are never touched)."""

    def __init__(self, stream, boundary):
        self._stream = stream
        self._delimiter = b"\r\n--" + boundary
        # A CRLF in front makes the first boundary look like the others; it is not passed on.
        self._pending = b"\r\n"
        self._strip = 2
        self._out = bytearray()
        self._eof = False

    def read(self, size=-1):
        while not self._eof and (size is None or size < 0 or len(self._out) < size):
            self._fill()
        if size is None or size < 0:
            size = len(self._out)
        chunk = bytes(self._out[:size])
        del self._out[:size]
        return chunk

    def _emit(self, data):
        if self._strip:
            cut = min(self._strip, len(data))
            data, self._strip = data[cut:], self._strip - cut
        self._out += data

    def _fill(self):
        data = self._stream.read(_CHUNK)
        self._eof = not data
        self._pending += data
        delimiter = self._delimiter
        while True:
            at = self._pending.find(delimiter)
            if at < 0:
                keep = 0 if self._eof else len(delimiter) - 1
                cut = max(0, len(self._pending) - keep)
                self._emit(self._pending[:cut])
                self._pending = self._pending[cut:]
                return
            start = at + len(delimiter)
            end = self._pending.find(b"\r\n\r\n", start)
            if end < 0 and not self._eof and len(self._pending) - start <= MAX_HEADER_BYTES:
                self._emit(self._pending[:at])  # wait for the rest of this header
                self._pending = self._pending[at:]
                return
            if end < 0:
                self._emit(self._pending[:start])
                self._pending = self._pending[start:]
                continue
            self._emit(self._pending[:start] + readable_header(self._pending[start:end]))
            self._pending = self._pending[end:]


class ReadableNamesUploadHandler(FileUploadHandler):
    """Parses multipart bodies with Django's own parser and the other upload handlers, reading
    the body through ``ReadableHeaders`` so that no file is dropped for its name."""

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        others = [handler for handler in self.request.upload_handlers if handler is not self]
        parser = MultiPartParser(META, ReadableHeaders(input_data, boundary), others, encoding)
        return parser.parse()

    def receive_data_chunk(self, raw_data, start):
        return raw_data

    def file_complete(self, file_size):
        return None
