"""`tlsgate audit` end to end: a running gateway relays a
workload whose ground truth the test knows -- inbound sessions with and
without STARTTLS, deliveries over TLS with and without certificate
verification, over clear text, and to a required-TLS route whose next hop
offers no STARTTLS (the client gets 451 and nothing is sent) -- while the
mail log is rotated (mv + SIGUSR1) in the middle of a session.  The audit of
both files, named in the wrong order, must count exactly what was done; the
filters, the text and CSV forms, and the RFC 8460 reports (field names and
types checked against section 4.4 of the RFC) are checked on the same logs.

Peers: aiosmtpd next hops on loopback (tests/integration/peers.py), one with
STARTTLS and the test CA's "good" certificate, one without STARTTLS.
"""

import csv
import io
import ipaddress
import json
import os
import re
import signal
import time
import unittest

import peers
from peers import OutboundTestCase, SMTPUpstream, route
import tlsgate_test as tt

N_TLS = 3    # inbound sessions with STARTTLS: one message each to a, v and c
N_PLAIN = 2  # inbound sessions in clear: a message to b, a refused one to d
TLS_SENDER = "alice@tls-sender.test"
PLAIN_SENDER = "bob@plain-sender.test"

RFC8460_RESULT_TYPES = {
    "starttls-not-supported", "certificate-host-mismatch", "certificate-expired",
    "certificate-not-trusted", "validation-failure", "tlsa-invalid", "dnssec-invalid",
    "dane-required", "sts-policy-fetch-error", "sts-policy-invalid", "sts-webpki-invalid"}
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def ground_truth():
    """The JSON counts the workload must produce (SPEC section 8 keys)."""
    n, m = N_TLS, N_PLAIN
    return {
        "inbound": {"connections": n + m, "tls_success": n, "tls_failed": 0, "no_tls": m,
                    "messages": 3 * n + m, "messages_without_tls": m},
        "outbound": {"connections": 3 * n + 2 * m, "tls_success": 2 * n + m,
                     "tls_failed": m, "no_tls": n, "verified": n, "unverified": n + m,
                     "required_failures": m, "messages": 3 * n + m,
                     "messages_without_tls": n},
    }


def domain_truth():
    """(direction, domain) -> the counts of that row."""
    n, m = N_TLS, N_PLAIN
    z = dict(connections=0, tls_success=0, tls_failed=0, no_tls=0, verified=0, unverified=0,
             required_failures=0, messages=0, messages_without_tls=0)
    rows = {
        ("inbound", "tls-sender.test"): dict(z, connections=n, tls_success=n, messages=3 * n),
        ("inbound", "plain-sender.test"): dict(z, connections=m, no_tls=m, messages=m,
                                               messages_without_tls=m),
        ("outbound", "a.test"): dict(z, connections=n, tls_success=n, unverified=n, messages=n),
        ("outbound", "v.test"): dict(z, connections=n, tls_success=n, verified=n, messages=n),
        ("outbound", "c.test"): dict(z, connections=n, no_tls=n, messages=n,
                                     messages_without_tls=n),
        ("outbound", "b.test"): dict(z, connections=m, tls_success=m, unverified=m, messages=m),
        ("outbound", "d.test"): dict(z, connections=m, tls_failed=m, required_failures=m),
    }
    return rows


