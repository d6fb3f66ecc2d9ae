"""Signals: SIGHUP reloads atomically (a good file changes what new sessions
see, sessions in flight keep their snapshot; a bad file changes nothing and
logs a Warning), SIGUSR1 reopens the mail log after rotation, SIGTERM stops
accepting, lets a transaction in flight finish within shutdown_timeout,
answers idle sessions 421 4.3.2, leaves nothing half-written in the Maildir
and exits 0."""

import os
import re
import signal
import socket
import ssl
import time
import unittest

from tlsgate_test import (HOSTNAME, GatewayTestCase, simple_message)

QUEUED = re.compile(r"^250 2\.0\.0 Ok: queued as (\d+)$")
SHUTDOWN = "4.3.2 Service shutting down"
NEW_HOST = "mx2.example.test"


class ReloadTest(GatewayTestCase):

    def reload(self, text):
        mark = self.gw.log_count()
        self.gw.write_config(text)
        self.gw.send_signal(signal.SIGHUP)
        return mark

    def test_sighup_good_file(self):
        before = self.gw.connect()
        self.assertEqual(before.greeting.lines, ["220 %s ESMTP tlsgate" % HOSTNAME])
        self.gw.listeners["in"]["hostname"] = NEW_HOST
        mark = self.reload(self.gw.config_text())
        self.gw.wait_for_log(r"^configuration reloaded from %s$" % re.escape(self.gw.config_path),
                             since=mark, level="Info")
        after = self.gw.connect()
        self.assertEqual(after.greeting.lines, ["220 %s ESMTP tlsgate" % NEW_HOST])
        self.assertEqual(after.ehlo().lines[0], "250-" + NEW_HOST)
        # the session in flight keeps its snapshot
        self.assertEqual(before.ehlo().lines[0], "250-" + HOSTNAME)
        self.assertTrue(self.gw.alive())

    def test_sighup_changes_sendergroup(self):
        c = self.gw.connect()
        self.ehlo_ok(c)
        self.gw.sendergroups = [("BLOCKED", {"match": "127.0.0.1", "action": "reject"})]
        mark = self.reload(self.gw.config_text())
        self.gw.wait_for_log(r"^configuration reloaded from ", since=mark)
        d = self.gw.connect()
        self.assertEqual(d.greeting.lines, ["554 5.7.1 Access denied"])
        # the old session still accepts mail under the old policy
        replies = c.mail_transaction("sender@example.org", ["user@example.test"],
                                     simple_message("old snapshot") + b".\r\n")
        self.assertReply(replies[-1], 250, QUEUED)
        d.cmd("QUIT")
        log = self.gw.session_log(d.icid)
        self.assertEqual(log[1], "ICID %d REJECT SG BLOCKED match 127.0.0.1 SBRS None" % d.icid)

    def test_sighup_bad_file_changes_nothing(self):
        good = self.gw.config_text()
        bad = good.replace("hostname = %s" % HOSTNAME, "hostname = %s\nfrobnicate = yes"
                           % NEW_HOST, 1)
        self.assertNotEqual(good, bad)
        mark = self.reload(bad)
        m = self.gw.wait_for_log(r"^configuration reload failed: ", since=mark, level="Warning")
        self.assertTrue(m)
        self.assertTrue(self.gw.alive())
        c = self.gw.connect()
        self.assertEqual(c.greeting.lines, ["220 %s ESMTP tlsgate" % HOSTNAME])
        self.ehlo_ok(c)
        self.assertFalse(any("configuration reloaded" in t for t in self.gw.log_texts(mark)))
        # a later good file still reloads
        self.gw.listeners["in"]["hostname"] = NEW_HOST
        mark = self.reload(self.gw.config_text())
        self.gw.wait_for_log(r"^configuration reloaded from ", since=mark)
        self.assertEqual(self.gw.connect().greeting.lines, ["220 %s ESMTP tlsgate" % NEW_HOST])

    def test_sighup_changes_tls_level(self):
        self.gw.listeners["in"]["tls"] = "required"
        mark = self.reload(self.gw.config_text())
        self.gw.wait_for_log(r"^configuration reloaded from ", since=mark)
        c = self.gw.connect()
        self.ehlo_ok(c)
        self.assertReply(c.cmd("MAIL FROM:<sender@example.org>"), 530,
                         "5.7.0 Must issue a STARTTLS command first")

    def test_sighup_new_certificate(self):
        def presented():
            c = self.gw.connect()
            c.ehlo()
            c.starttls()
            der = c.sock.getpeercert(binary_form=True)
            c.cmd("QUIT")
            return der

        def first_der(name):
            with open(os.path.join(self.gw.certs_dir, name, "cert.pem")) as f:
                pem = f.read()
            end = "-----END CERTIFICATE-----"
            return ssl.PEM_cert_to_DER_cert(pem[:pem.index(end) + len(end)] + "\n")

        self.assertEqual(presented(), first_der("good"))
        self.gw.listeners["in"]["certificate"] = "good-rsa"
        mark = self.reload(self.gw.config_text())
        self.gw.wait_for_log(r"^configuration reloaded from ", since=mark)
        self.assertEqual(presented(), first_der("good-rsa"))

    def test_sighup_unreadable_file(self):
        mark = self.gw.log_count()
        text = self.gw.config_text()
        os.unlink(self.gw.config_path)
        self.gw.send_signal(signal.SIGHUP)
        self.gw.wait_for_log(r"^configuration reload failed: ", since=mark, level="Warning")
        self.assertTrue(self.gw.alive())
        self.assertEqual(self.gw.connect().greeting.code, 220)
        self.gw.write_config(text)

    def test_sighup_bad_certificate_changes_nothing(self):
        self.gw.listeners["in"]["certificate"] = "nosuchcert"
        self.gw.listeners["in"]["hostname"] = NEW_HOST
        mark = self.reload(self.gw.config_text())
        self.gw.wait_for_log(r"^configuration reload failed: ", since=mark, level="Warning")
        c = self.gw.connect()
        self.assertEqual(c.greeting.lines, ["220 %s ESMTP tlsgate" % HOSTNAME])
        c.ehlo()
        self.assertReply(c.starttls(), 220)

    def test_many_reloads_under_traffic(self):
        for i in range(5):
            self.gw.listeners["in"]["hostname"] = "mx%d.example.test" % i
            mark = self.reload(self.gw.config_text())
            c = self.gw.connect()
            self.assertEqual(c.greeting.code, 220)
            self.ehlo_ok(c, c.greeting.last.split()[1])
            self.gw.wait_for_log(r"^configuration reloaded from ", since=mark)
        self.assertEqual(self.gw.connect().greeting.lines,
                         ["220 mx4.example.test ESMTP tlsgate"])


