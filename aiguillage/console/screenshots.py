"""Headless Chromium, from Debian's packages, driven with Selenium: the browser tests
and the screenshots of the console's three pages."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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


# Where Chromium and its driver are when not on the PATH (or to choose another build).
BROWSER_SETTING = "AIGUILLAGE_CHROMIUM"
DRIVER_SETTING = "AIGUILLAGE_CHROMEDRIVER"
INSTALL = "apt-get install -y chromium chromium-driver"


class ChromiumMissing(RuntimeError):
    """No Chromium, no chromedriver or no Selenium where they are looked for; the message
    says which, and how to get it."""


def _executable(setting: str, *names: str) -> str | None:
    given = os.environ.get(setting)
    if given:
        return shutil.which(given)  # a path or a name; None unless it is an executable
    return next((found for name in names if (found := shutil.which(name))), None)


def _missing(what: str, setting: str) -> ChromiumMissing:
    given = os.environ.get(setting)
    where = f"at {setting}={given}" if given else "on the PATH"
    return ChromiumMissing(
        f"no {what} {where}: install it (`{INSTALL}`) or set {setting} to its path"
    )


def find_chromium() -> tuple[str, str]:
    """Chromium and chromedriver (``AIGUILLAGE_CHROMIUM`` / ``AIGUILLAGE_CHROMEDRIVER``
    when set, else Debian's on the PATH), or ChromiumMissing saying what to do."""
    browser = _executable(BROWSER_SETTING, "chromium", "chromium-browser")
    if browser is None:
        raise _missing("Chromium", BROWSER_SETTING)
    driver = _executable(DRIVER_SETTING, "chromedriver")
    if driver is None:
        raise _missing("chromedriver", DRIVER_SETTING)
    return browser, driver


def chromium_paths() -> tuple[str, str] | None:
    try:
        return find_chromium()
    except ChromiumMissing:
        return None


@contextmanager
def chromium(width: int = 1400, height: int = 1000) -> Iterator[Any]:
    browser, driver_path = find_chromium()
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as exc:
        # A development dependency: an installation without it has no browser driving.
        raise ChromiumMissing(
            "Selenium is not installed: `pip install selenium` (or `pip install -e '.[dev]'`)"
        ) from exc
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


def log_in(driver: Any, base_url: str, login: str, password: str) -> None:
    """Log in as a person (their own account) and wait for their page."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.delete_all_cookies()
    driver.get(f"{base_url}/connexion")
    driver.find_element(By.ID, "identifiant").send_keys(login)
    driver.find_element(By.ID, "mot_de_passe").send_keys(password)
    driver.find_element(By.ID, "se-connecter").click()
    # The click returns before the redirect: wait for the person's page.
    WebDriverWait(driver, 15, 0.1).until(
        lambda d: not d.current_url.split("?")[0].endswith("/connexion")
    )


def full_page(driver: Any, path: Path) -> None:
    """The whole page, not only the window: the window grows to the page's height."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    width = driver.get_window_size()["width"]
    driver.set_window_size(width, min(max(int(height) + 120, 800), 3200))
    driver.save_screenshot(str(path))


def take_screenshots(base_url: str, out: Path, logins: list[tuple[str, str, str]]) -> list[Path]:
    """Log in as each person (login, password, page name) in turn and save their page:
    territoire, centre, centre-15; and each at a phone's and a laptop's width
    (<name>-360.png, <name>-1280.png), with a referral's timeline of Centre 15."""
    import time

    find_chromium()  # before anything is written: a missing browser is said at once
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with chromium() as driver:
        for login, password, name in logins:
            log_in(driver, base_url, login, password)
            page = _day_with_patients(driver, base_url) if name == "centre" else f"/{name}"
            driver.get(f"{base_url}{page}")
            # The live stream connects after load: the screenshot shows it connected.
            time.sleep(1.5)
            path = out / f"{name}.png"
            full_page(driver, path)
            driver.set_window_size(1400, 1000)
            written.append(path)
            written += at_widths(driver, base_url, page, out, name)
            if name == "centre-15":
                written += _first_timeline(driver, base_url, out)
    return written


# A phone's width (the smallest in common use) and a laptop's (issue 30).
PAGE_WIDTHS = (360, 1280)


def at_widths(
    driver: Any,
    base_url: str,
    path: str,
    out: Path,
    name: str,
    widths: tuple[int, ...] = PAGE_WIDTHS,
) -> list[Path]:
    """The page at ``path`` at each width: <name>-<width>.png."""
    written = []
    for width in widths:
        driver.set_window_size(width, 900)
        driver.get(f"{base_url}{path}")
        shot = out / f"{name}-{width}.png"
        full_page(driver, shot)
        written.append(shot)
    driver.set_window_size(1400, 1000)
    return written


def _day_with_patients(driver: Any, base_url: str) -> str:
    """The centre's page on the first day from today that has patients (slots are
    booked on the real clock: late in the day, the next morning's), or today's."""
    from datetime import date, timedelta

    from selenium.webdriver.common.by import By

    for offset in range(3):
        path = f"/centre?jour={(date.today() + timedelta(days=offset)).isoformat()}"
        driver.get(f"{base_url}{path}")
        if driver.find_elements(By.CSS_SELECTOR, "#rdv tr[data-appointment]"):
            return path
    return "/centre"


def _first_timeline(driver: Any, base_url: str, out: Path) -> list[Path]:
    """The timeline of the first referral Centre 15's desk links to, if any:
    centre-15-dossier-<width>.png."""
    from selenium.webdriver.common.by import By

    driver.get(f"{base_url}/centre-15")
    links = driver.find_elements(By.CSS_SELECTOR, "#bureau a[href^='/centre-15/dossiers/']")
    if not links:
        return []
    path = str(links[0].get_attribute("href")).removeprefix(base_url)
    return at_widths(driver, base_url, path, out, "centre-15-dossier")


def take_referrer_screenshots(
    base_url: str, out: Path, login: str, password: str, commune_insee: str
) -> list[Path]:
    """The referrer's page (the form, then the outcome come in live) and the patient's
    page reached by the link of the printed notice: adresser.png,
    adresser-issue.png, patient.png."""
    import time

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    find_chromium()
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with chromium() as driver:
        log_in(driver, base_url, login, password)
        driver.get(f"{base_url}/adresser")
        fields = {
            "patient.last_name": "Moreau",
            "patient.first_name": "Camille",
            "patient.birth_date": "1968-09-14",
            "patient.phone": "0611223344",
            "patient.commune_insee": commune_insee,
            "clinical.symptoms": "fièvre, toux, courbatures",
            "clinical.onset_date": time.strftime("%Y-%m-%d", time.localtime(time.time() - 172800)),
            "clinical.vitals.spo2": "96",
            "clinical.vitals.respiratory_rate": "18",
            "clinical.vitals.temperature_c": "38,5",
        }
        for name, value in fields.items():
            # Set as they stand (dates whatever the browser's locale, the commune's code
            # the list would have chosen): a picture, not a test of the typing.
            driver.execute_script(
                "document.getElementsByName(arguments[0])[0].value = arguments[1];", name, value
            )
        from shared.geo import commune

        town = commune(commune_insee)
        driver.execute_script(
            "document.getElementById('champ-patient-commune-name').value = arguments[0];",
            town.name if town else commune_insee,
        )
        driver.find_element(By.NAME, "patient.sms_consent").click()
        path = out / "adresser.png"
        full_page(driver, path)
        driver.set_window_size(1400, 1000)
        written.append(path)
        driver.find_element(By.ID, "envoyer").click()
        WebDriverWait(driver, 60, 0.3).until(
            lambda d: (
                d.find_elements(By.CSS_SELECTOR, "#issue-demande [data-status]")
                and not d.find_elements(By.CSS_SELECTOR, "#issue-demande [data-pending]")
            )
        )
        time.sleep(0.5)
        path = out / "adresser-issue.png"
        full_page(driver, path)
        driver.set_window_size(1400, 1000)
        written.append(path)
        # The referrer's list of referrals (issue 30), a phone's and a laptop's width.
        written += at_widths(driver, base_url, "/mes-demandes", out, "mes-demandes")
        notices = driver.find_elements(By.ID, "imprimer-avis")
        if notices:
            notices[0].click()
            link = driver.find_element(By.ID, "lien-patient").text
            token = link.rsplit("/patient/", 1)[1]
            # The patient's own browser: no session, a phone-sized screen.
            driver.delete_all_cookies()
            driver.set_window_size(420, 900)
            driver.get(f"{base_url}/patient/{token}")
            path = out / "patient.png"
            full_page(driver, path)
            written.append(path)
            written += patient_options_screenshots(driver, base_url, token, out)
    return written


# A phone's width (the smallest in common use) and a laptop's.
PATIENT_WIDTHS = (360, 1280)


def patient_options_screenshots(
    driver: Any, base_url: str, token: str, out: Path, widths: tuple[int, ...] = PATIENT_WIDTHS
) -> list[Path]:
    """The slots a patient is offered when they ask for another (issue 27), at each
    width: patient-options-<width>.png. Reading the offers books nothing."""
    written = []
    for width in widths:
        # The window, not --window-size: Chromium's headless window is 500 px at least.
        driver.set_window_size(width, 900)
        driver.get(f"{base_url}/patient/{token}/autre-creneau")
        path = out / f"patient-options-{width}.png"
        full_page(driver, path)
        written.append(path)
    return written
