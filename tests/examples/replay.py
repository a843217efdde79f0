"""Replays an example's README session against the example, so README and behaviour cannot drift.

    replay.py BINARY EXAMPLE_DIR [--http FILE.http]... [--python PY]

Starts BINARY as the README's run command says (its flags, with --host 127.0.0.1 --port 0), in a
scratch directory holding the example's config.toml and data/, then runs each `$ command` of the
README's ```console blocks from the repository's root (localhost:8000 becomes the real port) and
compares what it prints with the output shown under it:

- `curl -i` output: the status line exactly, each header shown (the others may differ), the body;
  without -i the body only, and the status must be 2xx (curl is given -w to tell it);
- ids (32 hex digits), times (ISO 8601) and what `<!-- replay-mask: REGEX -->` lines of the
  README name are masked on both sides; `...` in the README matches anything on its line;
  an id shown in an output is replaced, in the commands after it, by the one the run gave;
- a command without a body or a method of its own (a read) is asked again until it matches or
  15 s pass (a task's state moves on); a write must match at once.

Each --http FILE (a REST-client file: requests after `###` lines, a `# => STATUS` comment
above each) is then sent as it is with http.client, and each status checked. At the end the
example is stopped with SIGTERM: it must exit 0 and its stderr hold no sanitizer report.
Exit 0 when everything matched, 1 with a diff of the first mismatch otherwise.
"""

import argparse
import difflib
import http.client
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
LISTEN = re.compile(r"listening on http://[0-9.]+:(\d+)")
ID = re.compile(r"\b[0-9a-f]{32}\b")
TIME = re.compile(r"\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?")
RETRY_S = 15.0


def fail(msg):
    print("replay: FAIL: " + msg, flush=True)
    sys.exit(1)


def parse_readme(path):
    """(run command's arguments, [(command, expected output lines)], [mask regexes])."""
    text = open(path, encoding="utf-8").read()
    masks = [re.compile(m) for m in re.findall(r"<!--\s*replay-mask:\s*(.*?)\s*-->", text)]
    run_args, steps = None, []
    for lang, body in re.findall(r"^```(\w*)\n(.*?)^```", text, re.S | re.M):
        lines = body.split("\n")
        if lang == "sh" and run_args is None:
            for ln in lines:
                m = re.search(r"\./(\w+-service)\b(.*)$", ln)
                if m:
                    run_args = m.group(2).split()
        if lang != "console":
            continue
        i = 0
        while i < len(lines):
            ln = lines[i]
            if not ln.startswith("$ "):
                i += 1
                continue
            cmd = ln[2:]
            while cmd.endswith("\\") and i + 1 < len(lines):
                i += 1
                cmd = cmd[:-1] + " " + lines[i].strip()
            i += 1
            out = []
            while i < len(lines) and not lines[i].startswith("$ "):
                out.append(lines[i])
                i += 1
            steps.append((cmd, out))
    if run_args is None:
        fail("%s has no ```sh block with the ./NAME-service run command" % path)
    if not steps:
        fail("%s has no ```console session" % path)
    return run_args, steps, masks


class Example:
    def __init__(self, binary, example_dir, args):
        self.dir = tempfile.mkdtemp(prefix="replay-")
        for name in ("config.toml", "data"):
            src = os.path.join(example_dir, name)
            if os.path.isdir(src):
                shutil.copytree(src, os.path.join(self.dir, name))
            elif os.path.isfile(src):
                shutil.copy(src, self.dir)
        flags, skip = [], False
        for a in args:  # the README's flags, but the address
            if skip:
                skip = False
                continue
            if a in ("--port", "--host"):
                skip = True
                continue
            flags.append(a)
        self.err = open(os.path.join(self.dir, "stderr.log"), "w+b")
        self.proc = subprocess.Popen([os.path.abspath(binary)] + flags +
                                     ["--host", "127.0.0.1", "--port", "0"],
                                     cwd=self.dir, stdout=subprocess.PIPE, stderr=self.err)
        self.port = None
        found = threading.Event()

        def drain():
            for raw in self.proc.stdout:
                m = LISTEN.search(raw.decode("utf-8", "replace"))
                if m and not found.is_set():
                    self.port = int(m.group(1))
                    found.set()
            found.set()

        threading.Thread(target=drain, daemon=True).start()
        if not found.wait(60) or self.port is None:
            self.stop(kill=True)
            fail("the example did not say it was listening:\n" + self.stderr())

    def stderr(self):
        self.err.flush()
        self.err.seek(0)
        return self.err.read().decode("utf-8", "replace")

    def stop(self, kill=False):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            rc = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            fail("the example did not stop within 30 s of SIGTERM")
        return rc


