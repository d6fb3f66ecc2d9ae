"""Smarthost AUTH towards an Amazon SES stand-in (issue 3, SPEC section 3):
AUTH PLAIN (preferred) and LOGIN succeed and fail as expected, a 535 is
answered 451 4.7.0 and logged, AUTH is never sent before TLS, the secret
(from a 0600 file or the environment) never shows in the mail log or on
standard error, and SES's own replies reach the client byte for byte."""

import os
import re
import subprocess
import unittest

import peers
from peers import AUTH_PASSWORD, AUTH_USER, OutboundTestCase, SMTPUpstream, route
import tlsgate_test as tt

WRONG_PASSWORD = "wr0ng-Passw0rd/NOT+the=one"
ENV_GOOD = "TLSGATE_TEST_SES_PASSWORD"
ENV_WRONG = "TLSGATE_TEST_WRONG_PASSWORD"


def write_secret(directory, name, text, mode=0o600):
    path = os.path.join(directory, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


class AuthTest(OutboundTestCase):

    @classmethod
    def make_peers(cls):
        cls.add_peer("both", SMTPUpstream(auth=True))
        cls.add_peer("login", SMTPUpstream(auth=True, mechanisms=("LOGIN",)))
        cls.add_peer("clear", SMTPUpstream(starttls=False, auth=True))
        cls.add_peer("refused", SMTPUpstream(starttls_reply=peers.STARTTLS_TEMPFAIL, auth=True))
        cls.add_peer("smtps", SMTPUpstream(auth=True, implicit=True))
        cls.add_peer("ses", SMTPUpstream(
            auth=True, rcpt_replies={"denied@example.org": peers.SES_ACCESS_DENIED},
            data_reply={"unverified@example.org": peers.SES_NOT_VERIFIED,
                        "denied-at-data@example.org": peers.SES_ACCESS_DENIED}))
        cls.good_file = write_secret(cls.peer_tmp, "good.secret", AUTH_PASSWORD + "\n")
        cls.wrong_file = write_secret(cls.peer_tmp, "wrong.secret", WRONG_PASSWORD + "\n")

    @classmethod
    def gateway_env(cls):
        return {ENV_GOOD: AUTH_PASSWORD, ENV_WRONG: WRONG_PASSWORD}

    @classmethod
    def outbound_config(cls):
        p = {n: u.port for n, u in cls.peers.items()}

        def auth_route(name, dom, peer, tls="required-verify", file=None, env=None):
            return route(name, dom, p[peer], tls=tls, auth_username=AUTH_USER,
                         auth_password_file=file, auth_password_env=env)

        return (auth_route("plain", "plain.example", "both", file=cls.good_file)
                + auth_route("login", "login.example", "login", env=ENV_GOOD)
                + auth_route("badplain", "badplain.example", "both", file=cls.wrong_file)
                + auth_route("badlogin", "badlogin.example", "login", env=ENV_WRONG)
                + auth_route("clear", "clear.example", "clear", tls="required", file=cls.good_file)
                + auth_route("refused", "refused.example", "refused", tls="required",
                             file=cls.good_file)
                + auth_route("ses", "example.org", "ses", file=cls.good_file)
                + auth_route("smtps", "smtps.example", "smtps", file=cls.good_file)
                + "implicit_tls = yes\n")

    def tearDown(self):
        self.assertNoSecret(AUTH_PASSWORD)
        self.assertNoSecret(WRONG_PASSWORD)
        super().tearDown()

    def assertAuthOnlyInTLS(self, up):
        seen_tls = False
        for cmd in up.commands:
            if cmd.verb == "STARTTLS":
                seen_tls = True
            if cmd.verb == "AUTH":
                self.assertTrue(cmd.tls and seen_tls, "AUTH sent without TLS: %r" % up.commands)

    # --- success -------------------------------------------------------------
    def deliver_with_auth(self, dom, peer, mechanism):
        up = self.peers[peer]
        mark = self.mark()
        c, replies = self.transaction(["user@" + dom])
        self.assertReply(replies[-1], 250, re.compile(r"^250 2\.0\.0 Ok: queued as UP0001$"))
        c.cmd("QUIT")
        msgs = up.wait_messages(1)
        self.assertEqual(len(msgs), 1)
        self.assertTrue(msgs[0].tls)
        self.assertEqual(msgs[0].auth_user, AUTH_USER)
        self.assertEqual(up.auth_attempts, [(mechanism, AUTH_USER, True)])
        auth = [c for c in up.commands if c.verb == "AUTH"]
        self.assertEqual(len(auth), 1)
        self.assertEqual(auth[0].arg.split()[0].upper(), mechanism)
        self.assertAuthOnlyInTLS(up)
        self.assertEqual([v for v, _ in up.verbs()][:5],
                         ["EHLO", "STARTTLS", "EHLO", "AUTH", "MAIL"])
        d = self.dcids(up.port, mark)[0]
        lines = [t for _, t in self.dcid_log(d, mark)]
        self.assertIn("DCID %d AUTH success user %s" % (d, AUTH_USER), lines)
        self.assertIn("DCID %d TLS verify ok host localhost policy required-verify" % d, lines)

    def test_auth_plain_preferred(self):
        # the next hop offers PLAIN and LOGIN: PLAIN is used
        self.deliver_with_auth("plain.example", "both", "PLAIN")

    def test_auth_login(self):
        self.deliver_with_auth("login.example", "login", "LOGIN")

    def test_implicit_tls_with_auth(self):
        # SES on port 465: TLS before the greeting, then EHLO, AUTH
        up = self.peers["smtps"]
        mark = self.mark()
        c, replies = self.transaction(["user@smtps.example"])
        self.assertReply(replies[-1], 250, re.compile(r"^250 2\.0\.0 Ok: queued as UP0001$"))
        c.cmd("QUIT")
        msgs = up.wait_messages(1)
        self.assertEqual([(m.rcpt_tos, m.auth_user) for m in msgs],
                         [(["user@smtps.example"], AUTH_USER)])
        self.assertEqual([v for v, _ in up.verbs(1)][:3], ["EHLO", "AUTH", "MAIL"])
        self.assertEqual(up.auth_attempts, [("PLAIN", AUTH_USER, True)])
        d = self.dcids(up.port, mark)[0]
        lines = [t for _, t in self.dcid_log(d, mark)]
        self.assertRegex(lines[1], r"^DCID %d TLS success protocol TLSv1\.[23] cipher " % d)
        self.assertIn("DCID %d TLS verify ok host localhost policy required-verify" % d, lines)
        self.assertIn("DCID %d AUTH success user %s" % (d, AUTH_USER), lines)

    # --- 535 -----------------------------------------------------------------
    def wrong_password(self, dom, peer, mechanism):
        up = self.peers[peer]
        mark = self.mark()
        c, replies = self.transaction(["user@" + dom])
        c.cmd("QUIT")
        self.assertReply(replies[-1], 451, "4.7.0 Delivery to %s failed: authentication failed "
                         "(%s)" % (dom, peers.SES_AUTH_INVALID))
        self.assertEqual(up.auth_attempts, [(mechanism, AUTH_USER, False)])
        self.assertNotIn("MAIL", [v for v, _ in up.verbs()])
        self.assertEqual(up.wait_messages(1, timeout=0.3), [])
        self.assertAuthOnlyInTLS(up)
        d = self.dcids(up.port, mark)[0]
        self.assertIn(("Warning", "DCID %d AUTH failed for %s at localhost: %s"
                       % (d, AUTH_USER, peers.SES_AUTH_INVALID)), self.dcid_log(d, mark))

    def test_wrong_password_plain(self):
        self.wrong_password("badplain.example", "both", "PLAIN")

    def test_wrong_password_login(self):
        self.wrong_password("badlogin.example", "login", "LOGIN")

    # --- never in clear --------------------------------------------------------
    def test_no_auth_without_starttls(self):
        up = self.peers["clear"]
        c, replies = self.transaction(["user@clear.example"])
        c.cmd("QUIT")
        self.assertReply(replies[-1], 451, "4.7.4 Delivery to clear.example failed: TLS required "
                         "but not offered (STARTTLS not offered)")
        self.assertEqual([v for v, _ in up.verbs()], ["EHLO"], "nothing after EHLO, no AUTH")

    def test_no_auth_after_starttls_refused(self):
        up = self.peers["refused"]
        c, replies = self.transaction(["user@refused.example"])
        c.cmd("QUIT")
        self.assertReply(replies[-1], 451, "4.7.4 Delivery to refused.example failed: TLS "
                         "required but not offered (%s)" % peers.STARTTLS_TEMPFAIL)
        self.assertEqual([v for v, _ in up.verbs()], ["EHLO", "STARTTLS"])

    # --- SES replies -----------------------------------------------------------
    def ses_rejects_at_end_of_data(self, rcpt, reply):
        up = self.peers["ses"]
        mark = self.mark()
        c, replies = self.transaction([rcpt])
        c.cmd("QUIT")
        self.assertEqual(replies[-1].lines, [reply], "the SES reply, byte for byte")
        d = self.dcids(up.port, mark)[0]
        m = self.gw.wait_for_log(r"^Delivery start DCID %d MID (\d+) to RID \[0\]$" % d,
                                 since=mark)
        mid = int(m.group(1))
        # one recipient: "to RID 0" (ESA's Bounced line names one RID,
        # without the brackets of the recipient lists)
        self.assertIn("Bounced: DCID %d MID %d to RID 0 - 554 - %s" % (d, mid, reply[4:]),
                      self.gw.log_texts(mark))
        self.assertFalse(any(t.startswith("Message done DCID %d " % d)
                             for t in self.gw.log_texts(mark)))

    def test_ses_message_rejected(self):
        self.ses_rejects_at_end_of_data("unverified@example.org", peers.SES_NOT_VERIFIED)

    def test_ses_access_denied_at_end_of_data(self):
        self.ses_rejects_at_end_of_data("denied-at-data@example.org", peers.SES_ACCESS_DENIED)

    def test_ses_rejects_message_for_two_recipients(self):
        # one Bounced line per recipient, as ESA writes them
        up = self.peers["ses"]
        mark = self.mark()
        c, replies = self.transaction(["unverified@example.org", "second@example.org"])
        c.cmd("QUIT")
        self.assertEqual(replies[-1].lines, [peers.SES_NOT_VERIFIED])
        d = self.dcids(up.port, mark)[0]
        m = self.gw.wait_for_log(r"^Delivery start DCID %d MID (\d+) to RID \[0, 1\]$" % d,
                                 since=mark)
        bounced = [t for t in self.gw.log_texts(mark) if t.startswith("Bounced: ")]
        self.assertEqual(bounced, ["Bounced: DCID %d MID %s to RID %d - 554 - %s"
                                   % (d, m.group(1), rid, peers.SES_NOT_VERIFIED[4:])
                                   for rid in (0, 1)])

    def test_ses_access_denied_at_rcpt(self):
        up = self.peers["ses"]
        mark = self.mark()
        c = self.client()
        self.assertReply(c.cmd("MAIL FROM:<sender@example.org>"), 250)
        r = c.cmd("RCPT TO:<denied@example.org>")
        self.assertEqual(r.lines, [peers.SES_ACCESS_DENIED])
        c.cmd("QUIT")
        d = self.dcids(up.port, mark)[0]
        m = self.gw.wait_for_log(r"^Bounced: DCID %d MID (\d+) to RID " % d, since=mark)
        self.assertEqual(m.string, "Bounced: DCID %d MID %s to RID 0 - 554 - %s"
                         % (d, m.group(1), peers.SES_ACCESS_DENIED[4:]))

    # --- the secret file ---------------------------------------------------------
    def check_config(self, secret_path, name):
        """`tlsgate check` of this class's configuration with SECRET_PATH as
        the password file (in our environment plus the class's)."""
        cfg = os.path.join(self.peer_tmp, name)
        with open(cfg, "w") as f:
            f.write(self.gw.config_text().replace(self.good_file, secret_path))
        env = dict(os.environ, **self.gateway_env())
        r = subprocess.run([tt.BIN, "check", "-c", cfg], capture_output=True, text=True,
                           timeout=30, env=env, cwd=self.gw.tmp, stdin=subprocess.DEVNULL)
        return cfg, r

    def test_secret_file_must_be_private(self):
        for mode in (0o644, 0o640, 0o604):
            with self.subTest(mode=oct(mode)):
                path = write_secret(self.peer_tmp, "loose.secret", AUTH_PASSWORD, mode)
                cfg, r = self.check_config(path, "loose.ini")
                out = r.stdout + r.stderr
                self.assertNotEqual(r.returncode, 0, out)
                self.assertRegex(out, r"%s:\d+: auth_password_file %s "
                                 % (re.escape(cfg), re.escape(path)))
                self.assertNotIn(AUTH_PASSWORD, out)
        for mode in (0o600, 0o400):
            with self.subTest(mode=oct(mode)):
                path = write_secret(self.peer_tmp, "tight.secret", AUTH_PASSWORD, mode)
                cfg, r = self.check_config(path, "tight.ini")
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

if __name__ == "__main__":
    unittest.main()
