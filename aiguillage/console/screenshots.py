"""Headless Chromium, from Debian's packages, driven with Selenium: the browser tests
and the screenshots of the console's three pages."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aiguillage.console.auth import password_for
from shared.auth import Role

# Without the background-networking flags Chromium's own connections (updates,
# safe browsing...) fail here and slow every page down.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--lang=fr-FR",
)


def chromium_paths() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@contextmanager
def chromium(width: int = 1400, height: int = 1000) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    paths = chromium_paths()
    if paths is None:
        raise RuntimeError("Chromium is not installed: apt-get install -y chromium chromium-driver")
    browser, driver_path = paths
    profile = tempfile.mkdtemp(prefix="aiguillage-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def log_in(driver: Any, base_url: str, secret: str, role: Role, subject: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    driver.delete_all_cookies()
    driver.get(f"{base_url}/connexion")
    Select(driver.find_element(By.ID, "role")).select_by_value(role.value)
    driver.find_element(By.ID, "identifiant").send_keys(subject)
    driver.find_element(By.ID, "mot_de_passe").send_keys(password_for(secret, role, subject))
    driver.find_element(By.ID, "se-connecter").click()
    # The click returns before the redirect: wait for the actor's page.
    WebDriverWait(driver, 15, 0.1).until(
        lambda d: not d.current_url.split("?")[0].endswith("/connexion")
    )


def full_page(driver: Any, path: Path) -> None:
    """The whole page, not only the window: the window grows to the page's height."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    width = driver.get_window_size()["width"]
    driver.set_window_size(width, min(max(int(height) + 120, 800), 3200))
    driver.save_screenshot(str(path))


def take_screenshots(
    base_url: str,
    secret: str,
    out: Path,
    *,
    ars: str = "idf",
    centre: str,
    regulator: str = "regulateur",
) -> list[Path]:
    """Log in as each actor in turn and save its page: territoire, centre, centre-15."""
    import time

    out.mkdir(parents=True, exist_ok=True)
    written = []
    with chromium() as driver:
        for role, subject, name in (
            (Role.ARS, ars, "territoire"),
            (Role.CENTRE, centre, "centre"),
            (Role.CENTRE_15, regulator, "centre-15"),
        ):
            log_in(driver, base_url, secret, role, subject)
            # The live stream connects after load: the screenshot shows it connected.
            time.sleep(1.5)
            path = out / f"{name}.png"
            full_page(driver, path)
            driver.set_window_size(1400, 1000)
            written.append(path)
    return written
