"""The chat page at / in headless Chromium: pick a condition, send a message, see the reply."""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
from pathlib import Path

import pytest

from tests.serve.conftest import running_server, transformers_engine

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture
def open_browser():
    """A factory of headless Chromium sessions (skips when Chromium or its driver is missing)."""
    if not CHROMIUM.exists():
        pytest.skip(
            "headless Chromium test: /usr/bin/chromium is missing "
            "(apt-get install chromium chromium-driver)"
        )
    driver_path = shutil.which("chromedriver")
    if driver_path is None:
        pytest.skip(
            "headless Chromium test: chromedriver is missing (apt-get install chromium-driver)"
        )
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    @contextlib.contextmanager
    def session():
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-dev-shm-usage",
        ]:
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(driver_path), options=options)
        driver.set_page_load_timeout(60)
        try:
            yield driver
        finally:
            driver.quit()

    return session


@pytest.mark.slow
def test_the_chat_page_sends_a_message_with_the_chosen_condition_and_shows_the_reply(
    open_browser, served_model
):
    from selenium.common.exceptions import WebDriverException
    from urllib3.exceptions import ReadTimeoutError

    records = []
    request_log = logging.getLogger("ocx.serve.test-web-page")
    request_log.propagate = False
    request_log.setLevel(logging.INFO)
    request_log.addHandler(_Collect(records))
    # Chromium itself has hung once in a full CI run (a webdriver command timed out while the
    # machine was slow); a second browser session is tried then. Wrong page behaviour is never
    # retried: the assertions below run once, on whichever session finished.
    for attempt in (1, 2):
        records.clear()
        try:
            with (
                open_browser() as browser,
                running_server(
                    transformers_engine(served_model), served_model, request_log=request_log
                ) as url,
            ):
                browser.get(url + "/")
                user, reply = _chat(browser)
            break
        except (WebDriverException, ReadTimeoutError):
            if attempt == 2:
                raise
    assert user["text"] == "What is 2 + 2?"
    assert "assistant" in reply["class"].split(), reply["text"]  # not an error bubble
    assert reply["text"].strip() and reply["text"] != "…"
    (record,) = records
    assert record["request"]["condition"] == "Math Correct" and record["request"]["stream"] is True
    assert record["request"]["messages"] == [{"role": "user", "content": "What is 2 + 2?"}]
    assert record["outputs"] == [reply["text"]]


class _Collect(logging.Handler):
    def __init__(self, records: list):
        super().__init__()
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(json.loads(record.getMessage()))


def _chat(browser) -> list[dict]:
    """Choose "Math Correct", ask a question, wait for the reply to finish streaming.

    Returns each message bubble's text and class.
    """
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    wait = WebDriverWait(browser, 30)
    wait.until(lambda d: "openchat_3.5" in d.find_element(By.ID, "model").text)
    Select(browser.find_element(By.ID, "condition")).select_by_visible_text("Math Correct")
    max_tokens = browser.find_element(By.ID, "max-tokens")
    max_tokens.clear()
    max_tokens.send_keys("6")
    browser.find_element(By.ID, "input").send_keys("What is 2 + 2?")
    browser.find_element(By.ID, "send").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".msg[data-done='1']"))
    return [
        {"text": m.text, "class": m.get_attribute("class")}
        for m in browser.find_elements(By.CSS_SELECTOR, ".msg")
    ]
