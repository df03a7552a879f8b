#!/usr/bin/env python3
"""End-to-end test of the township inbox in a real headless Chromium, driven through
chromedriver's WebDriver HTTP API (standard library only).

A township verifier signs in at phone width, sees only their township's cases, finds one by
name, opens one, has a half-filled visit refused without losing it, records the visit and closes
it; a verifier of another township gets "not found" for that case's URL; the ledger export
contains the closed case. A county analyst checks the dashboard's chart and the dispatch queue
at phone and desktop width. Screenshots go to var/screenshots/.

Usage: inbox_e2e.py HUBD_BINARY   (run from the repository root)"""
import json, os, shutil, socket, sqlite3, subprocess, sys, tempfile, time, urllib.request, base64

HUBD = os.path.abspath(sys.argv[1])
WORK = tempfile.mkdtemp(prefix="hub-e2e-")
DB = os.path.join(WORK, "hub.sqlite")
SHOTS = os.path.abspath("var/screenshots")
os.makedirs(SHOTS, exist_ok=True)
PASSWORD = "browser-pass-1"
results = []

def check(name, ok, detail=""):
    results.append((name, ok))
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else " — " + detail), flush=True)

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def wait_port(port, seconds=30):
    end = time.time() + seconds
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close(); return True
        except OSError:
            time.sleep(0.1)
    return False

def run(*args, env=None):
    subprocess.run([HUBD, *args], check=True, stdout=subprocess.DEVNULL, env=env)

# A small simulated county with its alerts, and two verifiers of different townships.
run("demo", "--scale", "0.03", "--db", DB, "--sim-dir", os.path.join(WORK, "sim"))
con = sqlite3.connect(DB)
towns = [r[0] for r in con.execute("SELECT township_code FROM cases WHERE township_code IS NOT NULL AND household_id IS NOT NULL GROUP BY township_code ORDER BY count(*) DESC LIMIT 2")]
town_a, town_b = towns[0], towns[1]
cases_a = [r[0] for r in con.execute("SELECT id FROM cases WHERE township_code = ? ORDER BY deadline, id", (town_a,))]
env = dict(os.environ, HUB_E2E_PASSWORD=PASSWORD)
run("users", "add", "verifier_a", "--name", "甲乡核查员", "--role", "verifier", "--township", town_a, "--password-env", "HUB_E2E_PASSWORD", "--db", DB, env=env)
run("users", "add", "verifier_b", "--name", "乙乡核查员", "--role", "verifier", "--township", town_b, "--password-env", "HUB_E2E_PASSWORD", "--db", DB, env=env)
run("users", "add", "analyst", "--name", "县分析员", "--role", "analyst", "--password-env", "HUB_E2E_PASSWORD", "--db", DB, env=env)

