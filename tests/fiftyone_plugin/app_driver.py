"""Drive the FiftyOne App in headless Chromium: start the App server, open a dataset, run an
operator from the operator browser, take screenshots.

Used by ``tests/fiftyone_plugin/test_app.py`` and by scripts that refresh the screenshots in
``docs/images/`` (see :func:`main`)::

    python tests/fiftyone_plugin/app_driver.py --dataset reef --out docs/images \\
        --config configs/....py --checkpoint work_dirs/x/best.pth

Needs Debian's ``chromium`` and ``chromium-driver`` (``/usr/bin/chromedriver``) and the
``selenium`` package; :func:`browser_missing` says what is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
CHROMEDRIVER = "/usr/bin/chromedriver"
WINDOW = (1400, 900)


def browser_missing() -> str | None:
    """Why the App cannot be driven here, or None when everything is installed."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    if not any(Path(p).exists() for p in CHROMIUM) or not shutil.which("chromedriver"):
        return "no chromium + chromedriver (apt-get install -y chromium chromium-driver)"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def app_server(env: Mapping[str, str] | None = None, log: Path | None = None) -> Iterator[str]:
    """Run ``python -m fiftyone.server.main`` on a free loopback port; yields its URL.

    ``env`` is the process environment (FiftyOne's database and plugins settings).
    """
    port = free_port()
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fiftyone.server.main",
            "--port",
            str(port),
            "--address",
            "127.0.0.1",
        ],
        env=dict(env or os.environ),
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the App server exited with code {process.returncode}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the App server did not answer on {url} within 120 s")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if log:
            out.close()