class LogReopenTest(GatewayTestCase):

    def session(self):
        c = self.gw.connect()
        c.cmd("QUIT")
        return c

    def test_sigusr1_reopens_log(self):
        first = self.session()
        self.gw.session_log(first.icid)
        rotated = self.gw.maillog + ".1"
        os.rename(self.gw.maillog, rotated)
        self.gw.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 5
        while not os.path.exists(self.gw.maillog) and time.monotonic() < deadline:
            time.sleep(0.05)
        second = self.session()
        self.gw.wait_for_log(r"^ICID %d close$" % second.icid)
        new_texts = [t for _, t in self.gw.log_lines()]
        old_texts = [t for _, t in self.gw.log_lines(rotated)]
        self.assertIn("ICID %d close" % first.icid, old_texts)
        self.assertFalse(any(re.search(r"\bICID %d\b" % second.icid, t) for t in old_texts))
        self.assertTrue(any(t.startswith("New SMTP ICID %d " % second.icid) for t in new_texts))
        self.assertFalse(any(re.search(r"\bICID %d\b" % first.icid, t) for t in new_texts))

    def test_sigusr1_without_rotation(self):
        self.session()
        self.gw.send_signal(signal.SIGUSR1)
        c = self.session()
        self.gw.wait_for_log(r"^ICID %d close$" % c.icid)
        self.assertTrue(self.gw.alive())


