"""The mail log in the ESA text format, line for line, for whole sessions
(clear text and TLS, a relayed and a refused message, an aborted
transaction, a lost connection); the ctime-style timestamp; IDs unique and
increasing across a restart and across workers; an IPv6 listener."""

import os
import re
import threading
import time
import unittest

from tlsgate_test import (HOSTNAME, LOG_RE, GatewayTestCase, expected_rdns, ipv6_loopback,
                          simple_message)

QUEUED = re.compile(r"^250 2\.0\.0 Ok: queued as (\d+)$")


def new_line(icid, ip, interface="Data 1", local=None):
    name, verified = expected_rdns(ip)
    return ("New SMTP ICID %d interface %s (%s) address %s reverse dns host %s verified %s"
            % (icid, interface, local or ip, ip, name, verified))


class MailLogTest(GatewayTestCase):
    share_gateway = True
    sendergroups = [("RELAYLIST", {"match": "127.0.0.2", "action": "relay"})]

    def transaction(self, c, subject, rcpts=("user@example.test",)):
        replies = c.mail_transaction("sender@example.org", list(rcpts),
                                     simple_message(subject) + b".\r\n")
        self.assertReply(replies[-1], 250, QUEUED)
        return int(QUEUED.match(replies[-1].last).group(1))

    def test_full_session_clear_text(self):
        c = self.gw.connect()
        self.ehlo_ok(c)
        mid = self.transaction(c, "log clear")
        self.assertReply(c.cmd("QUIT"), 221, "2.0.0 Bye")
        n = c.icid
        size = len(simple_message("log clear"))
        self.assertEqual(self.gw.session_log(n), [
            new_line(n, "127.0.0.1"),
            "ICID %d ACCEPT SG ALL match ALL SBRS None" % n,
            "Start MID %d ICID %d" % (mid, n),
            "MID %d ICID %d From: <sender@example.org>" % (mid, n),
            "MID %d ICID %d RID 0 To: <user@example.test>" % (mid, n),
            "MID %d ready %d bytes from <sender@example.org>" % (mid, size),
            "MID %d done" % mid,
            "ICID %d close" % n,
        ])

    def test_full_session_tls(self):
        c = self.gw.connect()
        self.ehlo_ok(c)
        c.starttls()
        self.ehlo_ok(c)
        mid = self.transaction(c, "log tls", rcpts=("a@example.test", "b@sub.example.test"))
        self.assertReply(c.cmd("QUIT"), 221, "2.0.0 Bye")
        n = c.icid
        size = len(simple_message("log tls"))
        self.assertEqual(self.gw.session_log(n), [
            new_line(n, "127.0.0.1"),
            "ICID %d ACCEPT SG ALL match ALL SBRS None" % n,
            "ICID %d TLS success protocol %s cipher %s" % (n, c.sock.version(),
                                                           c.sock.cipher()[0]),
            "Start MID %d ICID %d" % (mid, n),
            "MID %d ICID %d From: <sender@example.org>" % (mid, n),
            "MID %d ICID %d RID 0 To: <a@example.test>" % (mid, n),
            "MID %d ICID %d RID 1 To: <b@sub.example.test>" % (mid, n),
            "MID %d ready %d bytes from <sender@example.org>" % (mid, size),
            "MID %d done" % mid,
            "ICID %d close" % n,
        ])

    def test_relay_session_two_messages(self):
        c = self.gw.connect(source="127.0.0.2")
        self.ehlo_ok(c)
        m1 = self.transaction(c, "relay one", rcpts=("x@example.org",))
        m2 = self.transaction(c, "relay two", rcpts=("y@example.net",))
        c.cmd("QUIT")
        n = c.icid
        self.assertGreater(m2, m1)
        s1, s2 = len(simple_message("relay one")), len(simple_message("relay two"))
        self.assertEqual(self.gw.session_log(n), [
            new_line(n, "127.0.0.2", local="127.0.0.1"),
            "ICID %d RELAY SG RELAYLIST match 127.0.0.2 SBRS None" % n,
            "Start MID %d ICID %d" % (m1, n),
            "MID %d ICID %d From: <sender@example.org>" % (m1, n),
            "MID %d ICID %d RID 0 To: <x@example.org>" % (m1, n),
            "MID %d ready %d bytes from <sender@example.org>" % (m1, s1),
            "MID %d done" % m1,
            "Start MID %d ICID %d" % (m2, n),
            "MID %d ICID %d From: <sender@example.org>" % (m2, n),
            "MID %d ICID %d RID 0 To: <y@example.net>" % (m2, n),
            "MID %d ready %d bytes from <sender@example.org>" % (m2, s2),
            "MID %d done" % m2,
            "ICID %d close" % n,
        ])

    def test_null_sender(self):
        c = self.gw.connect()
        self.ehlo_ok(c)
        replies = c.mail_transaction("", ["user@example.test"], simple_message("bounce") + b".\r\n")
        self.assertReply(replies[-1], 250, QUEUED)
        mid = int(QUEUED.match(replies[-1].last).group(1))
        c.cmd("QUIT")
        log = self.gw.session_log(c.icid)
        self.assertIn("MID %d ICID %d From: <>" % (mid, c.icid), log)
        self.assertIn("MID %d ready %d bytes from <>" % (mid, len(simple_message("bounce"))), log)

    def test_rset_aborts_transaction(self):
        c = self.gw.connect()
        self.ehlo_ok(c)
        self.assertReply(c.cmd("MAIL FROM:<sender@example.org>"), 250)
        self.assertReply(c.cmd("RCPT TO:<user@example.test>"), 250)
        self.assertReply(c.cmd("RSET"), 250, "2.0.0 Ok")
        c.cmd("QUIT")
        n = c.icid
        log = self.gw.session_log(n)
        start = [l for l in log if l.startswith("Start MID")]
        self.assertEqual(len(start), 1, log)
        mid = int(start[0].split()[2])
        self.assertEqual(log[2:], [
            "Start MID %d ICID %d" % (mid, n),
            "MID %d ICID %d From: <sender@example.org>" % (mid, n),
            "MID %d ICID %d RID 0 To: <user@example.test>" % (mid, n),
            log[5],
            "ICID %d close" % n,
        ])
        self.assertRegex(log[5], r"^MID %d aborted: \S" % mid)

    def test_connection_lost_in_data(self):
        c = self.gw.connect()
        self.ehlo_ok(c)
        self.assertReply(c.cmd("MAIL FROM:<sender@example.org>"), 250)
        self.assertReply(c.cmd("RCPT TO:<user@example.test>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(b"Subject: lost\r\n\r\nhalf a message")
        time.sleep(0.2)
        n = c.icid
        c.close()
        log = self.gw.session_log(n)
        self.assertEqual(log[-1], "ICID %d lost" % n)
        self.assertRegex(log[-2], r"^MID \d+ aborted: \S")
        self.assertFalse(any(re.match(r"^MID \d+ (ready|done)", l) for l in log), log)
        self.assertFalse(any(b"Subject: lost" in m for m in self.gw.maildir_messages()))

    def test_abrupt_disconnect_is_lost(self):
        c = self.gw.connect()
        self.ehlo_ok(c)
        n = c.icid
        c.close()
        log = self.gw.session_log(n)
        self.assertEqual(log[-1], "ICID %d lost" % n)

    def test_refused_message_logged(self):
        c = self.gw.connect()
        self.ehlo_ok(c)
        self.assertReply(c.cmd("MAIL FROM:<sender@example.org>"), 250)
        self.assertReply(c.cmd("RCPT TO:<user@example.test>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(b"Subject: bare\r\n\r\nbad\nline\r\n.\r\n")
        self.assertReply(c.reply(), 550)
        c.cmd("QUIT")
        log = self.gw.session_log(c.icid)
        self.assertRegex(log[-2], r"^MID \d+ aborted: \S")
        self.assertEqual(log[-1], "ICID %d close" % c.icid)

    def test_timestamp_format(self):
        c = self.gw.connect()
        c.cmd("QUIT")
        self.gw.session_log(c.icid)
        now = time.time()
        raw = self.gw.raw_log().splitlines()
        self.assertTrue(raw)
        for line in raw:
            m = LOG_RE.match(line)
            self.assertIsNotNone(m, line)
            stamp = m.group(1)
            t = time.mktime(time.strptime(stamp, "%a %b %d %H:%M:%S %Y"))
            self.assertLess(abs(t - now), 120, line)
            # ctime style: the day is space-padded, never zero-padded
            self.assertEqual(stamp, time.ctime(t), line)

    def test_peer_text_cannot_forge_lines(self):
        c = self.gw.connect()
        r = c.cmd("EHLO evil.example\rICID 999999 close")
        self.assertGreaterEqual(r.code, 500)
        c.cmd("QUIT")
        self.gw.session_log(c.icid)
        self.assertNotIn("ICID 999999 close", self.gw.log_texts())

    def test_ids_unique_and_increasing(self):
        icids, mids = [], []
        for i in range(4):
            c = self.gw.connect()
            self.ehlo_ok(c)
            mids.append(self.transaction(c, "ids %d" % i))
            c.cmd("QUIT")
            icids.append(c.icid)
        self.assertEqual(icids, sorted(set(icids)))
        self.assertEqual(mids, sorted(set(mids)))


class RestartTest(GatewayTestCase):
    """IDs are persisted in state_dir: a second run hands out greater ones."""

    def one_session(self):
        c = self.gw.connect()
        self.ehlo_ok(c)
        replies = c.mail_transaction("sender@example.org", ["user@example.test"],
                                     simple_message("restart") + b".\r\n")
        self.assertReply(replies[-1], 250, QUEUED)
        c.cmd("QUIT")
        c.close()
        n = c.icid
        self.gw.session_log(n)
        return n, int(QUEUED.match(replies[-1].last).group(1))

    def test_ids_increase_across_restart(self):
        icid1, mid1 = self.one_session()
        self.assertEqual(self.gw.stop(), 0)
        self.gw.assert_clean_stderr()
        self.assertTrue(os.listdir(self.gw.state_dir))
        self.gw.start()
        icid2, mid2 = self.one_session()
        self.assertGreater(icid2, icid1)
        self.assertGreater(mid2, mid1)
        # and once more, after an abrupt end (SIGKILL): still no reuse
        self.gw.kill()
        self.gw.start()
        icid3, mid3 = self.one_session()
        self.assertGreater(icid3, icid2)
        self.assertGreater(mid3, mid2)


class WorkersTest(GatewayTestCase):
    """workers = 2: sessions spread over two loops on one port; IDs unique."""
    share_gateway = True
    gateway_config = {"workers": "2"}

    def test_concurrent_sessions_unique_ids(self):
        results, errors = [], []

        def run(i):
            try:
                c = self.gw.connect()
                c.ehlo()
                replies = c.mail_transaction("sender@example.org", ["user@example.test"],
                                             simple_message("worker %d" % i) + b".\r\n")
                mid = int(QUEUED.match(replies[-1].last).group(1))
                c.cmd("QUIT")
                results.append((c.local_ip, mid))
            except Exception as e:  # reported below
                errors.append(repr(e))

        threads = [threading.Thread(target=run, args=(i,)) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertEqual(errors, [])
        mids = [m for _, m in results]
        self.assertEqual(len(set(mids)), 12, mids)
        self.assertEqual(len(self.gw.wait_messages(12)), 12)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            texts = self.gw.log_texts()
            closes = [t for t in texts if re.match(r"^ICID \d+ close$", t)]
            if len(closes) >= 12:
                break
            time.sleep(0.1)
        news = [int(t.split()[3]) for t in texts if t.startswith("New SMTP ICID ")]
        self.assertEqual(len(news), len(set(news)), news)
        starts = [int(t.split()[2]) for t in texts if t.startswith("Start MID ")]
        self.assertEqual(len(starts), len(set(starts)), starts)


@unittest.skipUnless(ipv6_loopback(), "no IPv6 on the loopback interface")
class IPv6Test(GatewayTestCase):
    share_gateway = True
    listener_config = {"in6": {"address": "[::1]:{port}", "interface": "Data 6"},
                       "in4": {}}
    sendergroups = [("V6RELAY", {"match": "::1", "action": "relay"})]

    def test_ipv6_session(self):
        c = self.gw.connect(listener="in6")
        self.assertEqual(c.greeting.lines, ["220 %s ESMTP tlsgate" % HOSTNAME])
        self.ehlo_ok(c)
        c.starttls(server_hostname=HOSTNAME)
        self.ehlo_ok(c)
        replies = c.mail_transaction("sender@example.org", ["user@example.org"],
                                     simple_message("over ipv6") + b".\r\n")
        self.assertReply(replies[-1], 250, QUEUED)
        mid = int(QUEUED.match(replies[-1].last).group(1))
        c.cmd("QUIT")
        n = c.icid
        log = self.gw.session_log(n)
        self.assertEqual(log[0], new_line(n, "::1", interface="Data 6"))
        self.assertEqual(log[1], "ICID %d RELAY SG V6RELAY match ::1 SBRS None" % n)
        self.assertIn("MID %d done" % mid, log)
        msgs = self.gw.wait_messages(1)
        self.assertTrue(any(b"Subject: over ipv6\n" in m for m in msgs))

    def test_ipv4_listener_alongside(self):
        c = self.gw.connect(listener="in4")
        self.assertEqual(c.greeting.code, 220)
        self.ehlo_ok(c)
        self.assertReply(c.cmd("MAIL FROM:<sender@example.org>"), 250)
        # 127.0.0.1 is not in V6RELAY
        self.assertReply(c.cmd("RCPT TO:<user@example.org>"), 550, "5.7.1 Relaying denied")

    def test_ipv6_swaks(self):
        r = self.gw.swaks(listener="in6", args=["--header", "Subject: swaks ipv6"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()