class AuditWorkloadTest(OutboundTestCase):
    """One gateway for the class; the workload runs once (setUpClass) and
    every test audits the same two log files."""

    listener_config = {"out": dict(peers.RELAY_LISTENER, tls="preferred")}

    @classmethod
    def make_peers(cls):
        cls.add_peer("tls", SMTPUpstream(cert="good"))
        cls.add_peer("plain", SMTPUpstream(starttls=False))

    @classmethod
    def outbound_config(cls):
        tls, plain = cls.peers["tls"].port, cls.peers["plain"].port
        return (route("tlsroute", "a.test, b.test", tls, tls="preferred", host="127.0.0.1")
                + route("verify", "v.test", tls, tls="required-verify", host="localhost")
                + route("clear", "c.test", plain, tls="preferred", host="127.0.0.1")
                + route("req", "d.test", plain, tls="required", host="127.0.0.1"))

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.run_workload()
        except BaseException:
            cls.tearDownClass()
            raise

    # --- the workload ----------------------------------------------------
    @classmethod
    def session(cls, tls):
        c = cls.shared_gw.connect()
        assert c.ehlo().code == 250
        if tls:
            assert c.starttls().code == 220
            assert c.ehlo().code == 250
        return c

    @classmethod
    def send(cls, c, sender, rcpt, accepted=True):
        """One transaction; ACCEPTED: whether the gateway must take it."""
        r = c.cmd("MAIL FROM:<%s>" % sender)
        assert r.code == 250, r
        r = c.cmd("RCPT TO:<%s>" % rcpt, timeout=tt.TIMEOUT * 2)
        if not accepted:
            assert r.code == 451, r
            assert c.cmd("RSET").code == 250
            return
        assert r.code == 250, r
        assert c.cmd("DATA", timeout=tt.TIMEOUT * 2).code == 354
        c.send(tt.simple_message("audit") + b".\r\n")
        r = c.reply(timeout=tt.TIMEOUT * 2)
        assert r.code == 250, r

    @classmethod
    def tls_session_messages(cls, c, first=True, rest=True):
        if first:
            cls.send(c, TLS_SENDER, "user@a.test")
        if rest:
            cls.send(c, TLS_SENDER, "user@v.test")
            cls.send(c, TLS_SENDER, "user@c.test")

    @classmethod
    def plain_session(cls):
        c = cls.session(False)
        cls.send(c, PLAIN_SENDER, "user@b.test")
        cls.send(c, PLAIN_SENDER, "user@d.test", accepted=False)
        c.cmd("QUIT")
        c.close()

    @classmethod
    def rotate(cls):
        gw = cls.shared_gw
        os.rename(gw.maillog, gw.maillog + ".1")
        gw.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + tt.TIMEOUT
        while not os.path.exists(gw.maillog):
            if time.monotonic() > deadline:
                raise AssertionError("no new mail log after SIGUSR1")
            time.sleep(0.05)

    @classmethod
    def run_workload(cls):
        cls.plain_session()
        spanning = cls.session(True)  # its lines end up in both files
        cls.tls_session_messages(spanning, rest=False)
        cls.rotate()
        cls.tls_session_messages(spanning, first=False)
        spanning.cmd("QUIT")
        spanning.close()
        for _ in range(N_TLS - 1):
            c = cls.session(True)
            cls.tls_session_messages(c)
            c.cmd("QUIT")
            c.close()
        for _ in range(N_PLAIN - 1):
            cls.plain_session()
        cls.wait_closed(N_TLS + N_PLAIN, 3 * N_TLS + 2 * N_PLAIN)

    @classmethod
    def both_logs(cls):
        text = ""
        for path in (cls.shared_gw.maillog + ".1", cls.shared_gw.maillog):
            with open(path, errors="replace") as f:
                text += f.read()
        return text

    @classmethod
    def wait_closed(cls, icids, dcids):
        """Until every session and every delivery connection has closed."""
        deadline = time.monotonic() + tt.TIMEOUT * 2
        while True:
            text = cls.both_logs()
            ic = len(re.findall(r" Info: ICID \d+ (?:close|lost)$", text, re.M))
            dc = len(re.findall(r" Info: DCID \d+ close$", text, re.M))
            if ic >= icids and dc >= dcids:
                return
            if time.monotonic() > deadline:
                raise AssertionError("sessions still open (%d/%d ICID, %d/%d DCID); log:\n%s"
                                     % (ic, icids, dc, dcids, text))
            time.sleep(0.05)

    # --- running the audit -------------------------------------------------
    def audit(self, *args, ok=True):
        r = self.gw.run_cli("audit", "--no-progress", *args, timeout=60)
        if ok:
            self.assertEqual(r.returncode, 0, r.stderr)
            for mark in tt.SANITIZER_MARKS:
                self.assertNotIn(mark, r.stderr)
        return r

    def audit_json(self, *args):
        # the newer file first: the audit orders a rotated set itself
        r = self.audit("--json", *args, "mail.log", "mail.log.1")
        return json.loads(r.stdout)

    # --- the tests -----------------------------------------------------------
    def test_rotation_happened(self):
        old = self.gw.raw_log(self.gw.maillog + ".1")
        new = self.gw.raw_log()
        self.assertIn("New SMTP ICID", old)
        self.assertIn("New SMTP ICID", new)
        # the spanning session: its ICID opened in the old file, closed in the new
        icid = int(re.findall(r"ICID (\d+) TLS success", old)[-1])
        self.assertIn("ICID %d close" % icid, new)
        self.assertNotIn("ICID %d close" % icid, old)

    def test_counts_equal_ground_truth(self):
        r = self.audit_json()
        self.assertEqual(list(r), ["inbound", "outbound", "protocols", "ciphers", "domains",
                                   "without_tls"])
        truth = ground_truth()
        for direction in ("inbound", "outbound"):
            got = {k: r[direction][k] for k in truth[direction]}
            self.assertEqual(got, truth[direction], direction)
        self.assertEqual(r["inbound"]["required_failures"], 0)
        self.assertEqual(r["outbound"]["verify_failed"], 0)
        self.assertEqual(r["inbound"]["messages_tls_unknown"], 0)
        self.assertEqual(r["outbound"]["messages_tls_unknown"], 0)

    def test_same_counts_in_any_order_and_from_stdin(self):
        a = self.audit_json()
        b = json.loads(self.audit("--json", "mail.log.1", "mail.log").stdout)
        self.assertEqual(a, b)
        with open(os.path.join(self.gw.tmp, "mail.log.1"), "rb") as f:
            old = f.read()
        r = tt.subprocess.run([tt.BIN, "audit", "--json", "--no-progress", "-", "mail.log"],
                              cwd=self.gw.tmp, input=old, capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout), a)

    def test_domains(self):
        r = self.audit_json()
        rows = {(d["direction"], d["domain"]): {k: v for k, v in d.items()
                                                 if k not in ("domain", "direction")}
                for d in r["domains"]}
        self.assertEqual(rows, domain_truth())

    def test_protocols_ciphers_peers(self):
        r = self.audit_json()
        tls_total = r["inbound"]["tls_success"] + r["outbound"]["tls_success"]
        self.assertEqual(sum(r["protocols"].values()), tls_total)
        self.assertEqual(sum(r["ciphers"].values()), tls_total)
        for name in r["protocols"]:
            self.assertRegex(name, r"^TLSv1\.[23]$")
        for direction in ("inbound", "outbound"):
            peers_ = r[direction]["peers"]
            self.assertEqual([p["ip"] for p in peers_], ["127.0.0.1"])
            self.assertEqual(peers_[0]["connections"], r[direction]["connections"])
            self.assertEqual(peers_[0]["messages_without_tls"],
                             r[direction]["messages_without_tls"])
            self.assertEqual(r[direction]["weak_protocol"], 0)

    def test_without_tls_list(self):
        r = self.audit_json()
        entries = r["without_tls"]
        self.assertEqual(len(entries), N_TLS + N_PLAIN)
        for e in entries:
            self.assertEqual(sorted(e), ["dcid", "from", "hop", "icid", "mid", "time",
                                         "to_domain"])
            for k in ("mid", "icid", "dcid"):
                self.assertIsInstance(e[k], int)
            self.assertRegex(e["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$")
        outbound = [e for e in entries if e["hop"] == "outbound"]
        inbound = [e for e in entries if e["hop"] == "inbound"]
        self.assertEqual(len(outbound), N_TLS)
        self.assertEqual(len(inbound), N_PLAIN)
        self.assertEqual({(e["from"], e["to_domain"]) for e in outbound},
                         {(TLS_SENDER, "c.test")})
        self.assertEqual({(e["from"], e["to_domain"]) for e in inbound},
                         {(PLAIN_SENDER, "b.test")})
        # every entry names the lines the log has for it
        log = self.both_logs()
        for e in entries:
            self.assertIn("Message done DCID %d MID %d to RID [0]" % (e["dcid"], e["mid"]), log)
            self.assertIn("Start MID %d ICID %d" % (e["mid"], e["icid"]), log)

    def test_required_failures(self):
        r = self.audit_json()
        fails = r["outbound"]["required_failure_list"]
        self.assertEqual(len(fails), N_PLAIN)
        for f in fails:
            self.assertEqual(f["domain"], "d.test")
            self.assertEqual(f["ip"], "127.0.0.1")
            self.assertEqual(f["policy"], "required")
            self.assertIn("STARTTLS", f["reason"])
        self.assertEqual(r["inbound"]["required_failure_list"], [])

    def test_filters(self):
        out = self.audit_json("--direction", "out")
        self.assertEqual(out["inbound"]["connections"], 0)
        self.assertEqual(out["outbound"]["connections"], 3 * N_TLS + 2 * N_PLAIN)
        self.assertEqual({e["hop"] for e in out["without_tls"]}, {"outbound"})
        inb = self.audit_json("--direction", "in")
        self.assertEqual(inb["outbound"]["connections"], 0)
        self.assertEqual(inb["inbound"], {**inb["inbound"], **ground_truth()["inbound"]})
        c = self.audit_json("--domain", "c.test")
        self.assertEqual(c["outbound"]["connections"], N_TLS)
        self.assertEqual(c["outbound"]["messages_without_tls"], N_TLS)
        self.assertEqual([d["domain"] for d in c["domains"]], ["c.test"])
        future = self.audit_json("--since", "2999-01-01")
        self.assertEqual(future["inbound"]["connections"], 0)
        self.assertEqual(future["without_tls"], [])
        today = time.strftime("%Y-%m-%d")
        now = self.audit_json("--since", today, "--until", today)
        self.assertEqual(now["outbound"]["connections"], 3 * N_TLS + 2 * N_PLAIN)

    def test_text_and_csv(self):
        text = self.audit("mail.log", "mail.log.1").stdout
        self.assertRegex(text, r"(?m)^inbound\s+%d\s+%d\s+0\s+%d\b"
                         % (N_TLS + N_PLAIN, N_TLS, N_PLAIN))
        self.assertIn("required-TLS failures (%d)" % N_PLAIN, text)
        self.assertIn("messages without TLS on a hop (%d)" % (N_TLS + N_PLAIN), text)
        rows = list(csv.reader(io.StringIO(self.audit("--csv", "mail.log", "mail.log.1").stdout)))
        summary = {r[1]: r for r in rows if r and r[0] == "summary"}
        head = rows[0]
        self.assertEqual(head[:3], ["section", "direction", "connections"])
        out = dict(zip(head, summary["outbound"]))
        self.assertEqual(int(out["connections"]), 3 * N_TLS + 2 * N_PLAIN)
        self.assertEqual(int(out["required_failures"]), N_PLAIN)
        self.assertEqual(len([r for r in rows if r and r[0] == "without_tls"]), N_TLS + N_PLAIN)

    def test_usage_errors(self):
        for args in (["--direction", "sideways", "mail.log"], ["--since", "yesterday", "x"],
                     ["--tlsrpt", "dir", "mail.log"], [], ["--json", "--csv", "mail.log"]):
            r = self.audit(*args, ok=False)
            self.assertEqual(r.returncode, 2, args)
        r = self.audit("missing.log", ok=False)
        self.assertEqual(r.returncode, 2)
        self.assertIn("missing.log", r.stderr)

    # --- RFC 8460 ---------------------------------------------------------------
    def check_rfc8460(self, report):
        """Field names and types of RFC 8460 section 4.4; no other fields."""
        self.assertEqual(set(report), {"organization-name", "date-range", "contact-info",
                                       "report-id", "policies"})
        for k in ("organization-name", "contact-info", "report-id"):
            self.assertIsInstance(report[k], str)
            self.assertTrue(report[k])
        self.assertEqual(set(report["date-range"]), {"start-datetime", "end-datetime"})
        for k in ("start-datetime", "end-datetime"):
            self.assertRegex(report["date-range"][k], RFC3339)
        self.assertLessEqual(report["date-range"]["start-datetime"],
                             report["date-range"]["end-datetime"])
        self.assertIsInstance(report["policies"], list)
        self.assertEqual(len(report["policies"]), 1)
        for p in report["policies"]:
            self.assertTrue({"policy", "summary"} <= set(p) <= {"policy", "summary",
                                                                 "failure-details"})
            pol = p["policy"]
            self.assertTrue({"policy-type", "policy-domain"} <= set(pol)
                            <= {"policy-type", "policy-string", "policy-domain", "mx-host"})
            self.assertIn(pol["policy-type"], ("sts", "tlsa", "no-policy-found"))
            self.assertIsInstance(pol["policy-domain"], str)
            self.assertEqual(set(p["summary"]), {"total-successful-session-count",
                                                 "total-failure-session-count"})
            for v in p["summary"].values():
                self.assertIsInstance(v, int)
                self.assertGreaterEqual(v, 0)
            failed = 0
            for d in p.get("failure-details", []):
                self.assertTrue({"result-type", "failed-session-count"} <= set(d) <= {
                    "result-type", "sending-mta-ip", "receiving-mx-hostname",
                    "receiving-mx-helo", "receiving-ip", "failed-session-count",
                    "additional-information", "failure-reason-code"})
                self.assertIn(d["result-type"], RFC8460_RESULT_TYPES)
                self.assertIsInstance(d["failed-session-count"], int)
                for k in ("sending-mta-ip", "receiving-ip"):
                    if k in d:
                        ipaddress.ip_address(d[k])
                for k in ("receiving-mx-hostname", "receiving-mx-helo",
                          "additional-information", "failure-reason-code"):
                    if k in d:
                        self.assertIsInstance(d[k], str)
                failed += d["failed-session-count"]
            self.assertEqual(failed, p["summary"]["total-failure-session-count"])

    def test_tlsrpt(self):
        out = os.path.join(self.gw.tmp, "tlsrpt")
        self.audit("--tlsrpt", out, "--org", "Example Org",
                   "--contact", "mailto:tlsrpt@example.test", "mail.log", "mail.log.1")
        files = sorted(os.listdir(out))
        reports = {}
        for name in files:
            self.assertRegex(name, r"^example\.test!([a-z.]+)!\d+!\d+\.json$")
            with open(os.path.join(out, name)) as f:
                report = json.load(f)
            self.check_rfc8460(report)
            domain = report["policies"][0]["policy"]["policy-domain"]
            self.assertEqual(name.split("!")[1], domain)
            reports[domain] = report
        # c.test never tried TLS (a clear route): nothing to report there
        self.assertEqual(sorted(reports), ["a.test", "b.test", "d.test", "v.test"])
        summary = {d: r["policies"][0]["summary"] for d, r in reports.items()}
        self.assertEqual(summary["a.test"], {"total-successful-session-count": N_TLS,
                                             "total-failure-session-count": 0})
        self.assertEqual(summary["v.test"]["total-successful-session-count"], N_TLS)
        self.assertEqual(summary["b.test"]["total-successful-session-count"], N_PLAIN)
        self.assertEqual(summary["d.test"], {"total-successful-session-count": 0,
                                             "total-failure-session-count": N_PLAIN})
        details = reports["d.test"]["policies"][0]["failure-details"]
        self.assertEqual(len(details), 1)
        self.assertEqual(details[0]["result-type"], "starttls-not-supported")
        self.assertEqual(details[0]["receiving-ip"], "127.0.0.1")
        self.assertEqual(details[0]["sending-mta-ip"], "127.0.0.1")
        self.assertEqual(details[0]["failed-session-count"], N_PLAIN)
        for r in reports.values():
            self.assertEqual(r["organization-name"], "Example Org")
            self.assertEqual(r["contact-info"], "mailto:tlsrpt@example.test")
        self.assertEqual(len({r["report-id"] for r in reports.values()}), len(reports))


if __name__ == "__main__":
    unittest.main()
