#!/usr/bin/env python3
"""The page in headless Chromium: loads web/dist with ?epochs=N, waits for training to end,
reads the accuracy and steps/s the page shows, saves a screenshot, and fails below the
accuracy floor. Speaks WebDriver to chromedriver over HTTP (standard library only).

    python3 web/page_test.py [--epochs 3] [--min-accuracy 0.90] [--screenshot web/screenshot.png]
                             [--checkpoint PATH]   (the page's checkpoint download, saved)
"""

import argparse
import base64
import functools
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
FLAGS = ["--headless=new", "--no-sandbox", "--enable-unsafe-webgpu",
         "--disable-dev-shm-usage", "--window-size=1040,980", "--hide-scrollbars"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)["value"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--min-accuracy", type=float, default=0.90)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--screenshot", default=os.path.join(HERE, "screenshot.png"))
    parser.add_argument("--checkpoint", help="save the page's checkpoint here")
    parser.add_argument("--report", help="write what the page showed here, as JSON")
    args = parser.parse_args()

    dist = os.path.join(HERE, "dist")
    if not os.path.exists(os.path.join(dist, "index.html")):
        sys.exit("web/dist is missing: run web/build first")
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=dist)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    driver_port = free_port()
    driver = subprocess.Popen([os.environ.get("CHROMEDRIVER", "chromedriver"),
                               f"--port={driver_port}"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{driver_port}"
    try:
        for _ in range(100):
            try:
                call(base, "GET", "/status")
                break
            except OSError:
                time.sleep(0.1)
        options = {"args": FLAGS}
        if os.environ.get("CHROME"):
            options["binary"] = os.environ["CHROME"]
        session = call(base, "POST", "/session", {"capabilities": {"alwaysMatch": {
            "browserName": "chrome", "goog:chromeOptions": options}}})["sessionId"]
        s = f"/session/{session}"
        url = f"http://127.0.0.1:{server.server_address[1]}/?epochs={args.epochs}"
        call(base, "POST", s + "/url", {"url": url})
        script = lambda js: call(base, "POST", s + "/execute/sync", {"script": js, "args": []})
        start = time.time()
        while script("return document.body.dataset.done || null") is None:
            if time.time() - start > args.timeout:
                sys.exit(f"the page did not finish in {args.timeout:.0f} s: "
                         + script("return document.getElementById('status').textContent"))
            time.sleep(2)
        shown = script("""return {
            adapter: document.getElementById('adapter').textContent,
            accuracy: Number(document.getElementById('accuracy').dataset.value),
            steps_per_second: Number(document.getElementById('speed').textContent),
            status: document.getElementById('status').textContent,
            error: document.getElementById('error').textContent}""")
        shown["seconds"] = round(time.time() - start, 1)
        with open(args.screenshot, "wb") as f:
            f.write(base64.b64decode(call(base, "GET", s + "/screenshot")))
        if args.checkpoint:
            encoded = call(base, "POST", s + "/execute/async", {"args": [], "script": """
                const done = arguments[arguments.length - 1];
                window.wgtrainSession.checkpoint().then((bytes) => {
                    let text = '';
                    for (let i = 0; i < bytes.length; i += 0x8000) {
                        text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
                    }
                    done(btoa(text));
                }, (error) => done('error: ' + error));"""})
            if encoded.startswith("error: "):
                sys.exit(f"the checkpoint download failed: {encoded}")
            with open(args.checkpoint, "wb") as f:
                f.write(base64.b64decode(encoded))
        call(base, "DELETE", s)
        print("page:", json.dumps(shown))
        if args.report:
            with open(args.report, "w") as f:
                json.dump(shown, f)
        if shown["error"]:
            sys.exit(f"the page failed: {shown['error']}")
        if not shown["accuracy"] >= args.min_accuracy:
            sys.exit(f"test accuracy {shown['accuracy']} is below {args.min_accuracy}")
    finally:
        driver.terminate()
        server.shutdown()


if __name__ == "__main__":
    main()
