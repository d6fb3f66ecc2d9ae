"""`tlsgate check -c FILE`: exit 0 on a good file; on a bad one every problem
as "FILE:LINE: message" and a non-zero exit; `tlsgate run` refuses a bad
file.  Table-driven: each case breaks one thing in a good configuration and
names the line that must be reported."""

import os
import re
import shutil
import subprocess
import unittest

from tlsgate_test import BIN, SOURCE, Gateway


def insert_after(text, header, line):
    """TEXT with LINE inserted right after the section header HEADER."""
    lines = text.split("\n")
    i = lines.index(header)
    lines.insert(i + 1, line)
    return "\n".join(lines)


def line_of(text, needle):
    """1-based number of the first line equal to NEEDLE."""
    return text.split("\n").index(needle) + 1


def replace_line(text, old, new):
    lines = text.split("\n")
    i = lines.index(old)
    lines[i] = new
    return "\n".join(lines)


class ConfigCheckTest(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.gw = Gateway(listeners={"in": {}, "in2": {"tls": "required"}},
                          sendergroups=[("RELAYLIST", {"match": "127.0.0.2, ::1",
                                                       "action": "relay"})])
        self.addCleanup(shutil.rmtree, self.gw.tmp, True)
        self.good = self.gw.config_text()
        self.path = os.path.join(self.gw.tmp, "test.ini")

    def check(self, text, path=None):
        path = path or self.path
        with open(path, "w") as f:
            f.write(text)
        r = self.gw.run_cli("check", "-c", path)
        return r, r.stdout + r.stderr

    def assertReported(self, output, line, pattern=None, path=None):
        path = path or self.path
        lines = [l for l in output.splitlines() if l.startswith(path + ":")]
        wanted = [l for l in lines
                  if re.match(r"^%s:(%s): \S" % (re.escape(path), line), l)]
        self.assertTrue(wanted, "no %s:%s: message in:\n%s" % (path, line, output))
        if pattern:
            self.assertTrue(any(re.search(pattern, l, re.I) for l in wanted),
                            "%r not in %r" % (pattern, wanted))

    # --- good files ------------------------------------------------------------
    def test_good_file(self):
        r, out = self.check(self.good)
        self.assertEqual(r.returncode, 0, out)
        self.assertNotRegex(out, r"(?m)^%s:\d+: " % re.escape(self.path))

    def test_default_policy_is_valid(self):
        path = os.path.join(SOURCE, "policy", "tlsgate.ini")
        r = subprocess.run([BIN, "check", "-c", path], cwd=SOURCE, capture_output=True,
                           text=True, timeout=30, stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_all_documented_keys(self):
        text = self.good
        text = insert_after(text, "[gateway]", "min_tls_version = TLSv1.2\n"
                            "max_message_size = 1000000\nsystem_trust = no\n"
                            "shutdown_timeout = 5\ncommand_timeout = 30\n"
                            "tls_handshake_timeout = 20\nidle_timeout = 100\n"
                            "data_min_rate = 100\nmax_connections = 10\n"
                            "max_connections_per_ip = 5\nmax_recipients = 50")
        text = insert_after(text, "[listener:in]", "implicit_tls = no\nproxy_protocol = no\n"
                            "command_timeout = 10\nmax_recipients = 5\nidle_timeout = 60")
        text += ("\n[sendergroup:PARTNERS]\nlistener = in\nmatch = 192.0.2.0/24, "
                 "2001:db8::/32, mail.example.net, .corp.example.test\naction = accept\n"
                 "tls = required\nverify_client = no\n"
                 "\n[destination:default]\ntls = preferred\n"
                 "[destination:example.org]\ntls = required-verify\n"
                 "[destination:.example.net]\ntls = preferred-verify\n"
                 "\n[sendergroup:ALL]\naction = accept\n")
        r, out = self.check(text)
        self.assertEqual(r.returncode, 0, out)

    # --- one problem at a time ---------------------------------------------------
    def cases(self):
        g = self.good
        port2 = self.gw.listeners["in2"]["address"]
        port1 = self.gw.listeners["in"]["address"]
        secret = os.path.join(self.gw.tmp, "ses.secret")
        with open(secret, "w") as f:
            f.write("secret\n")
        os.chmod(secret, 0o644)
        yield ("unknown key in [gateway]",
               insert_after(g, "[gateway]", "bogus_key = 1"), "bogus_key = 1", None, "bogus_key")
        yield ("unknown key in a listener",
               insert_after(g, "[listener:in]", "colour = blue"), "colour = blue", None, "colour")
        t = g + "\n[frobnicate]\nx = 1\n"
        yield ("unknown section", t, "[frobnicate]", "x = 1", "frobnicate")
        t = g + "\n[sendergroup:BAD]\nmatch = 10.0.0.0/33\naction = relay\n"
        yield ("bad CIDR", t, "match = 10.0.0.0/33", None, None)
        t = g + "\n[sendergroup:BAD]\nmatch = 300.1.2.3\naction = relay\n"
        yield ("bad address in match", t, "match = 300.1.2.3", None, None)
        t = g + "\n[sendergroup:BAD]\nmatch = 10.0.0.0/8\naction = maybe\n"
        yield ("bad action", t, "action = maybe", None, None)
        t = g + "\n[sendergroup:BAD]\nlistener = nosuch\nmatch = 10.0.0.0/8\naction = relay\n"
        yield ("sendergroup for a listener that does not exist", t, "listener = nosuch",
               None, "nosuch")
        yield ("bad TLS level", replace_line(g, "tls = required", "tls = sometimes"),
               "tls = sometimes", None, None)
        yield ("missing certificate", replace_line(g, "certificate = good",
                                                   "certificate = nosuchcert"),
               "certificate = nosuchcert", None, "nosuchcert")
        yield ("route that does not exist", replace_line(g, "route = local", "route = nowhere"),
               "route = nowhere", None, "nowhere")
        t = replace_line(g, "address = " + port2, "address = " + port1)
        # the second listener's address line (or its header) is reported
        yield ("port clash", t, line_of(t, "[listener:in2]") + 1, "[listener:in2]", None)
        yield ("bad port", replace_line(g, "address = " + port2, "address = 127.0.0.1:99999"),
               "address = 127.0.0.1:99999", None, None)
        yield ("bad address", replace_line(g, "address = " + port2, "address = nowhere"),
               "address = nowhere", None, None)
        yield ("bad max_message_size", insert_after(g, "[gateway]", "max_message_size = lots"),
               "max_message_size = lots", None, None)
        yield ("negative timeout", insert_after(g, "[gateway]", "command_timeout = -5"),
               "command_timeout = -5", None, None)
        yield ("bad limit in a listener", insert_after(g, "[listener:in]",
                                                       "max_recipients = none"),
               "max_recipients = none", None, None)
        yield ("bad min_tls_version", insert_after(g, "[gateway]", "min_tls_version = SSLv2"),
               "min_tls_version = SSLv2", None, None)
        yield ("bad boolean", insert_after(g, "[listener:in]", "implicit_tls = perhaps"),
               "implicit_tls = perhaps", None, None)
        t = g + "\n[destination:example.org]\ntls = mandatory\n"
        yield ("bad destination level", t, "tls = mandatory", None, None)
        yield ("line that is not INI", insert_after(g, "[gateway]", "this is not a key"),
               "this is not a key", None, None)
        t = g + ("\n[route:ses]\ndomains = *\nhost = email-smtp.us-east-1.amazonaws.com\n"
                 "port = 587\ntls = required-verify\nauth_username = AKIAEXAMPLE\n"
                 "auth_password_file = %s\n" % secret)
        yield ("world-readable secret", t, "auth_password_file = %s" % secret, None, None)
        t = g + ("\n[route:ses]\ndomains = *\nhost = smtp.example.net\nauth_username = u\n"
                 "auth_password_file = %s/missing.secret\n" % self.gw.tmp)
        yield ("missing secret", t, "auth_password_file = %s/missing.secret" % self.gw.tmp,
               None, None)
        t = g + "\n[alerts]\nrecipients = postmaster@example.test\nroute = nosuchroute\n"
        yield ("alerts route that does not exist", t, "route = nosuchroute", None, "nosuchroute")

    def test_each_problem_reported_with_line(self):
        for name, text, needle, alt, pattern in self.cases():
            with self.subTest(name):
                lines = [str(needle if isinstance(needle, int) else line_of(text, needle))]
                if alt:
                    lines.append(str(line_of(text, alt)))
                r, out = self.check(text)
                self.assertNotEqual(r.returncode, 0, out)
                self.assertReported(out, "|".join(lines), pattern)

    def test_every_problem_reported(self):
        t = insert_after(self.good, "[gateway]", "bogus_key = 1")
        t = replace_line(t, "certificate = good", "certificate = nosuchcert")
        t = replace_line(t, "route = local", "route = nowhere")
        t += "\n[sendergroup:BAD]\nmatch = 10.0.0.0/33\naction = maybe\n"
        r, out = self.check(t)
        self.assertNotEqual(r.returncode, 0, out)
        for needle in ("bogus_key = 1", "certificate = nosuchcert", "route = nowhere",
                       "match = 10.0.0.0/33", "action = maybe"):
            with self.subTest(needle):
                self.assertReported(out, str(line_of(t, needle)))

    def test_missing_file(self):
        path = os.path.join(self.gw.tmp, "nonexistent.ini")
        r = self.gw.run_cli("check", "-c", path)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(path, r.stdout + r.stderr)

    def test_run_refuses_bad_file(self):
        t = insert_after(self.good, "[gateway]", "bogus_key = 1")
        with open(self.path, "w") as f:
            f.write(t)
        port = int(self.gw.listeners["in"]["address"].rsplit(":", 1)[1])
        r = self.gw.run_cli("run", "-c", self.path, timeout=15)
        self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("%s:%d: " % (self.path, line_of(t, "bogus_key = 1")), r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.gw.maildir, "new")))
        del port

    def test_run_refuses_missing_file(self):
        r = self.gw.run_cli("run", "-c", os.path.join(self.gw.tmp, "nonexistent.ini"),
                            timeout=15)
        self.assertNotEqual(r.returncode, 0)
        self.assertTrue(r.stderr.strip())

    def test_run_refuses_busy_port(self):
        import socket
        host, port = self.gw.listener_host("in"), self.gw.ports["in"]
        with socket.socket() as s:
            s.bind((host, port))
            s.listen()
            r = self.gw.run_cli("run", "-c", self.gw.config_path, timeout=15)
        self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertTrue(r.stderr.strip())

    def test_usage_errors(self):
        for args in ([], ["frobnicate"], ["check"], ["run", "-c"]):
            with self.subTest(args=args):
                r = subprocess.run([BIN] + args, capture_output=True, text=True, timeout=15,
                                   stdin=subprocess.DEVNULL, cwd=self.gw.tmp)
                self.assertNotEqual(r.returncode, 0)
                self.assertTrue((r.stdout + r.stderr).strip())


if __name__ == "__main__":
    unittest.main()
