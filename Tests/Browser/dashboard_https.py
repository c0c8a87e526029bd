"""The dashboard off loopback, in a real browser: over HTTPS with the site CA, as an admin who
installed site-ca.pem in the browser's trust (HOME/.pki/nssdb, what Chromium's "Manage
certificates → Authorities → Import" writes on Linux); and over plain HTTP by a LAN name.

Run by IntegrationTests/DashboardTests.swift with one JSON argument: {https: {name, admin},
plain: {name, admin, token}, trustingHome, emptyHome, keys}. Prints `started: ID` and
`dashboard https passed`.
"""
import json
import os
import sys

from selenium.webdriver.common.by import By

from browser import browser, fail, fill_start_form, go, main_text, severe_console, sign_in, wait_until

CONFIG = json.loads(sys.argv[1])
NAMES = ["gw-https.test", "gw-plain.test"]


def main():
    https = CONFIG["https"]
    # 1. A browser that does not trust the site CA gets no page, and so no chance to send a key.
    stranger = browser(home=CONFIG["emptyHome"], resolve=NAMES)
    try:
        stranger.get(https["admin"] + "/ui/")
        if stranger.find_elements(By.ID, "signin-key") or "otamesh" in stranger.title:
            fail("untrusted certificate", "the dashboard loaded without the site CA: " + stranger.title)
        if "ERR_CERT_AUTHORITY_INVALID" not in stranger.page_source:
            fail("untrusted certificate", "no certificate error shown: " + stranger.page_source[:400])
    finally:
        stranger.quit()

    # 2. With site-ca.pem installed: a secure context, so the page signs with the admin's
    #    ECDSA P-256 key — every request, and the rollout plan it starts.
    admin = browser(home=CONFIG["trustingHome"], resolve=NAMES)
    try:
        admin.get(https["admin"] + "/ui/")
        wait_until("sign-in over HTTPS", lambda: admin.find_element(By.ID, "signin-key"), driver=admin)
        if admin.execute_script("return window.isSecureContext") is not True:
            fail("secure context", "the HTTPS page with the site CA is not a secure context")
        admin.find_element(By.ID, "signin-key").send_keys(os.path.join(CONFIG["keys"], "admin-e.pem"))
        wait_until("ECDSA key sign-in answered", lambda: admin.find_element(By.ID, "conn").text.startswith("live: " + https["name"])
                   or admin.find_element(By.ID, "signin-error").text, driver=admin)
        if not admin.find_element(By.ID, "conn").text.startswith("live: " + https["name"]):
            fail("ECDSA key sign-in", admin.find_element(By.ID, "signin-error").text)
        if "key admin-e" not in admin.find_element(By.ID, "who").text or "signing every request" not in admin.find_element(By.ID, "who").text:
            fail("ECDSA key sign-in badge", admin.find_element(By.ID, "who").text)
        go(admin, "rollouts")
        form, started = fill_start_form(admin, [("select", "hardware=esp32"), ("stages", "100"), ("soak", "1")])
        wait_until("signed preview", lambda: "known devices match" in admin.find_element(By.ID, "preview").text, driver=admin)
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait_until("plan awaiting approval", lambda: "awaiting approval" in main_text(admin) and started in admin.current_url, driver=admin)
        wait_until("the ECDSA signer listed", lambda: "admin-e" in main_text(admin), driver=admin)
        severe = severe_console(admin)
        if severe:
            fail("browser console", severe)
    finally:
        admin.quit()

    # 3. Plain HTTP by a LAN name is no secure context: the page says so and offers no key,
    #    while the token still signs in.
    plain = CONFIG["plain"]
    lan = browser(home=CONFIG["trustingHome"], resolve=NAMES)
    try:
        lan.get(plain["admin"] + "/ui/")
        wait_until("insecure notice", lambda: "not a secure context" in lan.find_element(By.ID, "insecure").text, driver=lan)
        if lan.find_element(By.ID, "signin-key").is_enabled():
            fail("plain HTTP", "the key picker is offered where the browser cannot sign")
        sign_in(lan, plain, plain["token"])
        if "no key signing" not in lan.find_element(By.ID, "keyslot").text:
            fail("plain HTTP, signed in", lan.find_element(By.ID, "keyslot").text)
    finally:
        lan.quit()
    print("started: " + started)
    print("dashboard https passed")


main()
