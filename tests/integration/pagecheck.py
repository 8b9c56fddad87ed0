"""What a browser saw on a page: the requests it made (from Chromium's DevTools network log), how
wide the page lays out at a given viewport, and screenshots at each width in ``test-artifacts/``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tests.integration.browser import ARTIFACTS

WIDTHS = {"desktop": 1280, "phone": 375}


@dataclass
class Request:
    url: str
    status: int | None  # None: no response (failed or blocked)
    error: str = ""

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc


def enable_network_log(driver: Any) -> None:
    """Log every request: with the cache off, a page's sub-resources are fetched (and logged) on each visit."""
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})


def requests_seen(driver: Any) -> list[Request]:
    """The requests since the last call (the performance log is read once), with their answers."""
    found: dict[str, Request] = {}
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        method, params = message.get("method"), message.get("params", {})
        if method == "Network.requestWillBeSent":
            found[params["requestId"]] = Request(params["request"]["url"], None)
        elif method == "Network.responseReceived" and params["requestId"] in found:
            found[params["requestId"]].status = params["response"]["status"]
        elif method == "Network.loadingFailed" and params["requestId"] in found:
            found[params["requestId"]].error = params.get("errorText", "failed")
    return [r for r in found.values() if r.url.startswith(("http:", "https:"))]



def foreign_requests(driver: Any, hub_url: str) -> list[str]:
    """The requests since the last look (``requests_seen``) that went to a host other than the hub's."""
    seen = requests_seen(driver)
    assert seen, "the browser's network log is empty: nothing to judge the page by"
    hub_host = urlsplit(hub_url).netloc
    return [r.url for r in seen if r.host != hub_host]

def set_width(driver: Any, width: int) -> None:
    """Emulate a viewport ``width`` CSS pixels wide (a phone's for narrow ones: mobile, meta viewport)."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 600})


def overflow(driver: Any, selector: str = "") -> dict[str, Any]:
    """The document's scroll width against the viewport, ``selector``'s box, and the right edge of the
    farthest thing inside it (``contentRight``: more than ``right`` when its content spills out), in CSS px."""
    result: dict[str, Any] = driver.execute_script(
        """const el = arguments[0] ? document.querySelector(arguments[0]) : null;
        const box = el ? el.getBoundingClientRect() : null;
        let contentRight = box ? box.right : 0, widest = "";
        for (const child of el ? el.querySelectorAll("*") : []) {
          const r = child.getBoundingClientRect();
          if (r.width && r.right > contentRight + 0.5) { contentRight = r.right; widest = child.id || child.tagName; }
        }
        return {scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
                left: box ? box.left : 0, right: box ? box.right : 0, contentRight: contentRight, widest: widest};""",
        selector)
    return result


def screenshot(driver: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))
