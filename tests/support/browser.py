"""Headless Chromium driven over the DevTools protocol: open a page, collect its errors, read it, screenshot it.

The protocol runs over a pipe (`--remote-debugging-pipe`: commands on fd 3, replies on fd 4,
NUL-terminated JSON), so no port, no websocket client and no chromedriver are needed. Errors are
what DevTools would show in red: console.error/assert, uncaught exceptions, and browser log
entries of level "error" (e.g. a script or font that failed to load: a CDN blocked offline).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--remote-debugging-pipe")


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class PageReport:
    errors: list[str] = field(default_factory=list)
    ready: bool = False
    screenshot: Path | None = None
    extracted: Any = None  # what `extract_js` evaluated to (JSON values)


class DevTools:
    """One Chromium process and its protocol pipe."""

    def __init__(self, executable: str, profile_dir: Path) -> None:
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()
        # `exec ... 3<&A 4>&B` gives Chromium the pipe ends on the descriptors it expects.
        script = f'exec "$0" "$@" 3<&{to_browser_read} 4>&{from_browser_write}'
        self.process = subprocess.Popen(
            ["bash", "-c", script, executable, *FLAGS, f"--user-data-dir={profile_dir}", "about:blank"],
            pass_fds=(to_browser_read, from_browser_write), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        os.close(to_browser_read)
        os.close(from_browser_write)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
             timeout: float = 30) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline - time.monotonic())
            if reply is None:
                raise TimeoutError(f"no DevTools reply to {method} within {timeout} s")
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def pump(self, seconds: float) -> None:
        """Collect events for a while."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            message = self._read(remaining)
            if message is not None:
                self.events.append(message)

    def _read(self, timeout: float) -> dict[str, Any] | None:
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._from_browser], [], [], max(timeout, 0))
            if not ready:
                return None
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe (did it crash?)")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def close(self) -> None:
        with contextlib.suppress(OSError, RuntimeError, TimeoutError):
            self.call("Browser.close", timeout=5)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, 9)
            self.process.wait(timeout=10)
        os.close(self._to_browser)
        os.close(self._from_browser)


def _errors(events: list[dict[str, Any]]) -> list[str]:
    found = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            found.append("console." + params["type"] + ": " + " ".join(
                str(arg.get("value", arg.get("description", ""))) for arg in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            found.append("uncaught: " + details.get("exception", {}).get("description", details.get("text", "")))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            found.append(f"{entry.get('source')}: {entry.get('text')} {entry.get('url', '')}".strip())
    return found


def open_page(url: str, screenshot: Path, ready_js: str = "true", timeout: float = 60,
              width: int = 1280, height: int = 1600, offline: bool = False,
              extract_js: str | None = None) -> PageReport:
    """Load `url`, wait until `ready_js` evaluates true (or timeout), evaluate `extract_js` (its JSON value goes to
    `extracted`), screenshot the whole page. `offline`: the page gets no network at all, as on a machine without
    one (file:// URLs still load); anything it tries to fetch is an error."""
    executable = chromium()
    if executable is None:
        raise FileNotFoundError("chromium is not installed")
    report = PageReport()
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        browser = DevTools(executable, Path(profile))
        try:
            target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Runtime", "Log", "Page", *(("Network",) if offline else ())):
                browser.call(f"{domain}.enable", session=session)
            if offline:
                browser.call("Network.emulateNetworkConditions", {"offline": True, "latency": 0,
                                                                  "downloadThroughput": -1, "uploadThroughput": -1},
                             session)
            browser.call("Emulation.setDeviceMetricsOverride",
                         {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session)
            browser.call("Page.navigate", {"url": url}, session, timeout=timeout)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                value = browser.call("Runtime.evaluate", {"expression": ready_js, "returnByValue": True},
                                     session)["result"].get("value")
                if value is True:
                    report.ready = True
                    break
                browser.pump(0.25)
            browser.pump(1.0)  # late errors (a failed font, a timer) still count
            if extract_js is not None:
                report.extracted = browser.call("Runtime.evaluate", {"expression": extract_js, "returnByValue": True},
                                                session)["result"].get("value")
            size = browser.call("Page.getLayoutMetrics", session=session)["cssContentSize"]
            shot = browser.call("Page.captureScreenshot", {
                "format": "png", "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 10000), "scale": 1},
            }, session, timeout=timeout)
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            screenshot.write_bytes(base64.b64decode(shot["data"]))
            report.screenshot = screenshot
        finally:
            browser.close()
        report.errors = _errors(browser.events)
    return report
