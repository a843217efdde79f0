"""docs.py — /docs and /redoc: the Swagger UI and ReDoc files the service compiles in, found and
gzipped at build time."""
import gzip
import hashlib
import json
import os

from .lexer import GenError


DOC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


# What the pages would fetch from the internet, replaced in the served copy (the repository's
# stays as published): ReDoc's sidebar logo comes from its CDN, whatever its options say. Its
# "API docs by Redocly" link stays; the image becomes an empty one.
DOC_OFFLINE = {"redoc.standalone.js": [(b"https://cdn.redoc.ly/redoc/logo-mini.svg",
                                        b"data:image/svg+xml,%3Csvg xmlns=%27http://www.w3.org/2000/svg%27/%3E")]}


def docs_files(docs_dir, outdir):
    """The files /docs (Swagger UI) and /redoc (ReDoc) serve, from docs_dir: this repository's
    third_party/docs or a node_modules folder (swagger-ui-dist/ and redoc/, with its bundles/):
    [(url, content type, source path, gzip path or None, length, gzip length, etag, package)].
    The gzip copies are written into outdir/docs (mtime 0: the same bytes every build)."""
    def where(*cands):
        for c in cands:
            if os.path.isfile(c):
                return os.path.abspath(c)
        return None
    sw = os.path.join(docs_dir, "swagger-ui-dist")
    rd = os.path.join(docs_dir, "redoc")
    wanted = [("/docs", sw, "swagger-ui-bundle.js", ""), ("/docs", sw, "swagger-ui.css", ""),
              ("/redoc", rd, "redoc.standalone.js", "bundles")]
    optional = [("/docs", sw, "swagger-ui-bundle.js.LICENSE.txt", ""), ("/docs", sw, "LICENSE", ""),
                ("/docs", sw, "NOTICE", ""), ("/redoc", rd, "redoc.standalone.js.LICENSE.txt", "bundles"),
                ("/redoc", rd, "LICENSE", "")]
    files = []
    os.makedirs(os.path.join(outdir, "docs"), exist_ok=True)
    for i, (base, folder, name, alt) in enumerate(wanted + optional):
        src = where(os.path.join(folder, name), os.path.join(folder, alt, name))
        if src is None:
            if i < len(wanted):
                raise GenError((docs_dir, 1, 1), f"no {name} in {folder} (or {folder}/{alt})",
                               "give --docs this repository's third_party/docs, or a node_modules "
                               "folder with swagger-ui-dist and redoc installed")
            continue
        with open(src, "rb") as f:
            data = f.read()
        patched = False
        for old, new in DOC_OFFLINE.get(name, []):
            patched |= old in data
            data = data.replace(old, new)
        if patched:  # served from the patched copy
            src = os.path.join(os.path.abspath(outdir), "docs", name)
            try:
                with open(src, "rb") as f:
                    same = f.read() == data
            except OSError:
                same = False
            if not same:
                with open(src, "wb") as f:
                    f.write(data)
        try:
            with open(os.path.join(folder, "package.json"), encoding="utf-8") as f:
                pkg = json.load(f)
            package = f"{pkg['name']} {pkg['version']}"
        except (OSError, ValueError, KeyError):
            package = os.path.basename(folder)
        ext = os.path.splitext(name)[1]
        ctype = DOC_TYPES.get(ext, "text/plain; charset=utf-8")
        gz_path, gz_len = None, 0
        if ext in DOC_TYPES:
            packed = gzip.compress(data, compresslevel=9, mtime=0)
            gz_path = os.path.join(os.path.abspath(outdir), "docs", name + ".gz")
            try:
                with open(gz_path, "rb") as f:
                    same = f.read() == packed
            except OSError:
                same = False
            if not same:  # untouched when unchanged: nothing rebuilds needlessly
                with open(gz_path, "wb") as f:
                    f.write(packed)
            gz_len = len(packed)
        etag = '"' + hashlib.sha256(data).hexdigest()[:24] + '"'
        files.append((f"{base}/{name}", ctype, src, gz_path, len(data), gz_len, etag, package))
    return files
