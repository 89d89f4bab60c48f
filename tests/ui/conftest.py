"""Fixtures of the page's tests: headless Debian Chromium driven by Playwright, one local
TorchServe with the tiny models, and ``mme ui`` serving the page for it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# the client tests' helpers: sample photos, the loopback SageMaker runtime
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "client"))

from ui_support import CHROMIUM, CHROMIUM_ARGS, REPO_ROOT, UiProcess, mme_command  # noqa: E402


@pytest.fixture(scope="session")
def ui_env(tmp_path_factory) -> dict:
    """Environment of the ``mme`` processes: private cache/state, no real AWS configuration."""
    base = tmp_path_factory.mktemp("ui-env")
    env = dict(os.environ)
    env.update({"XDG_CACHE_HOME": str(base / "cache"), "XDG_STATE_HOME": str(base / "state"),
                "AWS_CONFIG_FILE": str(base / "aws-config"), "AWS_SHARED_CREDENTIALS_FILE": str(base / "aws-creds"),
                "AWS_EC2_METADATA_DISABLED": "true", "PYTHONUNBUFFERED": "1"})
    for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "MME_STATE_DIR", "MME_STACK_NAME", "MME_DEBUG"):
        env.pop(key, None)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory, ui_env):
    """``mme local up --weights tiny`` for the page's tests; ``down`` at the end."""
    state = tmp_path_factory.mktemp("ui-local")
    up = subprocess.run([*mme_command(), "local", "up", "--weights", "tiny", "--state-dir", str(state)],
                        env=ui_env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert up.returncode == 0, up.stderr
    yield state
    down = subprocess.run([*mme_command(), "local", "down", "--state-dir", str(state)], env=ui_env, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert down.returncode == 0, down.stderr


@pytest.fixture(scope="session")
def ui_local(tiny_models, ui_env):
    """``mme ui --local`` on a free port of 127.0.0.1, for the whole session."""
    ui = UiProcess(["--local", "--state-dir", str(tiny_models)], ui_env)
    yield ui
    code, out, err = ui.stop()
    assert "mme ui: stopped" in out, (code, out, err)
    assert "Traceback" not in err, err


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium from the Debian package (``make test`` installs it), through Playwright."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs the Debian chromium package "
                    "(or set MME_CHROMIUM to a Chromium binary)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture()
def page_for(browser):
    """``page_for(ui)``: a fresh 1366x768 page (a laptop screen) on the ``mme ui`` at ``ui.url``;
    at the end, checks that the page asked nothing of any other origin and threw no error."""
    opened = []

    def open_page(ui):
        context = browser.new_context(viewport={"width": 1366, "height": 768}, accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(60_000)
        requests, errors = [], []
        page.on("request", lambda request: requests.append(request.url))
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(ui.url)
        page.wait_for_selector("body[data-ready='1']")
        opened.append((context, ui, requests, errors))
        return page

    yield open_page
    for context, ui, requests, errors in opened:
        context.close()
        foreign = [url for url in requests if not url.startswith((ui.url, "data:", "blob:"))]
        assert foreign == [], f"the page reached outside its server: {foreign}"
        assert errors == [], errors
