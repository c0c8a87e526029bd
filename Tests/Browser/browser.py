"""What the dashboard's browser tests share: Debian's chromium driven headless by selenium, and
waits that are conditions with a deadline (never a sleep as synchronisation)."""
import os
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By


def fail(step, detail=""):
    print(f"FAILED: {step}: {detail}", file=sys.stderr)
    sys.exit(1)


def wait_until(step, condition, timeout=30.0, driver=None):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except Exception as error:  # an element not there yet
            last = error
        time.sleep(0.2)
    page = driver.find_element(By.ID, "main").text[:1500] if driver and driver.find_elements(By.ID, "main") else ""
    fail(step, f"not within {timeout} s; last error {last!r}; page: {page}")


def browser(width=1280, height=900, home=None, resolve=()):
    """A headless chromium. `home`: the HOME it runs with (its NSS database of trusted
    authorities is HOME/.pki/nssdb); `resolve`: host names it resolves to 127.0.0.1."""
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    flags = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", f"--window-size={width},{height}"]
    if resolve:
        flags.append("--host-resolver-rules=" + ", ".join(f"MAP {name} 127.0.0.1" for name in resolve))
    for flag in flags:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    environment = dict(os.environ, HOME=home) if home else None
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver", env=environment), options=options)


def sign_in(driver, gateway, token):
    driver.get(gateway["admin"] + "/ui/")
    wait_until("sign-in form", lambda: driver.find_element(By.ID, "token"), driver=driver)
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "form.signin button").click()
    wait_until("live connection", lambda: driver.find_element(By.ID, "conn").text.startswith("live: " + gateway["name"]), driver=driver)


def go(driver, route):
    driver.execute_script("location.hash = arguments[0]", "#/" + route)


def main_text(driver):
    return driver.find_element(By.ID, "main").text


def fill_start_form(driver, fields):
    """Fills the Rollouts page's start form; returns it and the rollout id it will start."""
    wait_until("start form", lambda: driver.find_element(By.ID, "start"), driver=driver)
    form = driver.find_element(By.ID, "start")
    for name, value in fields:
        field = form.find_element(By.NAME, name)
        field.clear()
        field.send_keys(value)
    return form, form.get_attribute("data-id")


def severe_console(driver):
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE" and "favicon" not in entry["message"]]