def masked(text, masks):
    text = TIME.sub("<time>", text)
    text = ID.sub("<id>", text)
    for m in masks:
        text = m.sub("<masked>", text)
    return text


def line_match(want, got):
    if "..." not in want:
        return want == got
    pat = ".*".join(re.escape(p) for p in want.split("..."))
    return re.fullmatch(pat, got) is not None


def lines_match(want, got):
    return len(want) == len(got) and all(line_match(w, g) for w, g in zip(want, got))


def tidy(lines):
    out = [ln.rstrip() for ln in lines]
    while out and not out[-1]:
        out.pop()
    while out and not out[0]:
        out.pop(0)
    return out


def compare(want_lines, got_text, status, masks, with_head):
    """None when got matches want, else a text saying how not."""
    want = [masked(ln, masks) for ln in want_lines]
    got = masked(got_text.replace("\r\n", "\n"), masks).split("\n")
    if not with_head:
        if not 200 <= status < 300:
            return "status %d, where the README shows none (so a 2xx)" % status
        want, got = tidy(want), tidy(got)
        if lines_match(want, got):
            return None
        return "\n".join(difflib.unified_diff(want, got, "README", "example", lineterm=""))
    # the head: the status line, then the headers the README shows; then the body
    w = tidy(want)
    if "" in w:
        wh, wb = w[:w.index("")], w[w.index("") + 1:]
    else:
        wh, wb = w, []
    if "" in got:
        gh, gb = got[:got.index("")], got[got.index("") + 1:]
    else:
        gh, gb = got, []
    gh = [ln.rstrip() for ln in gh]
    if not wh or not gh or not line_match(wh[0], gh[0]):
        return "status line: README %r, example %r" % (wh[0] if wh else "", gh[0] if gh else "")
    heads = {}
    for ln in gh[1:]:
        name, _, value = ln.partition(":")
        heads.setdefault(name.strip().lower(), []).append(value.strip())
    for ln in wh[1:]:
        name, _, value = ln.partition(":")
        values = heads.get(name.strip().lower(), [])
        if not any(line_match(value.strip(), v) for v in values):
            return "header %r: README %r, example %r" % (name, value.strip(), values)
    wb, gb = tidy(wb), tidy(gb)
    if lines_match(wb, gb):
        return None
    return "\n".join(difflib.unified_diff(wb, gb, "README body", "example body", lineterm=""))


def is_read(cmd):
    return not re.search(r"\s(-X|--request|-d|--data\S*|-F|--form|-T|--upload-file)\b", cmd) \
        and "curl" in cmd


def run_step(cmd, port, python):
    """(stdout text, status or 0, with_head)."""
    c = cmd.replace("localhost:8000", "127.0.0.1:%d" % port)
    c = re.sub(r"--port 8000\b", "--port %d" % port, c)
    if python:
        c = re.sub(r"^/usr/bin/python3\b", python, c)
    with_head = False
    if c.startswith("curl "):
        with_head = bool(re.search(r"\s-\w*i\w*\b|\s--include\b", c))
        c = "curl -w '%{stderr}<<%{http_code}>>' " + c[5:]
    p = subprocess.run(["bash", "-c", c], cwd=ROOT, capture_output=True, timeout=120)
    err = p.stderr.decode("utf-8", "replace")
    m = re.search(r"<<(\d{3})>>", err)
    if c.startswith("curl ") and not m:
        fail("curl could not ask: %s\n%s" % (cmd, err))
    if p.returncode != 0:
        fail("the command failed (%d): %s\n%s" % (p.returncode, cmd, err))
    return p.stdout.decode("utf-8", "replace"), int(m.group(1)) if m else 200, with_head


