"""The site dashboard in a real browser: Debian's chromium, driven headless by selenium.

Run by IntegrationTests/DashboardTests.swift, which starts three gateways on loopback and
passes their URLs, tokens, the admin keys and the binaries as one JSON argument. Every wait is
a condition with a deadline. Exits non-zero with the step that failed; prints page weight and
time to first render as one JSON line (`measure: {...}`).
"""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request

from selenium.webdriver.common.by import By

from browser import browser, fail, fill_start_form, go, main_text, severe_console, sign_in, wait_until

CONFIG = json.loads(sys.argv[1])
GW = CONFIG["gateways"]  # [{name, admin, device, token, readToken}]
SHOTS = CONFIG.get("shots")


def cli(args, gateway, key=None):
    command = [CONFIG["otamesh"], "rollout"] + args + ["--admin", gateway["admin"], "--token-file", gateway["tokenFile"]]
    if key:
        command += ["--key", os.path.join(CONFIG["keys"], key + ".pem")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        fail("otamesh " + " ".join(args), done.stdout + done.stderr)
    return done.stdout


def rollout_id(output):
    for word in output.replace("(", " ").replace(")", " ").replace(":", " ").split():
        if word.startswith("r-") and len(word) == 14:
            return word
    fail("rollout id", output)


def fleet(base, version, deadline, extra=()):
    return subprocess.Popen(
        [CONFIG["devicesim"], "run", "--family", "generic", "--hardware", "esp32", "--count", "4", "--mac-base", base, "--version", version,
         "--gateway", GW[1]["device"], "--interval", "0.2", "--until-updated", "--deadline", str(deadline), "--timeout", "2", "--quiet", *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def load_key(driver, name):
    picker = driver.find_element(By.ID, "key-file")
    picker.send_keys(os.path.join(CONFIG["keys"], name + ".pem"))
    wait_until("key " + name + " loaded", lambda: "key " + name in driver.find_element(By.ID, "who").text, driver=driver)


def click(driver, label):
    wait_until("button " + label, lambda: driver.find_element(By.XPATH, f"//button[text()='{label}']"), driver=driver)
    driver.find_element(By.XPATH, f"//button[text()='{label}']").click()
    wait_until(label + " sent", lambda: "signed and sent" in driver.find_element(By.ID, "command-note").text, driver=driver)


def shot(driver, name):
    if SHOTS:
        time.sleep(0.5)
        driver.save_screenshot(os.path.join(SHOTS, name + ".png"))


def main():
    global first, second
    admin = browser()
    try:
        # 1. Sign in with gw1's admin token: the whole site, three gateways alive.
        sign_in(admin, GW[0], GW[0]["token"])
        wait_until("three gateways alive", lambda: "3 of 3" in main_text(admin), driver=admin)
        navigation = admin.execute_script(
            "const n = performance.getEntriesByType('navigation')[0]; const p = performance.getEntriesByName('first-contentful-paint')[0];"
            "return {bytes: performance.getEntriesByType('resource').reduce((s, r) => s + r.transferSize, n.transferSize),"
            " firstPaintMs: p ? Math.round(p.startTime) : null, loadedMs: Math.round(n.loadEventEnd)}")
        print("measure: " + json.dumps(navigation))

        # 2. A device whose id is markup shows as that text, and runs nothing.
        hostile = '<img src=x onerror="window.__xss=1">'
        urllib.request.urlopen(GW[1]["device"] + "/v1/devices/" + urllib.parse.quote(hostile, safe="") + "/update?version=1.0.0", timeout=5).read()
        go(admin, "devices")
        wait_until("hostile device listed as text", lambda: hostile in main_text(admin), timeout=40, driver=admin)
        if admin.execute_script("return window.__xss") is not None or admin.find_elements(By.CSS_SELECTOR, "#main img"):
            fail("hostile device", "its id ran as markup")

        # 3. Admin A starts a rollout from the page, signing it with her key in the browser;
        #    admin B approves it in another browser (gw2); devices update while the page watches.
        # The devices ask once first, so the plan's device set (fixed when each stage starts) has them.
        fleet("24:0a:c4:70:00:00", "1.0.0", 2).wait(timeout=30)
        load_key(admin, "admin-a")
        go(admin, "rollouts")
        form, first = fill_start_form(admin, [("select", "hardware=esp32"), ("stages", "50,100"), ("soak", "1"), ("success", "50"),
                                              ("maxFailures", "0"), ("minFinished", "1"), ("concurrency", "4")])
        wait_until("live preview", lambda: "4 of 5 known devices match" in admin.find_element(By.ID, "preview").text, driver=admin)
        shot(admin, "start-desktop")
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait_until("plan awaiting approval", lambda: "awaiting approval" in main_text(admin) and first in admin.current_url, driver=admin)
        second_admin = browser()
        try:
            sign_in(second_admin, GW[1], GW[1]["token"])
            load_key(second_admin, "admin-b")
            go(second_admin, "rollout/" + first)
            wait_until("approve button", lambda: second_admin.find_element(By.XPATH, "//button[text()='Approve plan']"), driver=second_admin)
            # The envelope the page sends is byte-for-byte the CLI's for the same command and key.
            held = json.loads(urllib.request.urlopen(urllib.request.Request(
                GW[1]["admin"] + "/api/v1/rollouts/" + first + "/commands/1", headers={"Authorization": "Bearer " + GW[1]["token"]}), timeout=5).read())
            page_envelope = second_admin.execute_async_script(
                "const done = arguments[arguments.length - 1]; const held = arguments[0];"
                "sign(held.signed).then(s => done(envelopeText(held.signed, held.signatures.concat([s])))).catch(e => done('error ' + e));", held)
            unsigned = os.path.join(CONFIG["work"], "plan-a.json")
            with open(unsigned, "w") as out:
                out.write(json.dumps(held))
            cli_out = os.path.join(CONFIG["work"], "plan-ab.json")
            done = subprocess.run([CONFIG["otamesh"], "keys", "sign-command", "--add-to", unsigned, "--key", os.path.join(CONFIG["keys"], "admin-b.pem"),
                                   "--output", cli_out], capture_output=True, text=True, timeout=30)
            if done.returncode != 0:
                fail("keys sign-command", done.stdout + done.stderr)
            cli_envelope = open(cli_out).read()
            if page_envelope != cli_envelope:
                fail("envelope differs from the CLI's", f"page:\n{page_envelope}\ncli:\n{cli_envelope}")
            with open(os.path.join(CONFIG["work"], "page-envelope.json"), "w") as out:
                out.write(page_envelope)
            second_admin.find_element(By.XPATH, "//button[text()='Approve plan']").click()
            wait_until("approved in the second browser", lambda: "running" in second_admin.find_element(By.CSS_SELECTOR, "#main .pill").text, driver=second_admin)
        finally:
            second_admin.quit()
        devices = fleet("24:0a:c4:70:00:00", "1.0.0", 60)
        wait_until("stages advance to completion, live", lambda: "completed" in admin.find_element(By.CSS_SELECTOR, "#main .pill").text, timeout=70, driver=admin)
        devices.wait(timeout=90)
        wait_until("per-device attempts", lambda: main_text(admin).count("succeeded") >= 4, driver=admin)
        shot(admin, "rollout-completed-desktop")

        # 4. A failing release halts by itself; the page says where and why.
        second = rollout_id(cli(["start", "--target", "esp32/app/3.0.0.bin", "--select", "hardware=esp32", "--stages", "100", "--soak", "1s",
                                 "--max-failures", "0", "--min-finished", "1", "--concurrency", "1"], GW[0], key="admin-a"))
        cli(["approve", second], GW[0], key="admin-b")
        go(admin, "rollout/" + second)
        failing = fleet("24:0a:c4:70:00:00", "2.0.0", 15, ["--corrupt-flash"])
        wait_until("halt shown live", lambda: "Halted by" in main_text(admin), timeout=40, driver=admin)
        failing.wait(timeout=40)
        shot(admin, "rollout-halted-desktop")

        # 5. retry-failed signed in the page by A, approved by B in another browser, resumes it;
        #    a halt from the page stops it again.
        click(admin, "Retry failed")
        wait_until("retry-failed pending", lambda: "Pending commands" in main_text(admin), driver=admin)
        second_admin = browser()
        try:
            sign_in(second_admin, GW[1], GW[1]["token"])
            load_key(second_admin, "admin-b")
            go(second_admin, "rollout/" + second)
            wait_until("approve retry-failed", lambda: second_admin.find_element(By.XPATH, "//button[starts-with(text(), 'Approve retry-failed')]"), driver=second_admin)
            second_admin.find_element(By.XPATH, "//button[starts-with(text(), 'Approve retry-failed')]").click()
            wait_until("retry approved", lambda: "signed and sent" in second_admin.find_element(By.ID, "command-note").text, driver=second_admin)
        finally:
            second_admin.quit()
        wait_until("running again after retry-failed", lambda: "Halted by" not in main_text(admin) and "running" in main_text(admin), timeout=30, driver=admin)
        admin.find_element(By.ID, "halt-reason").send_keys("stopped from the dashboard")
        admin.find_element(By.CSS_SELECTOR, "#main form button.danger").click()
        wait_until("browser halt reaches gw3", lambda: "halted by an admin: stopped from the dashboard" in cli(["status", second], GW[2]), timeout=30, driver=admin)

        # 6. Reports to carry home.
        report = admin.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "fetch('/api/v1/reports/rollouts/' + arguments[0] + '?format=csv', {headers: {Authorization: 'Bearer ' + arguments[1]}})"
            ".then(r => r.text()).then(done).catch(e => done('error ' + e));", first, GW[0]["token"])
        if not report.startswith("record,stage,percent") or report.count("\r\ndevice,") < 4:
            fail("rollout report CSV", report[:600])

        go(admin, "site")
        shot(admin, "site-desktop")
        go(admin, "devices")
        shot(admin, "devices-desktop")
        severe = severe_console(admin)
        if severe:
            fail("browser console", severe)
    finally:
        admin.quit()

    # 7. Signed in with a key file alone (no token): every request is signed with the admin's
    #    key, so gw3 — which never issued a token to this admin — shows the site and acts.
    keyed = browser()
    try:
        keyed.get(GW[2]["admin"] + "/ui/")
        wait_until("key sign-in", lambda: keyed.find_element(By.ID, "signin-key"), driver=keyed)
        keyed.find_element(By.ID, "signin-key").send_keys(os.path.join(CONFIG["keys"], "admin-a.pem"))
        wait_until("live with a key", lambda: keyed.find_element(By.ID, "conn").text.startswith("live: gw3"), driver=keyed)
        if "signing every request" not in keyed.find_element(By.ID, "who").text:
            fail("key sign-in badge", keyed.find_element(By.ID, "who").text)
        go(keyed, "rollouts")
        wait_until("signed preview", lambda: "known devices match" in keyed.find_element(By.ID, "preview").text, driver=keyed)
    finally:
        keyed.quit()

    # 8. The read-only token: everything visible, nothing to act with, and the API refuses.
    reader = browser(390, 844)
    try:
        sign_in(reader, GW[2], GW[2]["readToken"])
        if "read-only" not in reader.find_element(By.ID, "who").text:
            fail("read-only badge", reader.find_element(By.ID, "who").text)
        go(reader, "rollouts")
        wait_until("rollouts listed read-only", lambda: "halted" in main_text(reader), driver=reader)
        go(reader, "rollout/" + second)
        wait_until("rollout page read-only", lambda: "Approvals" in main_text(reader), driver=reader)
        if reader.find_elements(By.ID, "halt-reason"):
            fail("read-only", "offers a halt")
        status = reader.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "fetch('/api/v1/rollouts/' + arguments[0] + '/halt', {method: 'POST', headers: {Authorization: 'Bearer ' + arguments[1]}, body: '{}'})"
            ".then(r => done(r.status)).catch(e => done('error ' + e));", second, GW[2]["readToken"])
        if status != 403:
            fail("read-only halt", f"answered {status}")
        shot(reader, "rollout-phone")
        go(reader, "devices")
        shot(reader, "devices-phone")
        # The page says plainly when its gateway stops answering, and when it is back.
        os.kill(GW[2]["pid"], signal.SIGSTOP)
        try:
            wait_until("connection lost shown", lambda: "lost" in reader.find_element(By.ID, "conn").text, timeout=40, driver=reader)
        finally:
            os.kill(GW[2]["pid"], signal.SIGCONT)
        wait_until("connection back shown", lambda: reader.find_element(By.ID, "conn").text.startswith(("connected again to gw3", "live: gw3")), timeout=40, driver=reader)
    finally:
        reader.quit()
    print("rollouts: " + first + " " + second)
    print("dashboard flow passed")


main()
