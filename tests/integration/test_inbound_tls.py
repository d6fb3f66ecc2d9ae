"""Inbound TLS (SPEC section 2): each level (off / preferred / required, set
on the listener and overridden by a sender group) against a client that uses
STARTTLS, one that does not, and one whose handshake fails (TLS 1.1 only, no
shared cipher, garbage after the 220); SMTPS; the STARTTLS injection case
(CVE-2011-0411 class); the session reset after TLS; openssl s_client and
swaks.  Each asserts the replies, the Maildir and the mail-log lines."""

import os
import re
import ssl
import stat
import subprocess
import time
import unittest

from tlsgate_test import (CLIENT_NAME, HOSTNAME, ConnectionClosed, GatewayTestCase, ca_file,
                          client_context, simple_message, split_received)

QUEUED = re.compile(r"^250 2\.0\.0 Ok: queued as (\d+)$")
MUST_STARTTLS = "5.7.0 Must issue a STARTTLS command first"

# client source addresses (all of 127.0.0.0/8 is loopback)
SRC_DEFAULT = "127.0.0.1"   # group ALL: the listener's level
SRC_SG_REQUIRED = "127.0.0.2"
SRC_SG_OFF = "127.0.0.3"
SRC_SG_PREFERRED = "127.0.0.4"