def replay_readme(steps, masks, port, python):
    ids = {}
    for cmd, want in steps:
        for old, new in ids.items():
            cmd = cmd.replace(old, new)
        deadline = time.monotonic() + (RETRY_S if is_read(cmd) else 0)
        while True:
            got, status, with_head = run_step(cmd, port, python)
            why = compare(want, got, status, masks, with_head)
            if why is None or time.monotonic() >= deadline:
                break
            time.sleep(0.2)
        if why is not None:
            fail("$ %s\n%s\n--- the example printed:\n%s" % (cmd, why, got))
        print("ok  $ %s" % cmd, flush=True)
        # the ids the README shows stand, from here on, for the ones this run made
        for w, g in zip(ID.findall("\n".join(want)), ID.findall(got)):
            if w != g:
                ids[w] = g


def parse_http(path):
    def fresh():
        return {"status": None, "line": None, "headers": [], "body": [], "in_body": False}

    reqs, cur = [], fresh()
    for ln in open(path, encoding="utf-8").read().split("\n") + ["###"]:
        if ln.startswith("###"):
            if cur and cur["line"]:
                reqs.append(cur)
            cur = fresh()
            continue
        if cur["line"] is None:
            m = re.match(r"#\s*=>\s*(\d{3})", ln)
            if m:
                cur["status"] = int(m.group(1))
            elif ln.strip() and not ln.startswith("#") and not ln.startswith("//"):
                cur["line"] = ln.strip()
            continue
        if not cur["in_body"]:
            if not ln.strip():
                cur["in_body"] = True
            else:
                name, _, value = ln.partition(":")
                cur["headers"].append((name.strip(), value.strip()))
            continue
        cur["body"].append(ln)
    return reqs


def replay_http(path, port):
    for r in parse_http(path):
        if r["status"] is None:
            fail("%s: %s has no '# => STATUS' line above it" % (path, r["line"]))
        method, url = r["line"].split()[:2]
        u = urllib.parse.urlsplit(url)
        body = "\n".join(r["body"]).strip().encode()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        target = u.path + ("?" + u.query if u.query else "")
        conn.request(method, target, body=body or None, headers=dict(r["headers"]))
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        if resp.status != r["status"]:
            fail("%s: %s answered %d, the file says %d: %s" % (path, r["line"], resp.status,
                                                                r["status"], data[:300]))
        print("ok  %s -> %d" % (r["line"], resp.status), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("example_dir")
    ap.add_argument("--http", action="append", default=[])
    ap.add_argument("--python", help="the interpreter for /usr/bin/python3 lines")
    a = ap.parse_args()
    readme = os.path.join(a.example_dir, "README.md")
    run_args, steps, masks = parse_readme(readme)
    ex = Example(a.binary, a.example_dir, run_args)
    try:
        replay_readme(steps, masks, ex.port, a.python)
        for h in a.http:
            replay_http(h, ex.port)
    except BaseException:  # a mismatch, or a fault of this script: the example goes too
        ex.stop(kill=True)
        print("--- its stderr:\n" + ex.stderr()[-4000:])
        raise
    rc = ex.stop()
    err = ex.stderr()
    if rc != 0:
        fail("the example exited %d after SIGTERM:\n%s" % (rc, err[-4000:]))
    if re.search(r"ERROR: (Address|Leak|Thread)Sanitizer|runtime error:|WARNING: ThreadSanitizer",
                 err):
        fail("a sanitizer report:\n" + err[-8000:])
    shutil.rmtree(ex.dir, ignore_errors=True)
    print("replay: %d commands matched" % len(steps))


if __name__ == "__main__":
    main()