class ShutdownTest(GatewayTestCase):
    gateway_config = {"shutdown_timeout": "3"}

    def in_data(self, subject):
        c = self.gw.connect()
        self.ehlo_ok(c)
        self.assertReply(c.cmd("MAIL FROM:<sender@example.org>"), 250)
        self.assertReply(c.cmd("RCPT TO:<user@example.test>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(b"Subject: %s\r\n\r\nfirst half\r\n" % subject.encode())
        time.sleep(0.2)
        return c

    def assertRefusesConnections(self, timeout=3):
        deadline = time.monotonic() + timeout
        while True:
            try:
                s = socket.create_connection(("127.0.0.1", self.gw.port), timeout=1)
            except OSError:
                return
            s.close()
            if time.monotonic() > deadline:
                self.fail("still accepting connections after SIGTERM")
            time.sleep(0.1)

    def test_sigterm_idle_session(self):
        idle = self.gw.connect()
        self.ehlo_ok(idle)
        fresh = self.gw.connect()   # not even EHLO yet
        self.gw.send_signal(signal.SIGTERM)
        self.assertReply(idle.reply(5), 421, SHUTDOWN)
        self.assertClosed(idle)
        self.assertReply(fresh.reply(5), 421, SHUTDOWN)
        self.assertClosed(fresh)
        self.assertEqual(self.gw.wait_exit(timeout=10), 0)
        self.assertEqual(self.gw.maildir_messages(), [])

    def test_sigterm_during_data_finishes(self):
        c = self.in_data("finishes")
        idle = self.gw.connect()
        self.ehlo_ok(idle)
        self.gw.send_signal(signal.SIGTERM)
        self.assertReply(idle.reply(5), 421, SHUTDOWN)
        self.assertRefusesConnections()
        self.assertTrue(self.gw.alive(), "exited before the transaction in flight finished")
        c.send(b"second half\r\n.\r\n")
        r = c.reply(5)
        self.assertReply(r, 250, QUEUED)
        # after the transaction the session is ended
        try:
            r2 = c.cmd("NOOP", timeout=5)
            self.assertIn(r2.code, (421, 221), r2.text)
        except (ConnectionError, OSError):
            pass
        self.assertEqual(self.gw.wait_exit(timeout=10), 0)
        msgs = self.gw.maildir_messages()
        self.assertEqual(len(msgs), 1)
        self.assertIn(b"first half\nsecond half\n", msgs[0])
        texts = self.gw.log_texts()
        mid = int(QUEUED.match(r.last).group(1))
        self.assertIn("MID %d done" % mid, texts)

    def test_sigterm_during_data_times_out(self):
        c = self.in_data("half written")
        start = time.monotonic()
        self.gw.send_signal(signal.SIGTERM)
        r = c.reply(10)
        elapsed = time.monotonic() - start
        self.assertReply(r, 421, SHUTDOWN)
        self.assertLess(elapsed, 6.0)
        self.assertClosed(c)
        self.assertEqual(self.gw.wait_exit(timeout=10), 0)
        self.assertEqual(self.gw.maildir_messages(check_tmp=True), [])
        texts = self.gw.log_texts()
        self.assertTrue(any(re.match(r"^MID \d+ aborted: ", t) for t in texts), texts)
        self.assertFalse(any(re.match(r"^MID \d+ done$", t) for t in texts), texts)

    def test_sigterm_with_tls_session(self):
        c = self.gw.connect()
        self.ehlo_ok(c)
        c.starttls()
        c.ehlo()
        self.gw.send_signal(signal.SIGTERM)
        self.assertReply(c.reply(5), 421, SHUTDOWN)
        self.assertEqual(self.gw.wait_exit(timeout=10), 0)

    def test_sigterm_no_sessions(self):
        start = time.monotonic()
        self.assertEqual(self.gw.stop(timeout=10), 0)
        self.assertLess(time.monotonic() - start, 3.0)


if __name__ == "__main__":
    unittest.main()