class TLSLevelTest(GatewayTestCase):
    share_gateway = True
    listener_config = {
        "off": {"tls": "off", "hostname": "off.example.test"},
        "preferred": {"tls": "preferred"},
        "required": {"tls": "required"},
        "smtps": {"tls": "required", "implicit_tls": "yes", "interface": "SMTPS"},
    }
    sendergroups = [
        ("SGREQUIRED", {"listener": "preferred", "match": SRC_SG_REQUIRED,
                        "action": "accept", "tls": "required"}),
        ("SGOFF", {"listener": "preferred", "match": SRC_SG_OFF,
                   "action": "accept", "tls": "off"}),
        ("SGPREFERRED", {"listener": "required", "match": SRC_SG_PREFERRED,
                         "action": "accept", "tls": "preferred"}),
    ]

    # (name, listener, source address, level in force)
    CASES = [
        ("listener off", "off", SRC_DEFAULT, "off"),
        ("listener preferred", "preferred", SRC_DEFAULT, "preferred"),
        ("listener required", "required", SRC_DEFAULT, "required"),
        ("group required on preferred listener", "preferred", SRC_SG_REQUIRED, "required"),
        ("group off on preferred listener", "preferred", SRC_SG_OFF, "off"),
        ("group preferred on required listener", "required", SRC_SG_PREFERRED, "preferred"),
    ]

    def hostname(self, listener):
        return self.gw.listeners[listener]["hostname"]

    def open(self, listener, source):
        c = self.gw.connect(listener=listener, source=source)
        self.assertEqual(c.greeting.lines, ["220 %s ESMTP tlsgate" % self.hostname(listener)])
        return c

    def deliver(self, c, subject):
        """A transaction to user@example.test; returns the MID."""
        self.assertReply(c.cmd("MAIL FROM:<sender@example.org>"), 250, "2.1.0 Ok")
        self.assertReply(c.cmd("RCPT TO:<user@example.test>"), 250, "2.1.5 Ok")
        self.assertReply(c.cmd("DATA"), 354, "End data with <CR><LF>.<CR><LF>")
        msg = simple_message(subject)
        c.send(msg + b".\r\n")
        r = c.reply()
        self.assertReply(r, 250, QUEUED)
        return int(QUEUED.match(r.last).group(1)), msg

    def landed(self, subject):
        needle = ("Subject: %s\n" % subject).encode()
        for _ in range(50):
            for m in self.gw.maildir_messages(check_tmp=False):
                if needle in m:
                    return m
            time.sleep(0.05)
        self.fail("no message with subject %r in the Maildir" % subject)

    def assertNotLanded(self, subject):
        needle = ("Subject: %s\n" % subject).encode()
        for m in self.gw.maildir_messages(check_tmp=False):
            self.assertNotIn(needle, m)

    def assertReceived(self, msg, tls_client=None):
        received, rest = split_received(msg)
        self.assertIsNotNone(received, "no Received: header first:\n%r" % msg[:300])
        text = " ".join(received.decode().split())
        if tls_client is not None:
            proto = tls_client.sock.version()
            cipher = tls_client.sock.cipher()[0]
            self.assertIn("using %s with cipher %s" % (proto, cipher), text)
        else:
            self.assertIn("no TLS", text)
            self.assertNotIn("TLSv1", text)
        return rest

    # --- client uses STARTTLS --------------------------------------------
    def test_client_uses_starttls(self):
        for name, listener, src, level in self.CASES:
            with self.subTest(name):
                c = self.open(listener, src)
                r = c.ehlo()
                self.assertEqual(r.lines[0], "250-" + self.hostname(listener))
                if level == "off":
                    self.assertNotIn("250-STARTTLS", r.lines)
                    self.assertReply(c.cmd("STARTTLS"), 502, "5.5.1 STARTTLS not available")
                    c.cmd("QUIT")
                    continue
                self.assertIn("250-STARTTLS", r.lines)
                self.assertReply(c.starttls(), 220, "2.0.0 Ready to start TLS")
                r = c.ehlo()
                self.assertEqual(r.lines[0], "250-" + self.hostname(listener))
                self.assertNotIn("250-STARTTLS", r.lines)
                self.assertReply(c.cmd("STARTTLS"), 503, "5.5.1 Error: TLS already active")
                subject = "starttls %s" % name
                mid, sent = self.deliver(c, subject)
                self.assertReply(c.cmd("QUIT"), 221, "2.0.0 Bye")
                rest = self.assertReceived(self.landed(subject), c)
                self.assertEqual(rest, sent.replace(b"\r\n", b"\n"))
                log = self.gw.session_log(c.icid)
                self.assertIn("ICID %d TLS success protocol %s cipher %s"
                              % (c.icid, c.sock.version(), c.sock.cipher()[0]), log)
                self.assertFalse(any("TLS failed" in l for l in log), log)
                self.assertIn("MID %d done" % mid, log)

    # --- client does not use STARTTLS ------------------------------------
    def test_client_without_starttls(self):
        for name, listener, src, level in self.CASES:
            with self.subTest(name):
                c = self.open(listener, src)
                self.assertEqual(c.ehlo().code, 250)
                subject = "clear %s" % name
                if level == "required":
                    self.assertReply(c.cmd("MAIL FROM:<sender@example.org>"), 530, MUST_STARTTLS)
                    self.assertReply(c.cmd("RCPT TO:<user@example.test>"), 530, MUST_STARTTLS)
                    self.assertReply(c.cmd("DATA"), 530, MUST_STARTTLS)
                    self.assertReply(c.cmd("AUTH PLAIN AHVzZXIAcGFzcw=="), 530, MUST_STARTTLS)
                    self.assertReply(c.cmd("MAIL FROM:<sender@example.org>"), 530, MUST_STARTTLS)
                    # commands outside a transaction still work
                    self.assertReply(c.cmd("NOOP"), 250, "2.0.0 Ok")
                    self.assertReply(c.cmd("RSET"), 250, "2.0.0 Ok")
                    self.assertEqual(c.cmd("VRFY user").code, 252)
                    self.assertReply(c.cmd("QUIT"), 221, "2.0.0 Bye")
                    log = self.gw.session_log(c.icid)
                    req = "ICID %d TLS was required but remote host did not initiate it" % c.icid
                    self.assertEqual(log.count(req), 1, log)
                    self.assertTrue(any(l.startswith("ICID %d TLS failed: " % c.icid)
                                        for l in log), log)
                    self.assertFalse(any(l.startswith("Start MID") for l in log), log)
                    self.assertNotLanded(subject)
                else:
                    self.deliver(c, subject)
                    self.assertReply(c.cmd("QUIT"), 221, "2.0.0 Bye")
                    msg = self.landed(subject)
                    self.assertReceived(msg, None)
                    log = self.gw.session_log(c.icid)
                    self.assertFalse(any(" TLS " in l for l in log), log)

    def test_required_then_starttls_succeeds(self):
        c = self.open("required", SRC_DEFAULT)
        c.ehlo()
        self.assertReply(c.cmd("MAIL FROM:<sender@example.org>"), 530, MUST_STARTTLS)
        self.assertReply(c.starttls(), 220, "2.0.0 Ready to start TLS")
        c.ehlo()
        self.deliver(c, "required late starttls")
        c.cmd("QUIT")
        self.landed("required late starttls")

    # --- handshake failures ------------------------------------------------
    def failing_handshake(self, listener, src, context, server_hostname=HOSTNAME):
        """STARTTLS then a handshake that must fail; returns the client."""
        c = self.open(listener, src)
        c.ehlo()
        self.assertReply(c.cmd("STARTTLS"), 220, "2.0.0 Ready to start TLS")
        with self.assertRaises((ssl.SSLError, ConnectionError, ConnectionClosed, OSError)):
            c.sock = context.wrap_socket(c.sock, server_hostname=server_hostname)
        return c

    def assertFailedSession(self, c):
        log = self.gw.session_log(c.icid)
        failed = [l for l in log if l.startswith("ICID %d TLS failed: " % c.icid)]
        self.assertEqual(len(failed), 1, log)
        self.assertGreater(len(failed[0]), len("ICID %d TLS failed: " % c.icid), failed)
        self.assertFalse(any("TLS success" in l for l in log), log)
        self.assertFalse(any(l.startswith("Start MID") for l in log), log)
        self.assertRegex(log[-1], r"^ICID %d (close|lost)$" % c.icid)
        return failed[0]

    def tls_levels(self):
        return [case for case in self.CASES if case[3] != "off"]

    def test_handshake_fails_tls11_client(self):
        ctx = client_context(maximum=ssl.TLSVersion.TLSv1_1)
        for name, listener, src, level in self.tls_levels():
            with self.subTest(name):
                c = self.failing_handshake(listener, src, ctx)
                line = self.assertFailedSession(c)
                # the reason names the cause (the OpenSSL reason, as ESA does)
                self.assertRegex(line.lower(), r"protocol|version")

    def test_handshake_fails_no_shared_cipher(self):
        # TLS 1.2 only, RSA-authenticated suites only: the server key is EC.
        ctx = client_context(maximum=ssl.TLSVersion.TLSv1_2,
                             ciphers="ECDHE-RSA-AES128-GCM-SHA256:AES128-SHA")
        for name, listener, src, level in self.tls_levels():
            with self.subTest(name):
                c = self.failing_handshake(listener, src, ctx)
                line = self.assertFailedSession(c)
                self.assertIn("cipher", line.lower())

    def test_garbage_after_220_no_cleartext_fallback(self):
        for name, listener, src, level in self.tls_levels():
            with self.subTest(name):
                c = self.open(listener, src)
                c.ehlo()
                self.assertReply(c.cmd("STARTTLS"), 220, "2.0.0 Ready to start TLS")
                try:
                    c.send(b"EHLO " + CLIENT_NAME.encode() + b"\r\nMAIL FROM:<a@example.org>\r\n"
                           b"RCPT TO:<user@example.test>\r\nDATA\r\n")
                except OSError:
                    pass
                closed, data = c.wait_closed(5)
                self.assertTrue(closed, "connection still open after a failed handshake")
                # no clear-text SMTP after the 220: at most a TLS alert record
                self.assertNotIn(b"250", data)
                self.assertNotIn(b"354", data)
                if data:
                    self.assertEqual(data[:1], b"\x15", data)
                self.assertFailedSession(c)

    def test_client_closes_during_handshake(self):
        c = self.open("preferred", SRC_DEFAULT)
        c.ehlo()
        self.assertReply(c.cmd("STARTTLS"), 220, "2.0.0 Ready to start TLS")
        c.close()
        log = self.gw.session_log(c.icid)
        self.assertFalse(any("TLS success" in l for l in log), log)
        self.assertEqual(log[-1], "ICID %d lost" % c.icid)

    # --- protocol versions ---------------------------------------------------
    def test_tls12_client(self):
        ctx = client_context(maximum=ssl.TLSVersion.TLSv1_2)
        c = self.open("preferred", SRC_DEFAULT)
        c.ehlo()
        self.assertReply(c.starttls(ctx), 220, "2.0.0 Ready to start TLS")
        self.assertEqual(c.sock.version(), "TLSv1.2")
        c.ehlo()
        self.deliver(c, "tls12")
        c.cmd("QUIT")
        msg = self.landed("tls12")
        self.assertReceived(msg, c)
        log = self.gw.session_log(c.icid)
        self.assertIn("ICID %d TLS success protocol TLSv1.2 cipher %s"
                      % (c.icid, c.sock.cipher()[0]), log)

    def test_tls13_default_cipher_logged(self):
        c = self.open("preferred", SRC_DEFAULT)
        c.ehlo()
        c.starttls()
        self.assertEqual(c.sock.version(), "TLSv1.3")
        c.cmd("QUIT")
        log = self.gw.session_log(c.icid)
        self.assertIn("ICID %d TLS success protocol TLSv1.3 cipher %s"
                      % (c.icid, c.sock.cipher()[0]), log)

    def test_certificate_presented_is_the_configured_chain(self):
        c = self.open("preferred", SRC_DEFAULT)
        c.ehlo()
        c.starttls()   # verification against the test root needs the intermediate
        cert = c.sock.getpeercert()
        subject = dict(x[0] for x in cert["subject"])
        self.assertEqual(subject["commonName"], HOSTNAME)
        c.cmd("QUIT")

    # --- STARTTLS injection (CVE-2011-0411) and state reset ------------------
    def test_starttls_injection_rset(self):
        c = self.open("preferred", SRC_DEFAULT)
        c.ehlo()
        c.send(b"STARTTLS\r\nRSET\r\n")
        self.assertReply(c.reply(), 220, "2.0.0 Ready to start TLS")
        # exactly one reply in clear text: the injected RSET was not answered
        self.assertEqual(c.pending(0.5), b"")
        c.sock = client_context().wrap_socket(c.sock, server_hostname=HOSTNAME)
        r = c.ehlo()
        # the first reply read over TLS is the one to our EHLO, not to RSET
        self.assertEqual(r.lines[0], "250-" + HOSTNAME, r.text)
        self.assertReply(c.cmd("NOOP"), 250, "2.0.0 Ok")
        self.assertEqual(c.pending(0.3), b"")
        c.cmd("QUIT")

    def test_starttls_injection_mail(self):
        c = self.open("preferred", SRC_DEFAULT)
        c.ehlo()
        c.send(b"STARTTLS\r\nMAIL FROM:<evil@example.org>\r\nRCPT TO:<user@example.test>\r\n")
        self.assertReply(c.reply(), 220, "2.0.0 Ready to start TLS")
        self.assertEqual(c.pending(0.5), b"")
        c.sock = client_context().wrap_socket(c.sock, server_hostname=HOSTNAME)
        r = c.ehlo()
        self.assertEqual(r.lines[0], "250-" + HOSTNAME, r.text)
        # the injected MAIL was discarded: no transaction is open
        self.assertReply(c.cmd("RCPT TO:<user@example.test>"), 503,
                         "5.5.1 Error: need MAIL command")
        mid, _ = self.deliver(c, "after injection")
        c.cmd("QUIT")
        log = self.gw.session_log(c.icid)
        self.assertFalse(any("evil@example.org" in l for l in log), log)
        self.assertIn("MID %d ICID %d From: <sender@example.org>" % (mid, c.icid), log)

    def test_state_reset_after_tls(self):
        c = self.open("preferred", SRC_DEFAULT)
        c.ehlo()
        self.assertReply(c.starttls(), 220, "2.0.0 Ready to start TLS")
        # RFC 3207 4.2: the client must EHLO again
        self.assertReply(c.cmd("MAIL FROM:<sender@example.org>"), 503,
                         "5.5.1 Error: send HELO/EHLO first")
        c.ehlo()
        self.assertReply(c.cmd("MAIL FROM:<sender@example.org>"), 250, "2.1.0 Ok")

    def test_starttls_before_ehlo(self):
        c = self.open("preferred", SRC_DEFAULT)
        r = c.cmd("STARTTLS")
        # RFC 3207 allows it only after EHLO; either refused or started
        self.assertIn(r.code, (220, 503), r.text)
        c.close()

    # --- SMTPS ---------------------------------------------------------------
    def test_smtps(self):
        c = self.gw.connect(listener="smtps")
        self.assertTrue(c.tls)
        self.assertEqual(c.greeting.lines, ["220 %s ESMTP tlsgate" % HOSTNAME])
        r = c.ehlo()
        self.assertEqual(r.lines[0], "250-" + HOSTNAME)
        self.assertNotIn("250-STARTTLS", r.lines)
        self.assertReply(c.cmd("STARTTLS"), 503, "5.5.1 Error: TLS already active")
        mid, sent = self.deliver(c, "smtps")
        c.cmd("QUIT")
        rest = self.assertReceived(self.landed("smtps"), c)
        self.assertEqual(rest, sent.replace(b"\r\n", b"\n"))
        log = self.gw.session_log(c.icid)
        self.assertRegex(log[0], r"^New SMTP ICID %d interface SMTPS \(127\.0\.0\.1\) "
                         % c.icid)
        self.assertIn("ICID %d TLS success protocol %s cipher %s"
                      % (c.icid, c.sock.version(), c.sock.cipher()[0]), log)

    def test_smtps_plaintext_client(self):
        c = self.gw.connect(listener="smtps", implicit_tls=False, greeting=False)
        # a clear-text client gets no greeting; its EHLO is not a ClientHello
        try:
            c.send(b"EHLO " + CLIENT_NAME.encode() + b"\r\n")
        except OSError:
            pass
        closed, data = c.wait_closed(5)
        self.assertTrue(closed)
        self.assertNotIn(b"220 ", data)
        self.assertNotIn(b"250", data)
        log = self.gw.session_log(c.icid)
        self.assertTrue(any(l.startswith("ICID %d TLS failed: " % c.icid) for l in log), log)

    def test_smtps_swaks(self):
        r = self.gw.swaks(listener="smtps", tls="smtps",
                          args=["--header", "Subject: swaks smtps"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"250 2\.0\.0 Ok: queued as \d+")
        self.landed("swaks smtps")

    def test_smtps_s_client(self):
        r = self.gw.s_client(listener="smtps", input_text=(
            "EHLO %s\nMAIL FROM:<sender@example.org>\nRCPT TO:<user@example.test>\nDATA\n"
            "Subject: s_client smtps\n\nhello\n.\nQUIT\n" % CLIENT_NAME))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("220 %s ESMTP tlsgate" % HOSTNAME, r.stdout)
        self.assertRegex(r.stdout, r"250 2\.0\.0 Ok: queued as \d+")
        self.assertIn("221 2.0.0 Bye", r.stdout)
        self.landed("s_client smtps")
        self.gw.wait_for_log(r"^ICID \d+ TLS success protocol TLSv1\.3 cipher TLS_")

    # --- real clients ----------------------------------------------------------
    def test_s_client_starttls(self):
        r = self.gw.s_client(listener="required", input_text=(
            "EHLO %s\nMAIL FROM:<sender@example.org>\nRCPT TO:<user@example.test>\nDATA\n"
            "Subject: s_client starttls\n\nhello\n.\nQUIT\n" % CLIENT_NAME))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("250-" + HOSTNAME, r.stdout)
        self.assertRegex(r.stdout, r"250 2\.0\.0 Ok: queued as \d+")
        self.assertIn("221 2.0.0 Bye", r.stdout)
        msg = self.landed("s_client starttls")
        self.assertIn(b"\n\nhello\n", msg)

    def test_s_client_state_reset(self):
        # s_client sent EHLO before STARTTLS; a MAIL right after the
        # handshake must be refused until the client says EHLO again.
        r = self.gw.s_client(listener="preferred",
                             input_text="MAIL FROM:<sender@example.org>\nQUIT\n")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("503 5.5.1 Error: send HELO/EHLO first", r.stdout)

    def test_s_client_tls11_refused(self):
        r = self.gw.s_client(listener="preferred", input_text="QUIT\n",
                             args=["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"])
        self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertNotIn("221 2.0.0 Bye", r.stdout)

    def test_swaks_required_without_tls_refused(self):
        r = self.gw.swaks(listener="required", tls=None)
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn("530 5.7.0 Must issue a STARTTLS command first", r.stdout)

    def test_swaks_required_with_tls(self):
        r = self.gw.swaks(listener="required", args=["--header", "Subject: swaks required"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.landed("swaks required")

    def test_log_sendergroup_lines(self):
        for name, listener, src, level in self.CASES:
            with self.subTest(name):
                c = self.open(listener, src)
                c.cmd("QUIT")
                log = self.gw.session_log(c.icid)
                group = {SRC_SG_REQUIRED: "SGREQUIRED", SRC_SG_OFF: "SGOFF",
                         SRC_SG_PREFERRED: "SGPREFERRED"}.get(src)
                if group:
                    want = "ICID %d ACCEPT SG %s match %s SBRS None" % (c.icid, group, src)
                else:
                    want = "ICID %d ACCEPT SG ALL match ALL SBRS None" % c.icid
                self.assertEqual(log[1], want, log)


class VerifyClientTest(GatewayTestCase):
    """verify_client = yes on a sender group requests a client certificate,
    checks it against the trust store and logs the subject."""
    share_gateway = True
    sendergroups = [("CLIENTCERT", {"match": "127.0.0.5", "action": "relay",
                                    "verify_client": "yes"})]

    def session(self, cert):
        c = self.gw.connect(source="127.0.0.5")
        c.ehlo()
        self.assertReply(c.starttls(client_context(cert=cert)), 220)
        self.assertEqual(c.ehlo().code, 250)
        self.assertReply(c.cmd("MAIL FROM:<sender@example.org>"), 250, "2.1.0 Ok")
        c.cmd("QUIT")
        return c, self.gw.session_log(c.icid)

    def test_trusted_client_certificate(self):
        c, log = self.session("good")
        i = log.index("ICID %d TLS success protocol %s cipher %s"
                      % (c.icid, c.sock.version(), c.sock.cipher()[0]))
        extra = [l for l in log[i + 1:] if l.startswith("ICID %d " % c.icid)
                 and "close" not in l]
        self.assertTrue(any("mx.example.test" in l for l in extra), log)

    def test_no_client_certificate(self):
        # the certificate is requested, not required
        c, log = self.session(None)
        self.assertTrue(any(l.startswith("ICID %d TLS success " % c.icid) for l in log), log)


class RenegotiationTest(GatewayTestCase):
    """No client-initiated renegotiation (TLS 1.2 "R" in s_client)."""
    share_gateway = True

    def test_client_renegotiation_refused(self):
        cmd = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.gw.port,
               "-starttls", "smtp", "-tls1_2", "-crlf", "-CAfile", ca_file()]
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        try:
            for line, pause in (("EHLO %s\n" % CLIENT_NAME, 1.0), ("R\n", 1.0),
                                ("NOOP\n", 1.0), ("QUIT\n", 0.5)):
                p.stdin.write(line)
                p.stdin.flush()
                time.sleep(pause)
        except (BrokenPipeError, OSError):
            pass
        try:
            out, err = p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        except (BrokenPipeError, OSError):
            out, err = p.stdout.read(), p.stderr.read()
        self.assertIn("RENEGOTIATING", err)
        self.assertIn("250-" + HOSTNAME, out)
        # the renegotiation failed: the NOOP after it got no answer
        self.assertNotIn("250 2.0.0 Ok", out, out + err)


class DemoCertificateTest(GatewayTestCase):
    """certificate = demo and none in the store: made on first run (key
    0600) with a Warning that it cannot give verifiable TLS; kept on the
    next run."""
    listener_config = {"in": {"certificate": "demo"}}

    def test_demo_certificate(self):
        demo = os.path.join(self.gw.certs_dir, "demo")
        cert, key = os.path.join(demo, "cert.pem"), os.path.join(demo, "key.pem")
        self.assertTrue(os.path.isfile(cert), os.listdir(self.gw.certs_dir))
        self.assertTrue(os.path.isfile(key))
        self.assertEqual(stat.S_IMODE(os.stat(key).st_mode), 0o600)
        warnings = [t for lv, t in self.gw.log_lines() if lv == "Warning"]
        self.assertTrue(any("demo" in t.lower() for t in warnings), self.gw.raw_log())
        r = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-subject", "-issuer",
                            "-ext", "subjectAltName"], capture_output=True, text=True,
                           timeout=10)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(HOSTNAME, r.stdout)
        # it works for STARTTLS (unverifiable by design)
        c = self.gw.connect()
        c.ehlo()
        self.assertReply(c.starttls(client_context(verify=False)), 220)
        self.assertEqual(c.ehlo().lines[0], "250-" + HOSTNAME)
        c.cmd("QUIT")
        with open(cert, "rb") as f:
            first = f.read()
        # a restart keeps it
        self.assertEqual(self.gw.stop(), 0)
        self.gw.start()
        with open(cert, "rb") as f:
            self.assertEqual(f.read(), first)