hub_port, driver_port = free_port(), free_port()
def start_server():
    return subprocess.Popen([HUBD, "serve", "--port", str(hub_port), "--db", DB, "--no-scheduler"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
server = start_server()
driver = subprocess.Popen(["chromedriver", f"--port={driver_port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
BASE = f"http://127.0.0.1:{hub_port}"
WD = f"http://127.0.0.1:{driver_port}"

def wd(method, path, body=None):
    req = urllib.request.Request(WD + path, method=method, data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read() or b"{}").get("value")

def start_session(width, height, mobile):
    opts = {"binary": shutil.which("chromium") or "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--lang=zh-CN"] + ([] if mobile else [f"--window-size={width},{height}"])}
    if mobile:
        opts["mobileEmulation"] = {"deviceMetrics": {"width": width, "height": height, "pixelRatio": 2}}
    return wd("POST", "/session", {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": opts}}})["sessionId"]

try:
    assert wait_port(hub_port) and wait_port(driver_port), "server or chromedriver did not start"
    sid = start_session(390, 844, True)
    S = f"/session/{sid}"
    def go(path): wd("POST", S + "/url", {"url": BASE + path})
    def find(css):
        v = wd("POST", S + "/element", {"using": "css selector", "value": css})
        if not isinstance(v, dict) or "element-6066-11e4-a52e-4f735466cecf" not in v:
            raise RuntimeError(f"no element {css} on {wd('GET', S + '/url')}: {v}; page: {text()[:300]}")
        return v["element-6066-11e4-a52e-4f735466cecf"]
    def finds(css): return wd("POST", S + "/elements", {"using": "css selector", "value": css})
    def type_(css, text): wd("POST", S + f"/element/{find(css)}/value", {"text": text})
    def click(css): wd("POST", S + f"/element/{find(css)}/click", {})
    def text(): return wd("POST", S + "/execute/sync", {"script": "return document.body.innerText", "args": []})
    def js(script): return wd("POST", S + "/execute/sync", {"script": script, "args": []})
    def shot(name):
        with open(os.path.join(SHOTS, name), "wb") as f: f.write(base64.b64decode(wd("GET", S + "/screenshot")))
    def wait_until(pred, seconds=10):
        end = time.time() + seconds
        while time.time() < end:
            if pred(): return True
            time.sleep(0.1)
        return False
    def sign_in(user):
        go("/login"); type_("input[name=username]", user); type_("input[name=password]", PASSWORD); click("button[type=submit]")
        wait_until(lambda: "/login" not in wd("GET", S + "/url") and "退出" in text())
    def fits(label):
        width, inner = js("return [document.documentElement.scrollWidth, window.innerWidth]")
        check(label, width <= inner, f"page is {width}px wide in a {inner}px window")

    sign_in("verifier_a")
    go("/inbox")
    shot("inbox-phone.png")
    links = js("return Array.from(document.querySelectorAll('li.case a')).map(a => a.getAttribute('href'))")
    shown = sorted(int(h.split("/")[-1]) for h in links)
    check("verifier sees exactly their township's cases", shown == sorted(cases_a), f"shown {shown} expected {sorted(cases_a)}")
    check("inbox speaks Chinese", "预警案件" in text() and "未销号" in text())
    fits("inbox fits a phone screen (no sideways scrolling)")
    first_case = js("return document.querySelector('ul.cases').getBoundingClientRect().top")
    check("the filters are folded: the first case starts high on a phone", first_case < 330, f"first case at {first_case}px")
    check("the head of each household is named in the list", "户主 " in text())

    # Search by the name of a member of the first case's household.
    target = cases_a[0]
    member = con.execute("SELECT p.name FROM cases c JOIN rec_person p ON p.household_id = c.household_id WHERE c.id = ? ORDER BY p.relation = '户主' LIMIT 1", (target,)).fetchone()
    if member:
        type_("input[name=q]", member[0]); click(".search button")
        wait_until(lambda: "q=" in wd("GET", S + "/url"))
        found = [int(h.split("/")[-1]) for h in js("return Array.from(document.querySelectorAll('li.case a')).map(a => a.getAttribute('href'))")]
        check("searching a member's name finds the household's case", target in found, f"found {found}")
        shot("search-phone.png")

    go(f"/cases/{target}")
    page = text()
    check("case page shows why and the household", "为什么预警" in page and "家庭成员" in page)
    check("township staff see no rule hashes or run numbers", "规则版本" not in page and "运行 #" not in page)
    ids = [r[0] for r in con.execute("SELECT p.id_number FROM cases c JOIN rec_person p ON p.household_id = c.household_id WHERE c.id = ?", (target,))]
    check("member ID numbers are masked", ids and all(i not in page and (i[:6] + "********" + i[-4:]) in page for i in ids))
    fits("case page fits a phone screen")
    radio = js("return document.querySelector('label.radio').getBoundingClientRect().height")
    check("outcome choices are at least 44 px tall", radio >= 44, f"{radio}px")
    shot("case-phone.png")
    # 无风险 without a reason: the browser asks for it…
    type_("input[name=visitors]", "王五、李四（村干部）")
    type_("textarea[name=findings]", "入户查看，家中老人住院，医疗支出大，收入下降。")
    click("input[name=outcome][value=no_risk]")
    check("choosing 无风险 makes the reason required", js("return document.querySelector('input[name=reason]').required") is True)
    # …and if the browser check is bypassed, the server refuses it, keeping everything typed.
    js("document.querySelector('input[name=reason]').required = false; document.querySelector('form.visit').submit()")
    wait_until(lambda: "须说明原因" in text())
    kept = js("return [document.querySelector('input[name=visitors]').value, document.querySelector('textarea[name=findings]').value, document.querySelector('input[name=outcome][value=no_risk]').checked]")
    check("a refused visit keeps what was typed", kept == ["王五、李四（村干部）", "入户查看，家中老人住院，医疗支出大，收入下降。", True], str(kept))
    err_top = js("return document.querySelector('.field-error').getBoundingClientRect().top")
    check("the error is on screen next to its field", 0 <= err_top <= 844, f"error at {err_top}px")
    shot("case-refused-phone.png")
    click("input[name=outcome][value=monitor]")
    js("document.querySelector('select[name=monitoring_type]').value = '突发严重困难户'")
    click("form.visit button[type=submit]")
    wait_until(lambda: "已销号" in text())
    after = text()
    check("closing the case records the visit (销号) and says so", "已销号：入户核实已记录" in after and "纳入监测" in after, after[:200])
    check("the history names the verifier", "甲乡核查员：销号" in after)
    status = con.execute("SELECT status, outcome FROM cases WHERE id = ?", (target,)).fetchone()
    check("the store holds the case closed with its outcome", status == ("closed", "monitor"), str(status))
    shot("case-closed-phone.png")
    csv = wd("POST", S + "/execute/async", {
        "script": "const done = arguments[0]; fetch('/ledger.csv').then(r => r.text()).then(done)", "args": []})
    check("the ledger export contains the closed case", f"\r\n{target}," in csv and "已销号" in csv)
    # A photo from the phone's camera (here a file), its location removed.
    photo_case = cases_a[-1]
    go(f"/cases/{photo_case}")
    jpeg_path = os.path.abspath("Tests/Corpus/photo/camera.jpg")
    type_("form.photo-upload input[type=file]", jpeg_path)
    type_("form.photo-upload input[name=note]", "住房外景")
    click("form.photo-upload button[type=submit]")
    wait_until(lambda: "照片已保存" in text(), 10)
    stored = con.execute("SELECT bytes FROM case_photos WHERE case_id = ? ORDER BY id DESC LIMIT 1", (photo_case,)).fetchone()
    original = open(jpeg_path, "rb").read()
    latitude = bytes([34, 0, 0, 0, 1, 0, 0, 0, 12, 0, 0, 0])
    check("a photo taken on the visit is kept without its location", stored is not None and latitude in original and latitude not in stored[0], "")
    loaded = js("const i = document.querySelector('.photos img'); return i ? i.complete : false")
    check("the photo shows on the case page", wait_until(lambda: js("const i = document.querySelector('.photos img'); return !!i && i.complete") is True, 5))
    shot("photo-phone.png")
    go(f"/cases/{cases_a[-1]}/print")
    check("a printable 入户核实表", "入户核实表" in text() and "签字" in text())
    shot("print-phone.png")

    # Offline: the assigned cases are kept on the phone; a visit typed without signal waits there
    # and is sent when the network returns; one whose case changed meanwhile is shown, not lost.
    if len(cases_a) >= 3:
        go("/inbox")
        def kept():
            return wd("POST", S + "/execute/async", {"script": "const done = arguments[0]; caches.open('hub-pages').then(c => c.keys()).then(k => done(k.map(r => new URL(r.url).pathname))).catch(() => done([]))", "args": []}) or []
        wait_until(lambda: all(f"/cases/{c}" in kept() for c in cases_a[1:3]), 20)
        check("the assigned cases are kept on the phone", all(f"/cases/{c}" in kept() for c in cases_a[1:3]), str(kept()))
        server.terminate(); server.wait(10)
        offline_case, conflict_case = cases_a[1], cases_a[2]
        for c, note in [(offline_case, "离线填写：家中无人务工，收入骤降。"), (conflict_case, "离线填写：已搬离本村。")]:
            go(f"/cases/{c}")
            check(f"case #{c} opens without a network", "入户核实并销号" in text(), text()[:200])
            type_("input[name=visitors]", "王五")
            type_("textarea[name=findings]", note)
            click("input[name=outcome][value=unverifiable]")
            click("form.visit button[type=submit]")
            wait_until(lambda: "已保存在本机" in text(), 10)
        check("visits typed offline wait on the phone", "有 2 条入户核实记录保存在本机" in text(), text()[:300])
        shot("offline-queued-phone.png")
        # Meanwhile someone else closes the second case.
        con.execute("UPDATE cases SET status = 'closed', outcome = 'no_risk', closed_at = '2026-12-01T10:00:00+08:00' WHERE id = ?", (conflict_case,))
        con.commit()
        server = start_server()
        assert wait_port(hub_port), "server did not restart"
        go("/inbox")
        wait_until(lambda: "保存在本机，尚未提交" not in text() and "未能提交" in text(), 20)
        row = con.execute("SELECT status, outcome FROM cases WHERE id = ?", (offline_case,)).fetchone()
        check("the queued visit is sent when the network returns", row == ("closed", "unverifiable"), str(row))
        page = text()
        check("a visit whose case changed meanwhile is shown, not lost", f"案件 #{conflict_case} 的核实记录未能提交：案件已销号" in page and "已搬离本村" in page and "无法核实" in page, page[:400])
        shot("offline-conflict-phone.png")

    click("form.logout button")
    wait_until(lambda: "/login" in wd("GET", S + "/url"))
    sign_in("verifier_b")
    go(f"/cases/{target}")
    denied = text()
    check("another township's case answers as if it did not exist", "案件不存在" in denied, wd("GET", S + "/url") + " " + denied[:300])
    shot("denied-phone.png")

    # The county at phone width: the chart fits, the dispatch queue works with a thumb.
    click("form.logout button")
    wait_until(lambda: "/login" in wd("GET", S + "/url"))
    sign_in("analyst")
    go("/dashboard")
    box = js("const r = document.querySelector('svg.trend').getBoundingClientRect(); return [r.width, r.height, window.innerWidth]")
    check("the trend chart fits the phone and keeps its legend", 0 < box[0] <= box[2] and 100 < box[1] < 400, str(box))
    fits("dashboard fits a phone screen")
    shot("dashboard-phone.png")
    go("/dispatch")
    fits("dispatch queue fits a phone screen")
    boxes = js("return Array.from(document.querySelectorAll('label.pick')).map(l => l.getBoundingClientRect().height)")
    check("each queued case is a tall tap target", boxes and min(boxes) >= 44, str(boxes[:5]))
    shot("dispatch-phone.png")
    if boxes:
        click("label.pick input")
        js("document.querySelector('.dispatch-bar select').value = '" + town_a + "'")
        click(".dispatch-bar button")
        wait_until(lambda: "已分派 1 件" in text())
        check("dispatching from the phone works", "已分派 1 件" in text(), text()[:200])
    wd("DELETE", S)

    # The same county pages at desktop width.
    sid = start_session(1280, 900, False)
    S = f"/session/{sid}"
    sign_in("analyst")
    go("/dashboard")
    box = js("const r = document.querySelector('svg.trend').getBoundingClientRect(); return [r.width, r.height, window.innerWidth]")
    check("the trend chart at desktop width keeps its natural size", 0 < box[0] <= 1280 and 100 < box[1] < 400, str(box))
    shot("dashboard-desktop.png")
    go("/inbox")
    check("the filters are open on a desktop", js("return document.querySelector('details.more').open") is True)
    shot("inbox-desktop.png")
    go(f"/cases/{cases_a[-1]}")
    fits("the case page fits a desktop window")
    check("the county sees the technical details township staff do not", "规则版本" in text())
    shot("case-desktop.png")
    go("/dispatch")
    fits("the dispatch queue fits a desktop window")
    shot("dispatch-desktop.png")
    wd("DELETE", S)
finally:
    server.terminate(); driver.terminate()
    server.wait(10); driver.wait(10)
    shutil.rmtree(WORK, ignore_errors=True)

passed = sum(1 for _, ok in results if ok)
failed = len(results) - passed
print(f"browser: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