def list_operators(url: str, dataset: str) -> list[dict]:
    """The operators the App server offers for ``dataset`` (its ``POST /operators`` API)."""
    request = urllib.request.Request(
        f"{url}/operators",
        data=json.dumps({"dataset_name": dataset}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())["operators"]


def chrome(window: tuple[int, int] = WINDOW):
    """A headless Chromium driven through Debian's chromedriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    binary = next((p for p in CHROMIUM if Path(p).exists()), None)
    if binary:
        options.binary_location = binary
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={window[0]},{window[1]}",
    ):
        options.add_argument(argument)
    service = Service(shutil.which("chromedriver") or CHROMEDRIVER)
    return webdriver.Chrome(options=options, service=service)


class App:
    """One browser tab on the App."""

    def __init__(self, driver, url: str) -> None:
        self.driver = driver
        self.url = url

    def _wait(self, timeout: float):
        """A wait that polls every 0.5 s and retries when React replaced an element."""
        from selenium.common.exceptions import (
            NoSuchElementException,
            StaleElementReferenceException,
        )
        from selenium.webdriver.support.ui import WebDriverWait

        ignored = (StaleElementReferenceException, NoSuchElementException)
        return WebDriverWait(self.driver, timeout, poll_frequency=0.5, ignored_exceptions=ignored)

    def _retry(self, action, attempts: int = 4):
        """Run ``action()`` again when the element it used was re-rendered meanwhile."""
        from selenium.common.exceptions import StaleElementReferenceException

        for attempt in range(attempts):
            try:
                return action()
            except StaleElementReferenceException:
                if attempt == attempts - 1:
                    raise
                time.sleep(1.0)

    def wait_for_text(self, text: str, timeout: float = 60) -> None:

        self._wait(timeout).until(lambda d: text in d.find_element("tag name", "body").text)

    def wait_for(self, xpath: str, timeout: float = 30):
        """The first displayed element matching ``xpath``."""

        def shown(driver):
            for element in driver.find_elements("xpath", xpath):
                if element.is_displayed():
                    return element
            return False

        return self._wait(timeout).until(shown)

    def body_text(self) -> str:
        return self.driver.find_element("tag name", "body").text

    def click_text(self, text: str, tag: str = "*", timeout: float = 30) -> None:
        """Click the innermost element whose visible text is ``text``."""

        xpath = f"//{tag}[normalize-space(text())={json.dumps(text)}]"

        def clickable(driver):
            for element in driver.find_elements("xpath", xpath):
                if element.is_displayed():
                    return element
            return False

        self._retry(
            lambda: self.driver.execute_script(
                "arguments[0].click();", self._wait(timeout).until(clickable)
            )
        )

    def open_dataset(self, name: str) -> None:
        self.driver.get(f"{self.url}/datasets/{name}")
        self.wait_for_text("samples")  # "N samples" above the grid (the name is an input)
        self.dismiss_popover()

    def dismiss_popover(self) -> None:
        """Close the "Explore Enterprise" popover if it is shown (it hides the keyboard focus)."""
        try:
            self.click_text("Dismiss", timeout=5)
        except Exception:  # not shown in this App version or already closed
            return

    def open_operator_browser(self) -> None:
        """Press the backtick key, the App's shortcut for its operator browser."""
        from selenium.webdriver.common.action_chains import ActionChains

        ActionChains(self.driver).move_by_offset(2, 2).click().perform()  # focus the page
        self.driver.find_element("tag name", "body").send_keys("`")
        self.wait_for("//input[contains(@placeholder, 'Search operations')]", timeout=20)

    def search_operators(self, text: str) -> None:
        """Type into the operator browser's search box and let the list filter."""
        from selenium.webdriver.common.action_chains import ActionChains

        ActionChains(self.driver).send_keys(text).perform()
        time.sleep(1.5)

    def fill(self, values: Mapping[str, str]) -> None:
        """Set the form's text inputs, found by their labels, then wait for the form to settle.

        Each value is set in one change (React's input event), not typed key by key: the App
        resolves the form again after every change.
        """
        for label, value in values.items():

            def set_value(label=label, value=value) -> None:
                self.driver.execute_script(
                    "const set = Object.getOwnPropertyDescriptor("
                    "window.HTMLInputElement.prototype, 'value').set;"
                    "set.call(arguments[0], arguments[1]);"
                    "arguments[0].dispatchEvent(new Event('input', {bubbles: true}));",
                    self._input_for(label),
                    value,
                )

            self._retry(set_value)
            self.settle()

    def settle(self, timeout: float = 120, enabled: bool = False) -> None:
        """Wait until the form shows no spinner (and, with ``enabled``, Execute is enabled)."""

        def settled(driver) -> bool:
            spinning = [e for e in driver.find_elements("css selector", "[role=progressbar]")
                        if e.is_displayed()]  # fmt: skip
            if spinning:
                return False
            if not enabled:
                return True
            buttons = driver.find_elements("xpath", "//button[normalize-space(.)='Execute']")
            return any(b.is_enabled() for b in buttons)

        time.sleep(1.0)
        self._wait(timeout).until(settled)

    def _input_for(self, label: str):

        xpath = (
            f"//*[normalize-space(text())={json.dumps(label)}]"
            "/ancestor::*[.//input][1]//input[not(@type='hidden')]"
        )

        def found(driver):
            for element in driver.find_elements("xpath", xpath):
                if element.is_displayed():
                    return element
            return False

        return self._wait(20).until(found)

    def execute(self) -> None:
        self.settle(enabled=True)
        self._retry(lambda: self.wait_for("//button[normalize-space(.)='Execute']").click())

    def screenshot(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(path))
        return path


@contextmanager
def app_in_chrome(url: str, shots: Path) -> Iterator[App]:
    """The App at ``url`` in a fresh headless Chromium; a failure inside the block leaves
    ``shots/failure.png`` (what the page showed) and the browser quits either way."""
    driver = chrome()
    app = App(driver, url)
    try:
        yield app
    except Exception:
        app.screenshot(shots / "failure.png")
        raise
    finally:
        driver.quit()


def evaluate_in_app(
    url: str,
    dataset: str,
    config: str,
    checkpoint: str,
    shots: Path,
    eval_key: str = "coralseg_eval",
    timeout: float = 240,
) -> tuple[str, str]:
    """Open ``dataset``, run the evaluate operator from the operator browser; return the
    operator browser's text (filtered by "coralseg") and the page text once the sidebar shows
    the evaluation's IoU fields. Screenshots go to ``shots``:
    ``app-dataset.png``, ``app-operator-browser.png``, ``app-evaluate-form.png``,
    ``app-evaluate-result.png``, ``app-iou-fields.png``."""
    with app_in_chrome(url, shots) as app:
        app.open_dataset(dataset)
        time.sleep(2)
        app.screenshot(shots / "app-dataset.png")
        app.open_operator_browser()
        app.search_operators("coralseg")
        app.screenshot(shots / "app-operator-browser.png")
        listed = app.body_text()
        app.click_text("coralseg: evaluate a model", timeout=20)
        app.wait_for_text("Evaluation key")
        if "Checkpoint" in app.body_text():  # no model recorded on the dataset: give the files
            app.fill({"Config": config, "Checkpoint": checkpoint})
        app.screenshot(shots / "app-evaluate-form.png")
        app.execute()
        app.wait_for_text("Per class", timeout=timeout)
        app.screenshot(shots / "app-evaluate-result.png")
        app.driver.find_element("tag name", "body").send_keys("\ue00c")  # Escape
        app.open_dataset(dataset)
        app.wait_for_text(f"{eval_key}_miou", timeout=60)
        miou = f"//*[normalize-space(text())='{eval_key}_miou']"
        app._retry(
            lambda: app.driver.execute_script(
                "arguments[0].scrollIntoView({block: 'start'});", app.wait_for(miou)
            )
        )
        time.sleep(1)
        app.screenshot(shots / "app-iou-fields.png")
        return listed, app.body_text()


def open_operator(app: App, dataset: str, label: str) -> None:
    """Open ``dataset`` afresh and the form of the operator labelled ``label``."""
    app.open_dataset(dataset)
    app.open_operator_browser()
    app.search_operators("coralseg")
    app.click_text(label, timeout=20)
    app.settle()


def forms_in_app(url: str, dataset: str, shots: Path, timeout: float = 240) -> dict[str, str]:
    """What a user sees in the forms of ``dataset`` (which has a model recorded on it, an
    evaluation ``coralseg_eval`` and colonies on some samples): the cover form as it opens
    and with "Group by: site"; the evaluate form (its Model choice and its key) and its
    result. Returns the page texts (and ``eval_key``, the key the form proposes);
    screenshots ``app-cover-form.png``, ``app-evaluate-model-form.png``,
    ``app-evaluate-accuracy.png`` go to ``shots``."""
    seen: dict[str, str] = {}
    with app_in_chrome(url, shots) as app:
        open_operator(app, dataset, "coralseg: report percent cover")
        app.wait_for_text("target samples have no 'coralseg_refined' mask", timeout=60)
        seen["cover_form"] = app.body_text()
        app.fill({"Group by": "site"})
        app.wait_for_text("no sample field 'site'", timeout=60)
        seen["cover_group_by"] = app.body_text()
        app.screenshot(shots / "app-cover-form.png")
        open_operator(app, dataset, "coralseg: evaluate a model")
        app.wait_for_text("Evaluation key")
        seen["eval_key"] = app._input_for("Evaluation key").get_attribute("value")
        seen["evaluate_form"] = app.body_text()
        app.screenshot(shots / "app-evaluate-model-form.png")
        app.execute()
        app.wait_for_text("Per class", timeout=timeout)
        seen["evaluate_result"] = app.body_text()
        app.screenshot(shots / "app-evaluate-accuracy.png")
        return seen


def evaluation_in_panel(url: str, dataset: str, eval_key: str, shots: Path) -> dict[str, str]:
    """Open ``dataset``, add FiftyOne's Model Evaluation panel from the grid's "+" menu and
    open the evaluation ``eval_key`` from the panel's list. Returns the panel's texts:
    ``overview`` (the list of evaluations), ``evaluation`` (the evaluation's page) and
    ``map_row`` (the Summary table's mAP row).
    Screenshots ``app-evaluation-panel.png`` and ``app-evaluation-summary.png`` go to
    ``shots``."""
    seen: dict[str, str] = {}
    with app_in_chrome(url, shots) as app:
        app.open_dataset(dataset)
        app._retry(lambda: app.wait_for("//*[@data-cy='new-panel-btn']").click())
        option = "//*[@data-cy='new-panel-option-model_evaluation_panel_builtin']"
        app._retry(lambda: app.wait_for(option).click())
        # The sidebar lists the evaluation's fields (``<key>_tp`` ...), so the key as a
        # substring of the page is not the panel: wait for the panel's count line and for an
        # element whose whole text is the key (the panel's list entry).
        app.wait_for_text("Model Evaluations", timeout=60)
        app.wait_for(f"//*[normalize-space(text())={json.dumps(eval_key)}]", timeout=60)
        seen["overview"] = app.body_text()
        app.screenshot(shots / "app-evaluation-panel.png")
        app.click_text(eval_key, timeout=20)
        row = "//tr[./*[normalize-space(.)='mAP']]"  # the Summary table's mAP row
        seen["map_row"] = app._retry(lambda: app.wait_for(row, timeout=120).text)
        seen["evaluation"] = app.body_text()
        app.screenshot(shots / "app-evaluation-summary.png")
        return seen


def main(argv: list[str] | None = None) -> int:
    import tempfile

    parser = argparse.ArgumentParser(description="screenshots of the coralseg operators in the App")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--out", default="docs/images")
    parser.add_argument(
        "--forms",
        action="store_true",
        help="also the cover and evaluate forms as a new user meets them (the dataset needs "
        "a model recorded on it and colonies on only some samples, as the demo leaves it)",
    )
    parser.add_argument(
        "--plugins-dir",
        help="FiftyOne plugins folder holding the coralseg plugin (default: a temporary one "
        "linking this repository)",
    )
    args = parser.parse_args(argv)
    reason = browser_missing()
    if reason:
        print(reason, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        plugins = args.plugins_dir
        if not plugins:
            plugins = scratch
            Path(scratch, "coralseg").symlink_to(Path(__file__).resolve().parents[2])
        env = {**os.environ, "FIFTYONE_PLUGINS_DIR": str(plugins)}
        with app_server(env=env) as url:
            evaluate_in_app(url, args.dataset, args.config, args.checkpoint, Path(args.out))
            if args.forms:
                forms_in_app(url, args.dataset, Path(args.out))
    print(f"screenshots in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