class MinimumVersionTest(GatewayTestCase):
    """min_tls_version = TLSv1.3 refuses a TLS 1.2 client."""
    share_gateway = True
    gateway_config = {"min_tls_version": "TLSv1.3"}

    def test_tls12_refused(self):
        c = self.gw.connect()
        c.ehlo()
        self.assertReply(c.cmd("STARTTLS"), 220, "2.0.0 Ready to start TLS")
        with self.assertRaises((ssl.SSLError, ConnectionError, ConnectionClosed, OSError)):
            c.sock = client_context(maximum=ssl.TLSVersion.TLSv1_2).wrap_socket(
                c.sock, server_hostname=HOSTNAME)
        log = self.gw.session_log(c.icid)
        self.assertTrue(any(l.startswith("ICID %d TLS failed: " % c.icid) for l in log), log)

    def test_tls13_accepted(self):
        c = self.gw.connect()
        c.ehlo()
        self.assertReply(c.starttls(), 220, "2.0.0 Ready to start TLS")
        self.assertEqual(c.sock.version(), "TLSv1.3")
        c.cmd("QUIT")


class RSACertificateTest(GatewayTestCase):
    """A listener with an RSA certificate: TLS 1.2 ECDHE-RSA works."""
    share_gateway = True
    listener_config = {"in": {"certificate": "good-rsa"}}

    def test_tls12_ecdhe_rsa(self):
        c = self.gw.connect()
        c.ehlo()
        ctx = client_context(maximum=ssl.TLSVersion.TLSv1_2, ciphers="ECDHE-RSA-AES256-GCM-SHA384")
        self.assertReply(c.starttls(ctx), 220, "2.0.0 Ready to start TLS")
        self.assertEqual(c.sock.cipher()[0], "ECDHE-RSA-AES256-GCM-SHA384")
        c.cmd("QUIT")
        log = self.gw.session_log(c.icid)
        self.assertIn("ICID %d TLS success protocol TLSv1.2 cipher ECDHE-RSA-AES256-GCM-SHA384"
                      % c.icid, log)

    def test_no_small_finite_field_dh(self):
        # a DHE-only TLS 1.2 client gets a group of 2048 bits or more, or no
        # handshake at all ("dh key too small" is never the server's doing)
        r = self.gw.s_client(input_text="QUIT\n", quiet=False, args=[
            "-tls1_2", "-cipher", "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384"])
        m = re.search(r"Temp Key: DH, (\d+) bits", r.stdout + r.stderr)
        if r.returncode == 0 and m:
            self.assertGreaterEqual(int(m.group(1)), 2048, r.stderr)


if __name__ == "__main__":
    unittest.main()
