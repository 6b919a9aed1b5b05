#!/usr/bin/env python3
"""Drives the admin console in a real headless Chromium through the DevTools protocol.

Chromium talks over --remote-debugging-pipe (fd 3 in, fd 4 out, NUL-separated JSON), so no
WebSocket library is needed. The scenario logs in (refused as a plain user first), creates a
Post with a validation error shown, edits it, ticks a resource grant checkbox, watches an event
arrive in the monitor and runs a script; it prints what it saw as one JSON object.

usage: console_driver.py BASE_URL ADMIN PASSWORD USER PASSWORD SIGNATURE [SCREENSHOT_DIR]
"""
import base64, json, os, subprocess, sys, tempfile, time, urllib.request

CHROMIUM = "/usr/bin/chromium"


class Browser:
    def __init__(self):
        self.profile = tempfile.mkdtemp(prefix="herald-console-")
        to_chrome_r, self.to_chrome = os.pipe()
        self.from_chrome, from_chrome_w = os.pipe()
        # Chromium expects the pipe on fds 3 (commands) and 4 (answers).
        def fds():
            commands, answers = os.dup(to_chrome_r), os.dup(from_chrome_w)
            os.dup2(commands, 3)
            os.dup2(answers, 4)
        self.process = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-extensions", "--remote-debugging-pipe", "--window-size=1280,900",
             "--user-data-dir=" + self.profile, "about:blank"],
            preexec_fn=fds, pass_fds=(3, 4),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.next_id = 0
        self.buffer = b""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.send("Page.enable", session=True)
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session=True)

    def send(self, method, params=None, session=False):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self.to_chrome, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self.buffer:
                chunk = os.read(self.from_chrome, 1 << 20)
                if not chunk:
                    raise RuntimeError("Chromium closed the DevTools pipe")
                self.buffer += chunk
            raw, self.buffer = self.buffer.split(b"\0", 1)
            answer = json.loads(raw)
            if answer.get("id") == self.next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})

    def evaluate(self, expression):
        result = self.send("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                                "returnByValue": True}, session=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait(self, condition, what, timeout=40):
        deadline = time.time() + timeout
        while time.time() < deadline:
            value = self.evaluate(
                f"(() => {{ try {{ const v = {condition}; return v instanceof Node ? true : v; }} catch (e) {{ return null; }} }})()")
            if value:
                return value
            time.sleep(0.1)
        raise RuntimeError(f"timed out waiting for {what}")

    def go(self, url):
        self.send("Page.navigate", {"url": url}, session=True)

    def type(self, selector, text):
        """Focuses the control and types into it as a keyboard would."""
        self.evaluate(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); e.focus(); e.select && e.select(); }})()")
        self.send("Input.insertText", {"text": text}, session=True)

    def key(self, key, code, keycode, text=None):
        down = {"type": "keyDown", "key": key, "code": code, "windowsVirtualKeyCode": keycode}
        if text:
            down["text"] = text
        self.send("Input.dispatchKeyEvent", down, session=True)
        self.send("Input.dispatchKeyEvent", {"type": "keyUp", "key": key, "code": code,
                                             "windowsVirtualKeyCode": keycode}, session=True)

    def click(self, selector):
        self.evaluate(f"document.querySelector({json.dumps(selector)}).click()")

    def screenshot(self, directory, name):
        if not directory:
            return
        time.sleep(0.3)
        data = self.send("Page.captureScreenshot", {"format": "png"}, session=True)["data"]
        with open(os.path.join(directory, name + ".png"), "wb") as f:
            f.write(base64.b64decode(data))

    def close(self):
        self.process.kill()
        self.process.wait()


