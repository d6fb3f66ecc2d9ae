"""`tlsgate audit --html` (issue 5, item 4): the page is rendered in headless
Chromium (Debian's chromium, installed by tools/deps).  It must render
(a screenshot is produced), its DOM must hold the coverage chart (an SVG
with bars for both directions) and the tables, log values must stay text
(a reverse-DNS name that looks like markup does not become an element), and
the page must fetch nothing: it is self-contained (no script, no external
reference, a Content-Security-Policy of default-src 'none'), and Chromium's
network log shows no request initiated by the page -- a control page with
an <img> proves that such a request would show.

The log is generated here: 30 hours of ESA-format sessions whose TLS share
changes over the day, with weak protocols and required-TLS failures.
"""

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

import tlsgate_test as tt

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
HOURS = 30
START = (2026, 11, 23, 0)


def stamp(t):
    return time.strftime("%a %b %e %H:%M:%S %Y", time.gmtime(t))


def make_log(path):
    """ESA lines for HOURS hours; returns the number of inbound sessions."""
    t0 = int(time.mktime(time.struct_time(START + (0, 0, 0, 0, 0))) - time.timezone)
    icid = dcid = mid = 100
    lines = []
    for h in range(HOURS):
        for k in range(12):
            t = t0 + h * 3600 + k * 300
            icid += 1
            mid += 1
            dcid += 1
            host = "<img/src=x/onerror=alert(1)>" if k == 0 and h == 0 else "mx%d.example" % k
            tls_in = k < 4 + (h % 8)
            lines.append("%s Info: New SMTP ICID %d interface Data 1 (192.0.2.1) address "
                         "198.51.100.%d reverse dns host %s verified no"
                         % (stamp(t), icid, k + 1, host))
            if tls_in:
                proto = "TLSv1" if k == 1 else "TLSv1.3"
                lines.append("%s Info: ICID %d TLS success protocol %s cipher %s"
                             % (stamp(t), icid, proto,
                                "DHE-RSA-AES256-SHA" if k == 1 else "TLS_AES_256_GCM_SHA384"))
            lines.append("%s Info: Start MID %d ICID %d" % (stamp(t), mid, icid))
            lines.append("%s Info: MID %d ICID %d From: <s%d@sender%d.example>"
                         % (stamp(t), mid, icid, k, k % 3))
            lines.append("%s Info: MID %d ICID %d RID 0 To: <r@dest%d.example>"
                         % (stamp(t), mid, icid, k % 4))
            lines.append("%s Info: MID %d ready 100 bytes from <s%d@sender%d.example>"
                         % (stamp(t), mid, k, k % 3))
            lines.append("%s Info: New SMTP DCID %d interface 192.0.2.1 address 203.0.113.%d "
                         "port 25" % (stamp(t + 1), dcid, k % 4 + 1))
            if k == 11:
                lines.append("%s Info: DCID %d TLS failed: STARTTLS not offered"
                             % (stamp(t + 1), dcid))
                lines.append("%s Info: DCID %d IP 203.0.113.%d TLS was required but could not "
                             "be successfully negotiated" % (stamp(t + 1), dcid, k % 4 + 1))
                lines.append("%s Info: DCID %d close" % (stamp(t + 1), dcid))
                lines.append("%s Info: MID %d aborted: 451 4.7.4" % (stamp(t + 1), mid))
            else:
                if k % 3 != 0:
                    lines.append("%s Info: DCID %d TLS success protocol TLSv1.2 cipher "
                                 "ECDHE-RSA-AES256-GCM-SHA384" % (stamp(t + 1), dcid))
                lines.append("%s Info: Delivery start DCID %d MID %d to RID [0]"
                             % (stamp(t + 1), dcid, mid))
                lines.append("%s Info: Message done DCID %d MID %d to RID [0]"
                             % (stamp(t + 2), dcid, mid))
                lines.append("%s Info: MID %d done" % (stamp(t + 2), mid))
                lines.append("%s Info: DCID %d close" % (stamp(t + 2), dcid))
            lines.append("%s Info: ICID %d close" % (stamp(t + 3), icid))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return HOURS * 12


