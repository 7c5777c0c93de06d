#!/usr/bin/env python3
"""Drives Debian's headless Chromium through chromedriver (the W3C WebDriver protocol over
HTTP, with the standard library only) for scripts/web.sh: `selftest` opens the self-test
page, polls it until it reports, prints the verdict line `web: N passed, M failed` and each
failure, and exits non-zero on a failure, a timeout or no adapter; `screenshot` opens the
training page, starts training and saves a PNG once it has taken some steps."""

import argparse
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Driver:
    """One chromedriver process and one browser session."""

    def __init__(self, chromium, chromedriver):
        self.port = free_port()
        self.profile = tempfile.mkdtemp(prefix="rezero-chromium-")
        self.process = subprocess.Popen(
            [chromedriver, f"--port={self.port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"
        self.wait_ready()
        args = ["--headless=new", "--no-sandbox", "--enable-unsafe-webgpu",
                f"--user-data-dir={self.profile}", "--window-size=1200,1100"]
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
            "timeouts": {"script": 60000, "pageLoad": 60000},
        }}}
        self.session = self.call("POST", "/session", caps)["sessionId"]

    def wait_ready(self):
        for _ in range(100):
            try:
                if self.call("GET", "/status").get("ready"):
                    return
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.1)
        sys.exit("web: chromedriver did not start")

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return json.load(response)["value"]
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"WebDriver {method} {path}: {e.read().decode()[:2000]}") from e

    def at(self, path, method="POST", body=None):
        return self.call(method, f"/session/{self.session}{path}", {} if body is None else body)

    def script(self, source):
        return self.at("/execute/sync", body={"script": source, "args": []})

    def console(self):
        try:
            return [e["message"] for e in self.at("/se/log", body={"type": "browser"})]
        except RuntimeError:
            return []

    def close(self):
        try:
            self.call("DELETE", f"/session/{self.session}")
        finally:
            self.process.terminate()
            shutil.rmtree(self.profile, ignore_errors=True)


def selftest(driver, url, timeout):
    driver.at("/url", body={"url": url})
    deadline = time.monotonic() + timeout
    report = None
    while time.monotonic() < deadline:
        text = driver.script(
            "const r = window.rezeroReport; return r && r.done ? JSON.stringify(r) : null")
        if text:
            report = json.loads(text)
            break
        time.sleep(1)
    if report is None:
        progress = driver.script("return document.getElementById('progress')?.textContent")
        print(f"web: timed out after {timeout} s (last: {progress})")
        for line in driver.console()[-20:]:
            print("  console:", line)
        return 1
    adapter = report.get("adapter") or {}
    print(f"web: adapter {adapter.get('name', '?')} ({adapter.get('backend', '?')}), "
          f"features: {', '.join(adapter.get('features', [])) or 'none'}")
    for family, ms in sorted(report.get("families", {}).items()):
        print(f"web: {family:<16} {ms:9.1f} ms")
    if report.get("tokensPerSecond"):
        print(f"web: demo training {report['tokensPerSecond']:.0f} tokens/s; "
              f"self-test {report.get('selfTestSeconds', 0):.1f} s")
    for failure in report.get("failures", []):
        print("web: FAILED", failure)
    if report.get("failed"):
        for line in driver.console()[-20:]:
            print("  console:", line)
    print(report["verdict"])
    return 0 if report["passed"] > 0 and report["failed"] == 0 else 1


def screenshot(driver, url, path, steps, timeout):
    driver.at("/url", body={"url": url})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = driver.script("return window.rezeroDemo ? window.rezeroDemo.steps() : []")
        error = driver.script("const e = document.getElementById('error'); return e.hidden ? null : e.textContent")
        if error:
            print(f"web: the page says: {error}")
            return 1
        if done and min(done) >= steps:
            break
        time.sleep(1)
    else:
        print(f"web: fewer than {steps} steps after {timeout} s")
        return 1
    png = base64.b64decode(driver.call("GET", f"/session/{driver.session}/screenshot"))
    with open(path, "wb") as f:
        f.write(png)
    print(f"web: screenshot after {min(done)} steps in {path}")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=["selftest", "screenshot"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--timeout", type=int, default=300)
    parser.add_argument("--out", help="screenshot: the PNG to write")
    parser.add_argument("--steps", type=int, default=100, help="screenshot: after this many steps")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--chromedriver", default=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    args = parser.parse_args()
    for tool in (args.chromium, args.chromedriver):
        if not os.access(tool, os.X_OK):
            sys.exit(f"web: {tool} is missing (Debian: apt-get install chromium chromium-driver)")
    driver = Driver(args.chromium, args.chromedriver)
    try:
        if args.mode == "selftest":
            return selftest(driver, args.url, args.timeout)
        return screenshot(driver, args.url, args.out, args.steps, args.timeout)
    finally:
        driver.close()


if __name__ == "__main__":
    sys.exit(main())
