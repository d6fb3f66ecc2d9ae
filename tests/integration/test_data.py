"""DATA: SMTP smuggling (a bare CR or LF anywhere refuses the message and
only <CRLF>.<CRLF> ends it), dot-stuffing, NUL bytes, the text-line limit,
SIZE (announced and enforced while data streams), the recipient limit, the
Maildir file (Received header first, LF line ends, body intact, nothing in
tmp/), a write failure (451 4.3.0, nothing in new/), and a large message."""

import os
import re
import shutil
import time
import unittest

from tlsgate_test import (CLIENT_NAME, GatewayTestCase, simple_message, split_received)

QUEUED = re.compile(r"^250 2\.0\.0 Ok: queued as (\d+)$")
BARE = "5.6.0 Message contains bare CR or LF; refused"
LIMIT = 20000


class DataTest(GatewayTestCase):
    share_gateway = True
    gateway_config = {"max_message_size": str(LIMIT), "max_recipients": "3"}

    def setUp(self):
        super().setUp()
        # every test starts with an empty Maildir
        for sub in ("new", "cur"):
            d = os.path.join(self.gw.maildir, sub)
            if os.path.isdir(d):
                for n in os.listdir(d):
                    os.unlink(os.path.join(d, n))

    def start_data(self, rcpts=("user@example.test",), mail_args=""):
        c = self.gw.connect()
        self.ehlo_ok(c)
        self.assertReply(c.cmd("MAIL FROM:<sender@example.org>" + mail_args), 250, "2.1.0 Ok")
        for r in rcpts:
            self.assertReply(c.cmd("RCPT TO:<%s>" % r), 250, "2.1.5 Ok")
        self.assertReply(c.cmd("DATA"), 354, "End data with <CR><LF>.<CR><LF>")
        return c

    def assertNothingLanded(self):
        self.assertEqual(self.gw.maildir_messages(check_tmp=True), [])

    def assertSessionUsable(self, c):
        """After a refused message the session goes on: a new transaction
        is accepted and delivered."""
        self.assertReply(c.cmd("NOOP"), 250, "2.0.0 Ok")
        self.assertReply(c.cmd("MAIL FROM:<sender@example.org>"), 250, "2.1.0 Ok")
        self.assertReply(c.cmd("RCPT TO:<user@example.test>"), 250, "2.1.5 Ok")
        self.assertReply(c.cmd("DATA"), 354)
        c.send(simple_message("after refusal") + b".\r\n")
        self.assertReply(c.reply(), 250, QUEUED)
        msgs = self.gw.wait_messages(1)
        self.assertEqual(len(msgs), 1)
        self.assertIn(b"Subject: after refusal\n", msgs[0])

    # --- SMTP smuggling ------------------------------------------------------
    SMUGGLED = (b"MAIL FROM:<admin@example.test>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\n"
                b"From: admin@example.test\r\nSubject: smuggled\r\n\r\nsmuggled body\r\n")

    def test_smuggling_variants(self):
        for fake_end in (b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r\n.\r", b"\r.\r\n",
                         b"\n.", b"\r\n.\r\r\n"):
            with self.subTest(fake_end=fake_end):
                c = self.start_data()
                c.send(b"From: sender@example.org\r\nSubject: first\r\n\r\nfirst body" + fake_end
                       + self.SMUGGLED)
                # the fake end did not end the message: still in DATA
                self.assertEqual(c.pending(0.5), b"", "reply before the real end of data")
                c.send(b"\r\n.\r\n")
                self.assertReply(c.reply(), 550, BARE)
                # exactly one reply: the smuggled MAIL/RCPT/DATA were message text
                self.assertEqual(c.pending(0.3), b"")
                self.assertNothingLanded()
                self.assertSessionUsable(c)
                msgs = self.gw.maildir_messages()
                self.assertFalse(any(b"smuggled" in m for m in msgs))
                c.cmd("QUIT")
                log = self.gw.session_log(c.icid)
                self.assertFalse(any("admin@example.test" in l for l in log), log)
                self.assertFalse(any("victim@example.test" in l for l in log), log)
                self.assertTrue(any(re.match(r"^MID \d+ aborted: ", l) for l in log), log)
                for n in os.listdir(os.path.join(self.gw.maildir, "new")):
                    os.unlink(os.path.join(self.gw.maildir, "new", n))

    def test_bare_lf_and_cr_inside_lines(self):
        for body in (b"one\ntwo\r\n", b"one\rtwo\r\n", b"header: a\r\n\r\nx\n\r\n",
                     b"\n\r\n", b"trailing cr\r\r\n"):
            with self.subTest(body=body):
                c = self.start_data()
                c.send(b"Subject: bare\r\n\r\n" + body + b".\r\n")
                self.assertReply(c.reply(), 550, BARE)
                self.assertNothingLanded()
                self.assertReply(c.cmd("RSET"), 250, "2.0.0 Ok")
                c.cmd("QUIT")

    def test_lf_only_client_never_ends_data(self):
        # a client that ends lines with LF only cannot end DATA with "\n.\n"
        c = self.start_data()
        c.send(b"Subject: lf\n\nbody\n.\n")
        self.assertEqual(c.pending(0.7), b"")
        c.send(b"\r\n.\r\n")
        self.assertReply(c.reply(), 550, BARE)
        self.assertNothingLanded()

    # --- message content -----------------------------------------------------
    def test_maildir_content(self):
        body = (b"From: <sender@example.org>\r\nTo: <user@example.test>\r\nSubject: content\r\n"
                b"\r\nline one\r\n\r\n  indented line\r\nlast line without dot\r\n")
        c = self.start_data()
        c.send(body + b".\r\n")
        r = c.reply()
        self.assertReply(r, 250, QUEUED)
        mid = int(QUEUED.match(r.last).group(1))
        c.cmd("QUIT")
        msgs = self.gw.maildir_messages()
        self.assertEqual(len(msgs), 1)
        received, rest = split_received(msgs[0])
        self.assertIsNotNone(received, msgs[0][:200])
        self.assertNotIn(b"\r", msgs[0])
        self.assertEqual(rest, body.replace(b"\r\n", b"\n"))
        text = " ".join(received.decode().split())
        self.assertIn("no TLS", text)
        self.assertIn(CLIENT_NAME, text)
        log = self.gw.session_log(c.icid)
        self.assertIn("MID %d ready %d bytes from <sender@example.org>" % (mid, len(body)), log)
        self.assertIn("MID %d done" % mid, log)

    def test_dot_stuffing_round_trip(self):
        lines = [b"Subject: dots", b"", b"..", b"...", b"..leading dot", b"middle . dot",
                 b". space", b"end."]
        wire = b"\r\n".join(lines) + b"\r\n.\r\n"
        unstuffed = [l[1:] if l.startswith(b".") else l for l in lines]
        c = self.start_data()
        c.send(wire)
        r = c.reply()
        self.assertReply(r, 250, QUEUED)
        mid = int(QUEUED.match(r.last).group(1))
        c.cmd("QUIT")
        msgs = self.gw.maildir_messages()
        self.assertEqual(len(msgs), 1)
        _, rest = split_received(msgs[0])
        self.assertEqual(rest, b"\n".join(unstuffed) + b"\n")
        size = len(b"\r\n".join(unstuffed) + b"\r\n")
        log = self.gw.session_log(c.icid)
        self.assertIn("MID %d ready %d bytes from <sender@example.org>" % (mid, size), log)

    def test_empty_message(self):
        c = self.start_data()
        c.send(b".\r\n")
        self.assertReply(c.reply(), 250, QUEUED)
        c.cmd("QUIT")
        msgs = self.gw.maildir_messages()
        self.assertEqual(len(msgs), 1)
        received, rest = split_received(msgs[0])
        self.assertIsNotNone(received)
        self.assertEqual(rest.strip(b"\n"), b"")

    def test_eight_bit_body(self):
        body = "Subject: 8bit\r\n\r\nGrüße, ☃, naïve café\r\n".encode("utf-8")
        c = self.start_data(mail_args=" BODY=8BITMIME")
        c.send(body + b".\r\n")
        self.assertReply(c.reply(), 250, QUEUED)
        c.cmd("QUIT")
        _, rest = split_received(self.gw.maildir_messages()[0])
        self.assertEqual(rest, body.replace(b"\r\n", b"\n"))

    def test_several_messages_one_session(self):
        c = self.gw.connect()
        self.ehlo_ok(c)
        mids = []
        for i in range(3):
            replies = c.mail_transaction("sender@example.org", ["user@example.test"],
                                         simple_message("multi %d" % i) + b".\r\n")
            self.assertReply(replies[-1], 250, QUEUED)
            mids.append(int(QUEUED.match(replies[-1].last).group(1)))
        c.cmd("QUIT")
        self.assertEqual(mids, sorted(set(mids)))
        msgs = self.gw.maildir_messages()
        self.assertEqual(len(msgs), 3)

    # --- NUL -----------------------------------------------------------------
    def test_nul_in_data(self):
        c = self.start_data()
        c.send(b"Subject: nul\r\n\r\nhello\x00world\r\n.\r\n")
        self.assertReply(c.reply(), 550, "5.6.0 Message contains NUL bytes; refused")
        self.assertNothingLanded()
        self.assertSessionUsable(c)

    # --- line and size limits ------------------------------------------------
    def test_text_line_limit(self):
        # 1000 octets with the CRLF is allowed (RFC 5321 4.5.3.1.6)
        c = self.start_data()
        c.send(b"Subject: long ok\r\n\r\n" + b"a" * 998 + b"\r\n.\r\n")
        self.assertReply(c.reply(), 250, QUEUED)
        self.assertEqual(len(self.gw.maildir_messages()), 1)
        self.assertReply(c.cmd("MAIL FROM:<sender@example.org>"), 250, "2.1.0 Ok")
        self.assertReply(c.cmd("RCPT TO:<user@example.test>"), 250, "2.1.5 Ok")
        self.assertReply(c.cmd("DATA"), 354)
        c.send(b"Subject: too long\r\n\r\n" + b"b" * 999 + b"\r\nmore\r\n.\r\n")
        self.assertReply(c.reply(), 552, "5.3.4 Message text line exceeds 1000 octets")
        self.assertEqual(c.pending(0.3), b"")
        msgs = self.gw.maildir_messages()
        self.assertEqual(len(msgs), 1)
        self.assertNotIn(b"too long", msgs[0])

    def test_very_long_text_line(self):
        c = self.start_data()
        # the long line holds something that looks like the end of data and
        # a command: none of it may escape
        c.send(b"Subject: huge line\r\n\r\n" + b"x" * 3000 + b"\r\n.\r\nRSET\r\n" + b"y" * 3000
               + b"\r\n.\r\n")
        r = c.reply()
        self.assertReply(r, 552, "5.3.4 Message text line exceeds 1000 octets")
        # "\r\n.\r\n" after the long line ended the data; RSET was a command
        self.assertReply(c.reply(), 250, "2.0.0 Ok")
        self.assertNothingLanded()

    def test_size_advertised(self):
        c = self.gw.connect()
        r = c.ehlo()
        self.assertIn("250-SIZE %d" % LIMIT, r.lines)

    def test_size_parameter_over_limit(self):
        c = self.gw.connect()
        self.ehlo_ok(c)
        self.assertReply(c.cmd("MAIL FROM:<sender@example.org> SIZE=%d" % (LIMIT + 1)), 552,
                         "5.3.4 Message size exceeds fixed limit")
        self.assertReply(c.cmd("RCPT TO:<user@example.test>"), 503,
                         "5.5.1 Error: need MAIL command")
        self.assertReply(c.cmd("MAIL FROM:<sender@example.org> SIZE=%d" % (LIMIT // 2)), 250,
                         "2.1.0 Ok")

    def test_size_enforced_while_streaming(self):
        c = self.start_data()
        line = b"z" * 98 + b"\r\n"
        c.send(b"Subject: big\r\n\r\n" + line * (2 * LIMIT // len(line)) + b".\r\n")
        self.assertReply(c.reply(), 552, "5.3.4 Message size exceeds fixed limit")
        self.assertEqual(c.pending(0.3), b"")
        self.assertNothingLanded()
        c.cmd("QUIT")
        log = self.gw.session_log(c.icid)
        self.assertTrue(any(re.match(r"^MID \d+ aborted: ", l) for l in log), log)
        self.assertFalse(any(re.match(r"^MID \d+ done$", l) for l in log), log)
        self.assertSessionUsable(self.start_usable())

    def start_usable(self):
        c = self.gw.connect()
        self.ehlo_ok(c)
        return c

    def test_size_with_lying_size_parameter(self):
        c = self.start_data(mail_args=" SIZE=100")
        line = b"z" * 98 + b"\r\n"
        c.send(b"Subject: liar\r\n\r\n" + line * (2 * LIMIT // len(line)) + b".\r\n")
        self.assertReply(c.reply(), 552, "5.3.4 Message size exceeds fixed limit")
        self.assertNothingLanded()

    def test_message_under_limit(self):
        c = self.start_data()
        line = b"w" * 98 + b"\r\n"
        body = b"Subject: under\r\n\r\n" + line * ((LIMIT - 2000) // len(line))
        c.send(body + b".\r\n")
        self.assertReply(c.reply(), 250, QUEUED)
        msgs = self.gw.maildir_messages()
        self.assertEqual(split_received(msgs[0])[1], body.replace(b"\r\n", b"\n"))

    # --- recipients ----------------------------------------------------------
    def test_recipient_limit(self):
        c = self.gw.connect()
        self.ehlo_ok(c)
        self.assertReply(c.cmd("MAIL FROM:<sender@example.org>"), 250, "2.1.0 Ok")
        for i in range(3):
            self.assertReply(c.cmd("RCPT TO:<user%d@example.test>" % i), 250, "2.1.5 Ok")
        self.assertReply(c.cmd("RCPT TO:<user3@example.test>"), 452,
                         "4.5.3 Too many recipients")
        self.assertReply(c.cmd("RCPT TO:<user4@example.test>"), 452,
                         "4.5.3 Too many recipients")
        self.assertReply(c.cmd("DATA"), 354)
        c.send(simple_message("rcpts") + b".\r\n")
        r = c.reply()
        self.assertReply(r, 250, QUEUED)
        mid = int(QUEUED.match(r.last).group(1))
        c.cmd("QUIT")
        log = self.gw.session_log(c.icid)
        rids = [l for l in log if re.match(r"^MID %d ICID %d RID \d+ To: " % (mid, c.icid), l)]
        self.assertEqual(rids, ["MID %d ICID %d RID %d To: <user%d@example.test>"
                                % (mid, c.icid, i, i) for i in range(3)])

    # --- big message, streamed -----------------------------------------------
    def test_pipelined_data_in_small_pieces(self):
        c = self.start_data()
        body = b"Subject: pieces\r\n\r\n" + b"".join(b"line %d\r\n" % i for i in range(200))
        wire = body + b".\r\n"
        for i in range(0, len(wire), 7):
            c.send(wire[i:i + 7])
        self.assertReply(c.reply(), 250, QUEUED)
        self.assertEqual(split_received(self.gw.maildir_messages()[0])[1],
                         body.replace(b"\r\n", b"\n"))

    def test_end_of_data_split_across_writes(self):
        c = self.start_data()
        c.send(b"Subject: split\r\n\r\nbody\r")
        time.sleep(0.2)
        c.send(b"\n.")
        time.sleep(0.2)
        self.assertEqual(c.pending(0.2), b"")
        c.send(b"\r")
        time.sleep(0.2)
        c.send(b"\n")
        self.assertReply(c.reply(), 250, QUEUED)


class LargeMessageTest(GatewayTestCase):
    share_gateway = True
    gateway_config = {"max_message_size": str(8 * 1024 * 1024)}

    def test_large_message_streams_through(self):
        c = self.gw.connect()
        self.ehlo_ok(c)
        self.assertReply(c.cmd("MAIL FROM:<sender@example.org> SIZE=4000000"), 250)
        self.assertReply(c.cmd("RCPT TO:<user@example.test>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        line = b"0123456789abcdef" * 4 + b"\r\n"
        body = b"Subject: large\r\n\r\n" + line * (4000000 // len(line))
        c.send(body + b".\r\n")
        r = c.reply(timeout=60)
        self.assertReply(r, 250, QUEUED)
        msgs = self.gw.maildir_messages()
        self.assertEqual(len(msgs), 1)
        self.assertEqual(split_received(msgs[0])[1], body.replace(b"\r\n", b"\n"))


class MaildirFailureTest(GatewayTestCase):
    """A Maildir that cannot be written: 451 4.3.0 and nothing in new/."""

    def test_write_failure(self):
        tmpd = os.path.join(self.gw.maildir, "tmp")
        # make tmp/ a regular file (root ignores permissions, not ENOTDIR)
        if os.path.isdir(tmpd):
            shutil.rmtree(tmpd)
        os.makedirs(self.gw.maildir, exist_ok=True)
        with open(tmpd, "w") as f:
            f.write("not a directory\n")
        c = self.gw.connect()
        self.ehlo_ok(c)
        replies = c.mail_transaction("sender@example.org", ["user@example.test"],
                                     simple_message("unwritable") + b".\r\n")
        last = replies[-1]
        if last.code == 354:
            self.fail("no reply to the end of data")
        self.assertReply(last, 451, "4.3.0 Error: local delivery failed")
        new = os.path.join(self.gw.maildir, "new")
        self.assertEqual(os.listdir(new) if os.path.isdir(new) else [], [])
        c.cmd("QUIT")
        log = self.gw.session_log(c.icid)
        self.assertTrue(any(re.match(r"^MID \d+ aborted: ", l) for l in log), log)


if __name__ == "__main__":
    unittest.main()