@unittest.skipUnless(os.access(CHROMIUM, os.X_OK), "chromium is not installed")
class AuditHtmlTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="tlsgate-audit-html-")
        cls.log = os.path.join(cls.tmp, "mail.log")
        cls.sessions = make_log(cls.log)
        cls.page = os.path.join(cls.tmp, "audit.html")
        r = subprocess.run([tt.BIN, "audit", "--no-progress", "--html", cls.page, cls.log],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise AssertionError("tlsgate audit --html failed: %s" % r.stderr)
        cls.stdout = r.stdout
        with open(cls.page, encoding="utf-8") as f:
            cls.html = f.read()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def chromium(self, *args, page=None):
        profile = tempfile.mkdtemp(dir=self.tmp)
        cmd = [CHROMIUM] + CHROMIUM_FLAGS + ["--user-data-dir=" + profile] + list(args)
        cmd.append("file://" + (page or self.page))
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                           stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        return r

    def test_html_only_writes_the_file(self):
        self.assertEqual(self.stdout, "")
        self.assertTrue(self.html.startswith("<!DOCTYPE html>"))

    def test_self_contained(self):
        lower = self.html.lower()
        for needle in ("<script", "<link", "<iframe", "<img", "<object", "<embed", "@import",
                       "url(", " src=", " href="):
            self.assertNotIn(needle, lower)
        self.assertIn("content=\"default-src 'none'; style-src 'unsafe-inline'\"", self.html)
        # the only URL in the page is the SVG namespace name, never fetched
        self.assertEqual(set(re.findall(r"https?://[^\s\"'<>]+", self.html)),
                         {"http://www.w3.org/2000/svg"})

    def test_renders_a_screenshot(self):
        shot = os.path.join(self.tmp, "audit.png")
        self.chromium("--screenshot=" + shot, "--window-size=1200,900")
        with open(shot, "rb") as f:
            png = f.read()
        self.assertEqual(png[:8], b"\x89PNG\r\n\x1a\n")
        width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
        self.assertEqual((width, height), (1200, 900))
        self.assertGreater(len(png), 10000)  # not a blank page

    def test_dom_has_chart_and_tables(self):
        dom = self.chromium("--dump-dom").stdout
        chart = re.search(r"<svg id=\"coverage-chart\".*?</svg>", dom, re.S)
        self.assertIsNotNone(chart, "no chart in the DOM")
        bars = re.findall(r"<rect [^>]*>", chart.group(0))
        self.assertGreaterEqual(len(bars), HOURS * 2)  # at least one slice per hour and direction
        self.assertIn(">inbound</text>", chart.group(0))
        self.assertIn(">outbound</text>", chart.group(0))
        for table in ("summary", "protocols", "ciphers", "domains", "peers", "required-failures",
                      "without-tls"):
            self.assertRegex(dom, r"<table id=\"%s\">" % table)
        summary = re.search(r"<table id=\"summary\">.*?</table>", dom, re.S).group(0)
        self.assertRegex(summary, r"<td class=\"l\">inbound</td><td>%d</td>" % self.sessions)
        domains = re.search(r"<table id=\"domains\">.*?</table>", dom, re.S).group(0)
        for d in ("sender0.example", "dest1.example"):
            self.assertIn(">%s</td>" % d, domains)
        self.assertRegex(dom, r"class=\"l weak\">&lt; TLSv1\.2<")
        self.assertRegex(dom, r"class=\"l weak\">CBC-SHA1<")

    def test_log_values_stay_text(self):
        dom = self.chromium("--dump-dom").stdout
        self.assertTrue("<img" not in dom, "a log value became an element")
        self.assertTrue("&lt;img/src=x/onerror=alert(1)&gt;" in dom, "the value is not shown")

    def netlog_page_requests(self, page):
        log = os.path.join(self.tmp, "net-%d.json" % len(os.listdir(self.tmp)))
        self.chromium("--log-net-log=" + log, "--dump-dom", page=page)
        with open(log) as f:
            events = json.load(f)["events"]
        # Chromium's own service requests carry no origin; a page's do
        return {e["params"].get("url") for e in events
                if "initiator" in e.get("params", {})
                and e["params"]["initiator"] != "not an origin"}

    def test_no_network_fetches(self):
        control = os.path.join(self.tmp, "control.html")
        with open(control, "w") as f:
            f.write('<!DOCTYPE html><p>control</p><img src="http://127.0.0.1:9/x.png">\n')
        self.assertIn("http://127.0.0.1:9/x.png", self.netlog_page_requests(control))
        self.assertEqual(self.netlog_page_requests(self.page), set())


if __name__ == "__main__":
    unittest.main()