def rest(base, method, path, user, password, body=None):
    request = urllib.request.Request(base + "/structr/rest/" + path, method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"X-User": user, "X-Password": password,
                                              "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=20) as response:
        return json.loads(response.read() or b"null")


def main():
    base, admin, admin_password, user, user_password, signature = sys.argv[1:7]
    shots = sys.argv[7] if len(sys.argv) > 7 else None
    if shots:
        os.makedirs(shots, exist_ok=True)
    seen = {}
    browser = Browser()
    try:
        text = lambda selector: browser.evaluate(
            f"(document.querySelector({json.dumps(selector)}) || {{}}).textContent || ''")
        browser.go(base + "/structr/admin/")
        browser.wait("document.activeElement && document.activeElement.id === 'login-name'", "the login form")
        # A plain user is refused; typing and Enter only, as a keyboard user would.
        browser.type("#login-name", user)
        browser.key("Tab", "Tab", 9)
        browser.send("Input.insertText", {"text": user_password}, session=True)
        browser.key("Enter", "Enter", 13, "\r")
        seen["refusal"] = browser.wait("document.querySelector('#login-error').textContent", "the refusal")
        browser.type("#login-name", admin)
        browser.type("#login-password", admin_password)
        browser.key("Enter", "Enter", 13, "\r")
        browser.wait("document.querySelector('#schema-status')", "the schema screen")
        browser.wait("document.querySelector('#type-Post')", "the Post type")
        seen["schema"] = text("#schema-status")
        browser.screenshot(shots, "schema")

        # Create a Post without its required title: the error shows at the field.
        browser.go(base + "/structr/admin/#/data/Post/new")
        browser.wait("document.querySelector('#object-form #field-text')", "the new Post form")
        browser.type("#field-text", "written in the console")
        browser.click("#save")
        seen["fieldError"] = browser.wait(
            "document.querySelector('[data-field=title] .field-error').textContent", "the title's error")
        seen["focused"] = browser.evaluate("document.activeElement.id")
        browser.screenshot(shots, "validation-error")
        browser.type("#field-title", "Made in the console")
        browser.click("#save")
        seen["created"] = browser.wait(
            "(/^#\\/data\\/Post\\/([0-9a-f]{32})$/.exec(location.hash) || [])[1]", "the created Post")
        # The created object's own form (it has a Delete button), not the create form before it.
        browser.wait(f"document.querySelector('#delete') && document.querySelector('h2').textContent.includes('{seen['created']}')",
                     "the created Post's form")
        browser.type("#field-title", "Edited in the console")
        browser.click("#save")
        browser.wait("document.querySelector('#status').textContent.startsWith('Saved')", "the save")

        browser.go(base + "/structr/admin/#/data/Post?sort=title&order=asc")
        browser.wait("document.querySelector('#objects tbody tr')", "the Post list")
        seen["listed"] = text("#objects")
        seen["listLinks"] = browser.evaluate(
            "[...document.querySelectorAll('#objects .links a')].map(a => a.getAttribute('href'))")
        browser.screenshot(shots, "data")

        # Tick GET for authenticated users on the signature.
        browser.go(base + "/structr/admin/#/grants?object=" + seen["created"])
        box = f"#resource-access tr[data-signature={json.dumps(signature)}] input[data-bit='1']"
        browser.wait(f"document.querySelector({json.dumps(box)})", "the grant row")
        seen["checkedBefore"] = browser.evaluate(f"document.querySelector({json.dumps(box)}).checked")
        browser.click(box)
        browser.wait("document.querySelector('#status').textContent.includes('flags')", "the grant change")
        browser.wait("document.querySelector('#readers')", "who can see the Post")
        seen["readers"] = text("#readers")
        browser.screenshot(shots, "grants")

        browser.go(base + "/structr/admin/#/users")
        browser.wait("document.querySelector('#groups tbody tr')", "the groups")
        seen["groups"] = text("#groups")
        browser.screenshot(shots, "users")

        # An event published elsewhere shows in the monitor.
        browser.go(base + "/structr/admin/#/events")
        browser.wait("document.querySelector('#feed-state').textContent.startsWith('Following')", "the monitor")
        time.sleep(0.5)
        rest(base, "POST", "announceSprintPlanning", admin, admin_password, {})
        seen["monitor"] = browser.wait(
            "[...document.querySelectorAll('#monitor tbody tr')].map(r => r.textContent).join('\\n')", "a monitored event")
        time.sleep(2.5)
        browser.screenshot(shots, "events")

        browser.go(base + "/structr/admin/#/scripts")
        browser.wait("document.querySelector('#script-source')", "the script console")
        browser.evaluate("document.querySelector('#script-source').value = "
                         + json.dumps("$.log('from the console');\n$.broadcastEvent('console-test', 'hello');\n"
                                      "$.create('Post', {title: 'rolled back'});\nreturn $.find('Post').length;"))
        browser.click("#run-script")
        browser.wait("document.querySelector('#script-outcome')", "the script's outcome")
        for key in ("script-outcome", "script-result", "script-log", "script-events"):
            seen[key] = text("#" + key)
        browser.screenshot(shots, "scripts")
    except Exception as error:
        seen["error"] = str(error)
        seen["page"] = browser.evaluate("document.body ? document.body.innerText.slice(0, 2000) : ''")
    finally:
        browser.close()
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
