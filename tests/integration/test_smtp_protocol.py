"""The inbound SMTP dialogue: greeting, EHLO/HELO and the extensions, every
command's reply text, sequencing errors, syntax errors, command-line limits,
control characters, PIPELINING, and a complete transaction with smtplib and
swaks.  One gateway serves the whole class (sessions are independent)."""

import re
import unittest

from tlsgate_test import (CLIENT_NAME, HOSTNAME, GatewayTestCase, client_context,
                          simple_message)

PLAIN_HOST = "plain.example.test"


class SMTPProtocolTest(GatewayTestCase):
    share_gateway = True
    gateway_config = {"max_message_size": "1000000"}
    listener_config = {
        "in": {},
        "plain": {"tls": "off", "hostname": PLAIN_HOST},
    }

    def session(self, ehlo=True, listener=None):
        c = self.gw.connect(listener=listener)
        if ehlo:
            self.ehlo_ok(c, PLAIN_HOST if listener == "plain" else HOSTNAME)
        return c

    # --- greeting and EHLO -------------------------------------------------
    def test_greeting(self):
        c = self.gw.connect()
        self.assertEqual(c.greeting.lines, ["220 %s ESMTP tlsgate" % HOSTNAME])

    def test_greeting_names_listener_hostname(self):
        c = self.gw.connect(listener="plain")
        self.assertEqual(c.greeting.lines, ["220 %s ESMTP tlsgate" % PLAIN_HOST])

    def test_ehlo_extensions(self):
        c = self.gw.connect()
        r = c.ehlo()
        self.assertEqual(r.code, 250)
        self.assertEqual(r.lines[0], "250-" + HOSTNAME)
        self.assertEqual(r.lines[-1], "250 HELP")
        middle = r.lines[1:-1]
        self.assertTrue(all(l.startswith("250-") for l in middle), r.text)
        self.assertEqual(sorted(l[4:] for l in middle),
                         sorted(["PIPELINING", "SIZE 1000000", "8BITMIME",
                                 "ENHANCEDSTATUSCODES", "STARTTLS"]))

    def test_ehlo_without_starttls_when_level_off(self):
        c = self.gw.connect(listener="plain")
        r = c.ehlo()
        self.assertEqual(r.lines[0], "250-" + PLAIN_HOST)
        self.assertNotIn("250-STARTTLS", r.lines)
        self.assertNotIn("250 STARTTLS", r.lines)
        self.assertIn("250-PIPELINING", r.lines)
        self.assertReply(c.cmd("STARTTLS"), 502, "5.5.1 STARTTLS not available")
        # the session goes on in clear text
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), 250, "2.1.0 Ok")

    def test_helo(self):
        c = self.gw.connect()
        self.assertEqual(c.cmd("HELO " + CLIENT_NAME).lines, ["250 " + HOSTNAME])
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), 250, "2.1.0 Ok")

    def test_ehlo_without_argument(self):
        c = self.gw.connect()
        self.assertReply(c.cmd("EHLO"), 501, "5.5.4 Syntax: EHLO hostname")
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), 503,
                         "5.5.1 Error: send HELO/EHLO first")

    def test_ehlo_twice_resets_transaction(self):
        c = self.session()
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), 250, "2.1.0 Ok")
        self.ehlo_ok(c)
        # RFC 5321 4.1.4: EHLO clears the transaction
        self.assertReply(c.cmd("RCPT TO:<user@example.test>"), 503,
                         "5.5.1 Error: need MAIL command")

    def test_commands_case_insensitive(self):
        c = self.gw.connect()
        self.assertEqual(c.cmd("ehlo " + CLIENT_NAME).lines[0], "250-" + HOSTNAME)
        self.assertReply(c.cmd("mail from:<a@example.org>"), 250, "2.1.0 Ok")
        self.assertReply(c.cmd("rCpT To:<user@example.test>"), 250, "2.1.5 Ok")
        self.assertReply(c.cmd("rset"), 250, "2.0.0 Ok")

    # --- sequencing ----------------------------------------------------------
    def test_mail_before_ehlo(self):
        c = self.gw.connect()
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), 503,
                         "5.5.1 Error: send HELO/EHLO first")

    def test_rcpt_before_mail(self):
        c = self.session()
        self.assertReply(c.cmd("RCPT TO:<user@example.test>"), 503,
                         "5.5.1 Error: need MAIL command")

    def test_data_without_rcpt(self):
        c = self.session()
        r = c.cmd("DATA")
        # without MAIL either complaint is right
        self.assertIn(r.last, ("503 5.5.1 Error: need RCPT command",
                               "503 5.5.1 Error: need MAIL command"))
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), 250, "2.1.0 Ok")
        self.assertReply(c.cmd("DATA"), 503, "5.5.1 Error: need RCPT command")

    def test_nested_mail(self):
        c = self.session()
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), 250, "2.1.0 Ok")
        self.assertReply(c.cmd("MAIL FROM:<b@example.org>"), 503,
                         "5.5.1 Error: nested MAIL command")

    def test_rset_and_noop(self):
        c = self.session()
        self.assertReply(c.cmd("NOOP"), 250, "2.0.0 Ok")
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), 250, "2.1.0 Ok")
        self.assertReply(c.cmd("RCPT TO:<user@example.test>"), 250, "2.1.5 Ok")
        self.assertReply(c.cmd("RSET"), 250, "2.0.0 Ok")
        self.assertReply(c.cmd("RCPT TO:<user@example.test>"), 503,
                         "5.5.1 Error: need MAIL command")
        self.assertReply(c.cmd("MAIL FROM:<b@example.org>"), 250, "2.1.0 Ok")

    def test_noop_with_argument(self):
        c = self.session()
        self.assertReply(c.cmd("NOOP anything at all"), 250, "2.0.0 Ok")

    def test_quit(self):
        c = self.session()
        self.assertReply(c.cmd("QUIT"), 221, "2.0.0 Bye")
        self.assertClosed(c)
        self.gw.wait_for_log(r"^ICID %d close$" % c.icid)

    def test_quit_before_ehlo(self):
        c = self.gw.connect()
        self.assertReply(c.cmd("QUIT"), 221, "2.0.0 Bye")
        self.assertClosed(c)

    def test_vrfy(self):
        c = self.session()
        self.assertReply(c.cmd("VRFY user"), 252,
                         "2.5.0 Cannot VRFY user, but will accept message and attempt delivery")

    def test_vrfy_before_ehlo(self):
        c = self.gw.connect()
        self.assertEqual(c.cmd("VRFY postmaster").code, 252)

    def test_help(self):
        c = self.session()
        r = c.cmd("HELP")
        self.assertEqual(r.code, 214, r.text)
        self.assertTrue(all(l.startswith("214") for l in r.lines), r.text)

    def test_unknown_command(self):
        c = self.session()
        self.assertReply(c.cmd("FROBNICATE now"), 500, "5.5.2 Error: command not recognized")
        self.assertReply(c.cmd("NOOP"), 250, "2.0.0 Ok")

    def test_empty_line(self):
        c = self.session()
        r = c.cmd("")
        self.assertEqual(r.code // 100, 5, r.text)
        self.assertReply(c.cmd("NOOP"), 250, "2.0.0 Ok")

    # --- MAIL / RCPT syntax --------------------------------------------------
    def test_mail_ok_variants(self):
        c = self.session()
        for arg in ("FROM:<a@example.org>", "FROM: <a@example.org>", "FROM:<>",
                    "FROM:<a@example.org> SIZE=1000", "FROM:<a@example.org> BODY=8BITMIME",
                    "FROM:<a@example.org> BODY=7BIT SIZE=10"):
            with self.subTest(arg=arg):
                self.assertReply(c.cmd("MAIL " + arg), 250, "2.1.0 Ok")
                self.assertReply(c.cmd("RSET"), 250, "2.0.0 Ok")

    def test_mail_syntax_errors(self):
        c = self.session()
        for arg in ("FROM:a@example.org", "FROM:<a@example.org", "FROM:<a@@example.org>",
                    "FROM:<a@example..org>", "FROM:<a b@example.org>", "FROM:",
                    "TO:<a@example.org>"):
            with self.subTest(arg=arg):
                r = c.cmd("MAIL " + arg)
                self.assertEqual(r.code, 501, r.text)
                if arg.startswith("FROM:<") and arg.endswith(">"):
                    # a bad address between the brackets
                    self.assertTrue(r.last.startswith("501 5.1.7 "), r.text)
                else:
                    self.assertRegex(r.last, r"^501 5\.(1\.7|5\.4|5\.2) ")
        # none of them started a transaction
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), 250, "2.1.0 Ok")

    def test_rcpt_syntax_errors(self):
        c = self.session()
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), 250, "2.1.0 Ok")
        for arg in ("TO:user@example.test", "TO:<user@example.test", "TO:<user@>",
                    "TO:<@example.test>", "TO:<>", "TO:<us er@example.test>"):
            with self.subTest(arg=arg):
                r = c.cmd("RCPT " + arg)
                self.assertEqual(r.code, 501, r.text)
                if arg.startswith("TO:<") and arg.endswith(">"):
                    self.assertTrue(r.last.startswith("501 5.1.3 "), r.text)
                else:
                    self.assertRegex(r.last, r"^501 5\.(1\.3|5\.4|5\.2) ")
        self.assertReply(c.cmd("RCPT TO:<user@example.test>"), 250, "2.1.5 Ok")

    def test_unsupported_parameters(self):
        c = self.session()
        r = c.cmd("MAIL FROM:<a@example.org> FROB=1")
        self.assertEqual(r.code, 555, r.text)
        self.assertTrue(r.last.startswith("555 5.5.4"), r.text)
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), 250, "2.1.0 Ok")
        r = c.cmd("RCPT TO:<user@example.test> NOTIFY=NEVER XFOO=1")
        self.assertEqual(r.code, 555, r.text)
        self.assertTrue(r.last.startswith("555 5.5.4"), r.text)

    def test_postmaster_without_domain(self):
        c = self.session()
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), 250, "2.1.0 Ok")
        self.assertReply(c.cmd("RCPT TO:<Postmaster>"), 250, "2.1.5 Ok")

    # --- line limits and control characters ---------------------------------
    def test_command_line_limit(self):
        c = self.session()
        # 512 octets with the CRLF is the limit (RFC 5321 4.5.3.1.4)
        line = "NOOP " + "x" * (510 - 5)
        self.assertEqual(len(line) + 2, 512)
        self.assertReply(c.cmd(line), 250, "2.0.0 Ok")
        self.assertReply(c.cmd(line + "x"), 500, "5.5.2 Error: line too long")
        self.assertReply(c.cmd("NOOP"), 250, "2.0.0 Ok")

    def test_very_long_command_line(self):
        c = self.session()
        self.assertReply(c.cmd("MAIL FROM:<" + "a" * 5000 + "@example.org>"), 500,
                         "5.5.2 Error: line too long")
        # the rest of the long line was not taken as a command
        self.assertEqual(c.pending(0.3), b"")
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), 250, "2.1.0 Ok")

    def test_nul_in_command(self):
        c = self.session()
        c.send(b"NOOP\x00hidden\r\n")
        self.assertReply(c.reply(), 500, "5.5.2 Error: NUL or control character in command")
        c.send(b"MAIL FROM:<a@example.org>\x00\r\n")
        self.assertReply(c.reply(), 500, "5.5.2 Error: NUL or control character in command")
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), 250, "2.1.0 Ok")

    def test_control_character_in_command(self):
        c = self.session()
        for bad in (b"NO\x01OP\r\n", b"NOOP \x1b[31m\r\n", b"RSET\x7f\r\n"):
            with self.subTest(bad=bad):
                c.send(bad)
                self.assertReply(c.reply(), 500,
                                 "5.5.2 Error: NUL or control character in command")

    def test_bare_lf_command_not_split(self):
        # "NOOP\nRSET\r\n" must not be taken as two commands.
        c = self.session()
        c.send(b"NOOP\nRSET\r\n")
        r = c.reply()
        self.assertEqual(c.pending(0.3), b"", "a second reply to one CRLF-terminated line")
        self.assertNotEqual(r.code, 354)

    # --- pipelining ----------------------------------------------------------
    def test_pipelining_replies_in_order(self):
        c = self.session()
        c.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<user@example.test>\r\n"
               b"RCPT TO:<nobody@example.org>\r\nRCPT TO:<user2@example.test>\r\nDATA\r\n")
        self.assertReply(c.reply(), 250, "2.1.0 Ok")
        self.assertReply(c.reply(), 250, "2.1.5 Ok")
        self.assertReply(c.reply(), 550, "5.7.1 Relaying denied")
        self.assertReply(c.reply(), 250, "2.1.5 Ok")
        self.assertReply(c.reply(), 354, "End data with <CR><LF>.<CR><LF>")
        c.send(simple_message("pipelined") + b".\r\nNOOP\r\nQUIT\r\n")
        self.assertReply(c.reply(), 250, re.compile(r"^250 2\.0\.0 Ok: queued as \d+$"))
        self.assertReply(c.reply(), 250, "2.0.0 Ok")
        self.assertReply(c.reply(), 221, "2.0.0 Bye")
        self.assertClosed(c)

    def test_pipelining_many_commands_one_write(self):
        c = self.session()
        c.send(b"NOOP\r\nRSET\r\nVRFY x\r\nHELP\r\nNOOP\r\nFROB\r\nMAIL FROM:<a@example.org>\r\n"
               b"MAIL FROM:<b@example.org>\r\n")
        codes = [c.reply().code for _ in range(8)]
        self.assertEqual(codes, [250, 250, 252, 214, 250, 500, 250, 503])
        self.assertEqual(c.pending(0.2), b"")

    def test_pipelined_flood(self):
        # 2000 commands in one write: every one answered, in order
        c = self.session()
        n = 2000
        c.send(b"NOOP\r\n" * n + b"RSET\r\n")
        for i in range(n):
            r = c.reply()
            self.assertEqual(r.last, "250 2.0.0 Ok", "reply %d" % i)
        self.assertReply(c.reply(), 250, "2.0.0 Ok")
        self.assertEqual(c.pending(0.2), b"")

    def test_nothing_after_quit(self):
        c = self.session()
        c.send(b"QUIT\r\nNOOP\r\nMAIL FROM:<a@example.org>\r\n")
        self.assertReply(c.reply(), 221, "2.0.0 Bye")
        closed, data = c.wait_closed(5)
        self.assertTrue(closed)
        self.assertEqual(data, b"")

    def test_non_ascii_address_refused(self):
        # SMTPUTF8 is not offered: an 8-bit address is not accepted
        c = self.session()
        c.send("MAIL FROM:<jös@example.org>\r\n".encode("utf-8"))
        self.assertGreaterEqual(c.reply().code, 500)
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), 250, "2.1.0 Ok")
        c.send("RCPT TO:<üser@example.test>\r\n".encode("utf-8"))
        self.assertGreaterEqual(c.reply().code, 500)

    # --- whole transactions with real clients --------------------------------
    def test_smtplib_starttls_sendmail(self):
        s = self.gw.smtplib()
        code, _ = s.ehlo()
        self.assertEqual(code, 250)
        self.assertTrue(s.has_extn("starttls"))
        self.assertTrue(s.has_extn("pipelining"))
        self.assertEqual(s.esmtp_features.get("size"), "1000000")
        code, msg = s.starttls(context=client_context())
        self.assertEqual(code, 220)
        self.assertEqual(msg, b"2.0.0 Ready to start TLS")
        s.ehlo()
        self.assertFalse(s.has_extn("starttls"))
        refused = s.sendmail("sender@example.org", ["user@example.test"],
                             simple_message("smtplib"))
        self.assertEqual(refused, {})
        code, msg = s.quit()
        self.assertEqual(code, 221)
        msgs = self.gw.wait_messages(1)
        self.assertTrue(any(b"Subject: smtplib\n" in m for m in msgs))

    def test_swaks_plain(self):
        r = self.gw.swaks(listener="plain", tls=None,
                          args=["--header", "Subject: swaks plain", "--body", "via swaks"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"<- {2}250 2\.0\.0 Ok: queued as \d+")
        msgs = self.gw.wait_messages(1)
        self.assertTrue(any(b"Subject: swaks plain\n" in m for m in msgs))

    def test_swaks_starttls(self):
        r = self.gw.swaks(args=["--header", "Subject: swaks tls", "--tls-verify"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("220 2.0.0 Ready to start TLS", r.stdout)
        self.assertRegex(r.stdout, r"250 2\.0\.0 Ok: queued as \d+")


if __name__ == "__main__":
    unittest.main()
