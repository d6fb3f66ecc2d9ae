"""Interop: Postfix as the receiving MTA behind the gateway (issue 3).  A
private Postfix instance (its own config, queue and data directories in a
temporary directory, started with "postfix -c DIR start") accepts mail for
example.net into a Maildir, with STARTTLS on the test CA's "good"
certificate; two more smtpd services present the wrong-name certificate
and no STARTTLS at all.  MX delivery with required-verify, session reuse,
a real MTA's rejection passed through, the levels that must refuse, and a
large message streamed through."""

import os
import re
import unittest

from peers import OutboundTestCase, PostfixUpstream, cert_paths, destination, postfix_available
from peers import route
import tlsgate_test as tt

MX_HOSTS = """\
example.net 10 mx.example.test
mx.example.test A 127.0.0.1
"""
QUEUED = re.compile(r"^250 2\.0\.0 Ok: queued as ([0-9A-Za-z]+)$")


class PostfixTest(OutboundTestCase):
    mx_peer = "postfix"
    mx_hosts = MX_HOSTS

    @classmethod
    def make_peers(cls):
        if not postfix_available():
            raise unittest.SkipTest("postfix is not installed (tools/deps installs it)")
        if os.geteuid() != 0:
            raise unittest.SkipTest("a private Postfix instance needs root")
        cert, key = cert_paths("wrongname")
        cls.add_peer("postfix", PostfixUpstream(mydestination=(
            "example.net, clear.example.net, wrongname.example.net, notls.example.net"), smtpds={
            "smtpd": {},
            "wrongname": {"smtpd_tls_cert_file": cert, "smtpd_tls_key_file": key},
            "notls": {"smtpd_tls_security_level": "none"},
        }))

    @classmethod
    def outbound_config(cls):
        pf = cls.peers["postfix"]
        return (destination("example.net", "required-verify")
                + route("clear", "clear.example.net", pf.port, tls="none")
                + route("denied", "relaydenied.example", pf.port, tls="required")
                + route("wrongname", "wrongname.example.net", pf.port_of("wrongname"),
                        tls="required-verify")
                + route("notls", "notls.example.net", pf.port_of("notls"), tls="required"))

    def setUp(self):
        super().setUp()
        self.pf = self.peers["postfix"]
        self.before = len(self.pf.maildir_messages())

    def new_messages(self, count, timeout=tt.TIMEOUT):
        return self.pf.wait_messages(self.before + count, timeout)[self.before:]

    def assertQueuedAtPostfix(self, reply):
        m = QUEUED.match(reply.last)
        self.assertTrue(m, reply)
        qid = m.group(1)
        self.assertTrue(self.pf.wait_log(r"postfix/virtual\[\d+\]: %s: to=<[^>]+>, relay=virtual, "
                                         r".*status=sent" % qid),
                        "Postfix did not deliver %s; its log:\n%s" % (qid, self.pf.log_text()))
        return qid

    def test_mx_delivery_required_verify(self):
        mark = self.mark()
        c, replies = self.transaction(["user@example.net"], message=tt.simple_message("via mx"))
        c.cmd("QUIT")
        qid = self.assertQueuedAtPostfix(replies[-1])
        msgs = self.new_messages(1)
        self.assertEqual(len(msgs), 1)
        msg = msgs[0]
        self.assertIn(b"Subject: via mx\n", msg)
        # Postfix's trace header: the gateway came over TLS 1.2+
        head = msg.split(b"\n\n", 1)[0].decode()
        self.assertRegex(head, r"Received: from gw\.example\.test \(localhost \[127\.0\.0\.1\]\)"
                               r"\n\t\(using TLSv1\.[23] with cipher ")
        self.assertRegex(head, r"by mx\.example\.test \(Postfix\) with ESMTPS id %s" % qid)
        # then the gateway's own
        self.assertRegex(head, r"\nReceived: from client\.example\.test ")
        d = self.dcids(self.pf.port, mark)[0]
        lines = [t for _, t in self.dcid_log(d, mark)]
        self.assertIn("DCID %d TLS verify ok host mx.example.test policy required-verify" % d,
                      lines)
        self.assertTrue(any(re.match(r"DCID %d TLS success protocol TLSv1\.[23] cipher " % d, t)
                            for t in lines), lines)
        m = self.gw.wait_for_log(r"^Message done DCID %d MID (\d+) to RID \[0\]$" % d, since=mark)
        self.assertIn("MID %s RID [0] Response '2.0.0 Ok: queued as %s'" % (m.group(1), qid),
                      self.gw.log_texts(mark))
        self.assertTrue(self.pf.wait_log(r"TLS connection established from "
                                         r"localhost\[127\.0\.0\.1\]: TLSv1\.[23]"))

    def test_session_reused(self):
        connect = re.compile(r"postfix/smtpd/smtpd\[\d+\]: connect from localhost\[127\.0\.0\.1\]")
        mark = self.mark()
        connects = len(connect.findall(self.pf.log_text()))
        c, replies = self.transaction(["a@example.net"], message=tt.simple_message("one"))
        self.assertQueuedAtPostfix(replies[-1])
        _, replies = self.transaction(["b@example.net"], client=c, message=tt.simple_message("two"))
        self.assertQueuedAtPostfix(replies[-1])
        c.cmd("QUIT")
        msgs = self.new_messages(2)
        self.assertEqual(sorted(re.search(rb"Subject: (\w+)", m).group(1) for m in msgs),
                         [b"one", b"two"])
        self.assertEqual(len(self.dcids(self.pf.port, mark)), 1)
        self.assertTrue(self.pf.wait_log(r"disconnect from localhost\[127\.0\.0\.1\] ehlo=2 "
                                         r"starttls=1 mail=2 rcpt=2 data=2 .*quit=1"),
                        self.pf.log_text())
        self.assertEqual(len(connect.findall(self.pf.log_text())) - connects, 1,
                         "one Postfix session for both messages")

    def test_clear_route(self):
        c, replies = self.transaction(["user@clear.example.net"], message=tt.simple_message("clr"))
        c.cmd("QUIT")
        qid = self.assertQueuedAtPostfix(replies[-1])
        head = self.new_messages(1)[0].split(b"\n\n", 1)[0].decode()
        self.assertRegex(head, r"(?m)^Received: from gw\.example\.test "
                               r"\(localhost \[127\.0\.0\.1\]\)"
                               r"\n\tby mx\.example\.test \(Postfix\) with ESMTP id %s" % qid)
        self.assertNotIn("using TLS", head.split("\nReceived: from client")[0])

    def test_rejection_passed_through(self):
        mark = self.mark()
        c = self.client()
        self.assertReply(c.cmd("MAIL FROM:<sender@example.org>"), 250)
        r = c.cmd("RCPT TO:<user@relaydenied.example>")
        self.assertEqual(r.lines, ["554 5.7.1 <user@relaydenied.example>: Relay access denied"])
        c.cmd("QUIT")
        d = self.dcids(self.pf.port, mark)[0]
        self.gw.wait_for_log(r"^Bounced: DCID %d MID \d+ to RID 0 - 554 - 5\.7\.1 "
                             r"<user@relaydenied\.example>: Relay access denied$" % d, since=mark)
        self.assertEqual(self.new_messages(1, timeout=0.5), [])

    def test_required_verify_wrong_name_refused(self):
        c, replies = self.transaction(["user@wrongname.example.net"])
        c.cmd("QUIT")
        self.assertReply(replies[-1], 451, re.compile(
            r"^451 4\.7\.5 Delivery to wrongname\.example\.net failed: certificate verification "
            r"failed \(certificate name does not match localhost"))
        self.assertEqual(self.new_messages(1, timeout=0.5), [])
        self.assertNotRegex(self.pf.log_text(), r"postfix/wrongname/smtpd\[\d+\]: [0-9A-F]+: "
                                                r"client=")

    def test_required_without_starttls_refused(self):
        c, replies = self.transaction(["user@notls.example.net"])
        c.cmd("QUIT")
        self.assertReply(replies[-1], 451, "4.7.4 Delivery to notls.example.net failed: TLS "
                         "required but not offered (STARTTLS not offered)")
        self.assertEqual(self.new_messages(1, timeout=0.5), [])

    def test_large_message(self):
        line = b"The quick brown fox jumps over the lazy dog 0123456789.\r\n"
        n = 30000  # ~1.7 MB
        c, replies = self.transaction(["big@example.net"],
                                      message=tt.simple_message("big", "") + line * n)
        c.cmd("QUIT")
        self.assertQueuedAtPostfix(replies[-1])
        msg = self.new_messages(1)[0]
        self.assertEqual(msg.count(line.replace(b"\r\n", b"\n")), n)


if __name__ == "__main__":
    unittest.main()
