"""`tlsgate cert ...`: the ESA certconfig workflow on the command line.

Every artefact the real binary writes is judged by the openssl command line:
`openssl req -verify`, `openssl x509 -noout -text`, `openssl verify -CAfile
-untrusted`, `openssl pkcs12 -info`, and public-key comparison.  A test CA
(tests/tools/testca, made at test time) signs the CSRs.  The last test runs a
gateway and shows that SIGHUP after `cert install` serves the new certificate
to new sessions while a session in flight stays up.

The helpers at the top (no TestCase among them) are shared with
test_trust.py.
"""

import datetime
import json
import os
import pty
import re
import select
import shutil
import signal
import ssl
import stat
import subprocess
import tempfile
import time
import unittest

from tlsgate_test import (BIN, HOSTNAME, SANITIZER_MARKS, Gateway, ca_file, client_context,
                          test_certs)

CLI_TIMEOUT = 120

# ---------------------------------------------------------------------------
# Helpers (also imported by test_trust.py).


def tlsgate(*args, cwd=None, input=None, timeout=CLI_TIMEOUT, user=None, env=None):
    """Runs `tlsgate ARGS...`; the CompletedProcess.  Fails on a sanitizer
    report.  INPUT is standard input (else /dev/null); USER a uid to run
    as (with setpriv); ENV variables added to the environment."""
    cmd = [BIN] + [str(a) for a in args]
    if user is not None:
        cmd = ["setpriv", "--reuid=%d" % user, "--regid=%d" % user, "--clear-groups"] + cmd
    r = subprocess.run(cmd, cwd=cwd, input=input, capture_output=True, text=True,
                       timeout=timeout, env=dict(os.environ, **(env or {})),
                       stdin=None if input is not None else subprocess.DEVNULL)
    for mark in SANITIZER_MARKS:
        if mark in r.stderr:
            raise AssertionError("sanitizer report from %s:\n%s" % (cmd, r.stderr))
    return r


def tlsgate_on_tty(args, answers, cwd=None, timeout=30):
    """Runs `tlsgate ARGS...` on a pseudo-terminal, typing each of ANSWERS
    after the next prompt (a line ending in ": "); (status, everything the
    terminal showed)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: nothing but exec
        if cwd:
            os.chdir(cwd)
        os.execv(BIN, [BIN] + [str(a) for a in args])
    shown, pending = b"", list(answers)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pending and shown.rstrip().endswith(b":"):
            os.write(fd, pending.pop(0))
            shown += b"\n[typed]\n"
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            continue
        try:
            data = os.read(fd, 4096)
        except OSError:  # EIO: the child has gone
            break
        if not data:
            break
        shown += data
    else:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), shown.decode("utf-8", "replace")


def openssl(*args, input=None):
    return subprocess.run(["openssl"] + [str(a) for a in args], input=input,
                          capture_output=True, text=True, timeout=CLI_TIMEOUT)


def openssl_ok(*args, input=None):
    r = openssl(*args, input=input)
    if r.returncode != 0:
        raise AssertionError("openssl %s failed:\n%s%s" % (" ".join(map(str, args)),
                                                          r.stdout, r.stderr))
    return r.stdout + r.stderr


def pem_blocks(path):
    """The PEM certificates of PATH, in order, as strings."""
    with open(path) as f:
        text = f.read()
    return re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n?", text,
                      re.S)


def subject_of(pem):
    """The subject of one PEM certificate (text) in RFC 2253 form."""
    out = openssl_ok("x509", "-noout", "-subject", "-nameopt", "RFC2253", input=pem)
    return out.strip().split("=", 1)[1]


def subjects(path):
    return [subject_of(p) for p in pem_blocks(path)]


def fingerprint(pem):
    out = openssl_ok("x509", "-noout", "-fingerprint", "-sha256", input=pem)
    return out.strip().split("=", 1)[1]


def pubkey(path, kind):
    """The public key (PEM) of a key, certificate or CSR file."""
    if kind == "key":
        return openssl_ok("pkey", "-in", path, "-pubout")
    if kind == "cert":
        return openssl_ok("x509", "-in", path, "-noout", "-pubkey")
    return openssl_ok("req", "-in", path, "-noout", "-pubkey")


def not_after(path):
    out = openssl_ok("x509", "-in", path, "-noout", "-enddate").strip()
    return datetime.datetime.strptime(out.split("=", 1)[1], "%b %d %H:%M:%S %Y %Z")


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def write(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


class Store:
    """A temporary certificate store (DIR/certs) with the test CA as its
    trust anchor (unless TRUST is false), and helpers to drive `tlsgate cert`
    on it and to sign its CSRs with the test CA."""

    def __init__(self, trust=True):
        self.tmp = tempfile.mkdtemp(prefix="tlsgate-cert-")
        self.certs = os.path.join(self.tmp, "certs")
        os.makedirs(os.path.join(self.certs, "trust"))
        self.ca = test_certs()
        if trust:
            shutil.copy(os.path.join(self.ca, "ca.pem"), os.path.join(self.certs, "trust"))
        self.serial = 0x1000

    def remove(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def cli(self, *args, **kw):
        """`tlsgate ARGS... --certs-dir STORE`."""
        return tlsgate(*(list(args) + ["--certs-dir", self.certs]), cwd=self.tmp, **kw)

    def path(self, name, file=None):
        return os.path.join(self.certs, name, file) if file else os.path.join(self.certs, name)

    def file(self, name):
        """A path in the temporary directory, outside the store."""
        return os.path.join(self.tmp, name)

    def ca_path(self, name):
        return os.path.join(self.ca, name)

    def sign(self, csr, out, sans="DNS:mx.example.test,IP:127.0.0.1", days=90,
             issuer="intermediate"):
        """Signs the CSR file with the test CA's ISSUER; writes OUT."""
        self.serial += 1
        ext = write(self.file("ext-%d.cnf" % self.serial), "\n".join([
            "basicConstraints=critical,CA:FALSE",
            "keyUsage=critical,digitalSignature,keyEncipherment",
            "extendedKeyUsage=serverAuth,clientAuth",
            "subjectAltName=" + sans,
            "subjectKeyIdentifier=hash",
            "authorityKeyIdentifier=keyid"]) + "\n")
        openssl_ok("x509", "-req", "-in", csr, "-CA", self.ca_path(issuer + ".pem"),
                   "-CAkey", self.ca_path(issuer + ".key"), "-set_serial", hex(self.serial),
                   "-days", days, "-sha256", "-extfile", ext, "-out", out)
        return out

    def create_signed(self, name, cn="mx.example.test"):
        """`cert create NAME`, the CSR signed, installed with the
        intermediate: a complete chain."""
        r = self.cli("cert", "create", name, "--cn", cn, "--san", cn, "--san", "127.0.0.1",
                     "--key", "ec:P-256")
        assert r.returncode == 0, r.stderr
        signed = self.sign(self.path(name, "csr.pem"), self.file(name + "-signed.pem"))
        r = self.cli("cert", "install", name, signed, "--chain", self.ca_path("intermediate.pem"))
        assert r.returncode == 0, r.stdout + r.stderr
        return r

    def password_file(self, text, name="pw.txt"):
        return write(self.file(name), text + "\n", 0o600)


class StoreTestCase(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.s = Store()
        self.addCleanup(self.s.remove)

    def assertOneSentence(self, r, *parts):
        """Exit status 1 and one "tlsgate: ..." line on stderr holding PARTS."""
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        lines = [l for l in r.stderr.splitlines() if l.startswith("tlsgate: ")]
        self.assertEqual(len(lines), 1, r.stderr)
        for p in parts:
            self.assertIn(p, lines[0])


# ---------------------------------------------------------------------------


class HelpTest(StoreTestCase):
    def test_help_documents_commands_and_exit_codes(self):
        r = tlsgate("cert", "--help")
        self.assertEqual(r.returncode, 0)
        for word in ("create NAME", "csr NAME", "install NAME SIGNED.pem", "import NAME FILE.p12",
                     "export NAME FILE.p12", "list [--json]", "check NAME", "renew NAME",
                     "--password-file", "exit codes: 0 success; 1 the operation failed",
                     "2 usage error"):
            self.assertIn(word, r.stdout)
        r = tlsgate("trust", "--help")
        self.assertEqual(r.returncode, 0)
        for word in ("add FILE", "list", "remove NAME", "fetch HOST[:PORT]", "--starttls smtp",
                     "--implicit", "--yes", "exit codes: 0 success"):
            self.assertIn(word, r.stdout)

    def test_usage_errors_exit_2(self):
        for args in (["cert"], ["cert", "frobnicate"], ["cert", "create"],
                     ["cert", "create", "x", "--key", "dsa:1024"],
                     ["cert", "create", "x", "--days", "zero"], ["cert", "list", "--force"],
                     ["cert", "export", "x", "x.p12", "--password", "secret"],
                     ["trust", "remove"]):
            r = self.s.cli(*args)
            self.assertEqual(r.returncode, 2, "%s: %s" % (args, r.stderr))
            self.assertNotIn("secret", r.stdout + r.stderr)

    def test_store_found_through_the_configuration(self):
        conf = write(self.s.file("gw.ini"),
                     "[gateway]\ncerts_dir = %s\n[listener:in]\naddress = 127.0.0.1:2525\n"
                     "hostname = mx.example.test\ncertificate = mx\n" % self.s.certs)
        r = tlsgate("cert", "create", "mx", "-c", conf, "--key", "ec:P-256")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.exists(self.s.path("mx", "cert.pem")))
        # the CN comes from the hostname of the listener that uses the name
        self.assertEqual(subjects(self.s.path("mx", "cert.pem")), ["CN=mx.example.test"])
        r = tlsgate("cert", "list", "-c", conf, cwd=self.s.tmp)
        self.assertIn("mx", r.stdout)
        # without -c and without policy/tlsgate.ini there is no store
        r = tlsgate("cert", "list", cwd=self.s.tmp)
        self.assertOneSentence(r, "-c FILE or --certs-dir DIR")


class CreateTest(StoreTestCase):
    def test_create_key_certificate_and_csr(self):
        r = self.s.cli("cert", "create", "mx", "--cn", "mx.example.test", "--san",
                       "mx.example.test", "--san", "mail.example.test", "--san", "192.0.2.10",
                       "--org", "Example Org", "--ou", "Mail", "--locality", "Berlin",
                       "--state", "Berlin", "--country", "DE", "--email",
                       "postmaster@example.test", "--days", "200")
        self.assertEqual(r.returncode, 0, r.stderr)
        key, cert, csr = (self.s.path("mx", f) for f in ("key.pem", "cert.pem", "csr.pem"))
        self.assertEqual(mode_of(key), 0o600)
        self.assertEqual(mode_of(self.s.path("mx")), 0o700)
        # the CSR: its signature verifies; subject and requested names
        self.assertIn("verify OK", openssl_ok("req", "-in", csr, "-verify", "-noout"))
        text = openssl_ok("req", "-in", csr, "-noout", "-text", "-nameopt", "RFC2253")
        self.assertIn("emailAddress=postmaster@example.test,CN=mx.example.test,OU=Mail,"
                      "O=Example Org,L=Berlin,ST=Berlin,C=DE", text)
        self.assertIn("DNS:mx.example.test, DNS:mail.example.test, IP Address:192.0.2.10", text)
        # the certificate: self-signed RSA 2048 (the default), server use
        text = openssl_ok("x509", "-in", cert, "-noout", "-text")
        self.assertIn("Public-Key: (2048 bit)", text)
        self.assertIn("rsaEncryption", text)
        self.assertIn("DNS:mx.example.test, DNS:mail.example.test, IP Address:192.0.2.10", text)
        self.assertIn("CA:FALSE", text)
        self.assertIn("TLS Web Server Authentication", text)
        self.assertIn("sha256WithRSAEncryption", text)
        issuer = openssl_ok("x509", "-in", cert, "-noout", "-issuer", "-nameopt", "RFC2253")
        with open(cert) as f:
            self.assertIn(subject_of(f.read()), issuer)
        self.assertIn(": OK", openssl_ok("verify", "-CAfile", cert, cert))
        days = (not_after(cert) - datetime.datetime.utcnow()).days
        self.assertIn(days, (199, 200))
        # one key pair across all three files
        self.assertEqual(pubkey(key, "key"), pubkey(cert, "cert"))
        self.assertEqual(pubkey(key, "key"), pubkey(csr, "req"))
        self.assertNotIn("PRIVATE KEY", r.stdout + r.stderr)

    def test_key_types(self):
        for kind, want in (("ec:P-256", "NIST CURVE: P-256"), ("ec:P-384", "NIST CURVE: P-384"),
                           ("rsa:3072", "Public-Key: (3072 bit)"),
                           ("rsa:4096", "Public-Key: (4096 bit)")):
            name = kind.replace(":", "-")
            r = self.s.cli("cert", "create", name, "--cn", "mx.example.test", "--key", kind)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(want, openssl_ok("x509", "-in", self.s.path(name, "cert.pem"),
                                           "-noout", "-text"))
            self.assertIn("verify OK", openssl_ok("req", "-in", self.s.path(name, "csr.pem"),
                                                  "-verify", "-noout"))
            self.assertEqual(mode_of(self.s.path(name, "key.pem")), 0o600)
            # without --san the CN is the one subjectAltName
            self.assertIn("DNS:mx.example.test", openssl_ok(
                "x509", "-in", self.s.path(name, "cert.pem"), "-noout", "-ext",
                "subjectAltName"))

    def test_refuses_to_overwrite_without_force(self):
        self.assertEqual(self.s.cli("cert", "create", "mx", "--cn", "a.example.test", "--key",
                                    "ec:P-256").returncode, 0)
        with open(self.s.path("mx", "key.pem")) as f:
            key = f.read()
        r = self.s.cli("cert", "create", "mx", "--cn", "b.example.test", "--key", "ec:P-256")
        self.assertOneSentence(r, "already exists", "--force")
        with open(self.s.path("mx", "key.pem")) as f:
            self.assertEqual(f.read(), key)
        r = self.s.cli("cert", "create", "mx", "--cn", "b.example.test", "--key", "ec:P-256",
                       "--force")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(self.s.path("mx", "key.pem")) as f:
            self.assertNotEqual(f.read(), key)
        self.assertEqual(subjects(self.s.path("mx", "cert.pem")), ["CN=b.example.test"])

    def test_warns_when_a_listener_hostname_is_not_covered(self):
        conf = write(self.s.file("gw.ini"),
                     "[gateway]\ncerts_dir = %s\n"
                     "[listener:in]\naddress = 127.0.0.1:2525\nhostname = mx.example.test\n"
                     "certificate = mx\n"
                     "[listener:other]\naddress = 127.0.0.1:2526\nhostname = smtp.example.test\n"
                     "certificate = mx\n" % self.s.certs)
        r = tlsgate("cert", "create", "mx", "-c", conf, "--cn", "mx.example.test", "--key",
                    "ec:P-256")
        self.assertEqual(r.returncode, 0, r.stderr)
        warnings = [l for l in r.stderr.splitlines() if l.startswith("warning:")]
        self.assertEqual(len(warnings), 1, r.stderr)
        self.assertIn("listener other", warnings[0])
        self.assertIn("smtp.example.test", warnings[0])
        r = tlsgate("cert", "create", "mx", "-c", conf, "--cn", "mx.example.test", "--san",
                    "mx.example.test", "--san", "smtp.example.test", "--key", "ec:P-256",
                    "--force")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("warning:", r.stderr)

    def test_bad_subject_values(self):
        r = self.s.cli("cert", "create", "mx", "--cn", "mx.example.test", "--country", "Germany")
        self.assertOneSentence(r, "--country", "two-letter")
        r = self.s.cli("cert", "create", "mx", "--cn", "mx.example.test", "--san", "not a name")
        self.assertOneSentence(r, "--san", "not a name")
        self.assertFalse(os.path.exists(self.s.path("mx")))

    def test_csr_prints_the_request(self):
        self.s.cli("cert", "create", "mx", "--cn", "mx.example.test", "--key", "ec:P-256")
        r = self.s.cli("cert", "csr", "mx")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(self.s.path("mx", "csr.pem")) as f:
            self.assertEqual(r.stdout, f.read())
        self.assertIn("verify OK", openssl_ok("req", "-verify", "-noout", input=r.stdout))
        # a lost CSR is made again from the certificate and the key
        os.unlink(self.s.path("mx", "csr.pem"))
        r = self.s.cli("cert", "csr", "mx")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("verify OK", openssl_ok("req", "-verify", "-noout", input=r.stdout))
        self.assertEqual(pubkey(self.s.path("mx", "key.pem"), "key"),
                         pubkey(self.s.path("mx", "csr.pem"), "req"))
        self.assertOneSentence(self.s.cli("cert", "csr", "nosuch"), "no certificate named nosuch")


class InstallTest(StoreTestCase):
    def setUp(self):
        super().setUp()
        r = self.s.cli("cert", "create", "mx", "--cn", "mx.example.test", "--san",
                       "mx.example.test", "--san", "127.0.0.1", "--key", "ec:P-256")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.signed = self.s.sign(self.s.path("mx", "csr.pem"), self.s.file("signed.pem"))
        self.cert = self.s.path("mx", "cert.pem")
        self.ca = self.s.ca_path("ca.pem")
        self.intermediate = self.s.ca_path("intermediate.pem")

    def original(self):
        with open(self.cert) as f:
            return f.read()

    def test_complete_chain(self):
        r = self.s.cli("cert", "install", "mx", self.signed, "--chain", self.intermediate)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("outcome: complete chain", r.stdout)
        self.assertEqual(len(pem_blocks(self.cert)), 2)
        out = openssl_ok("verify", "-CAfile", self.ca, "-untrusted", self.cert, self.cert)
        self.assertIn(": OK", out)
        self.assertEqual(pubkey(self.cert, "cert"), pubkey(self.s.path("mx", "key.pem"), "key"))
        self.assertIn("SIGHUP", r.stdout)
        r = self.s.cli("cert", "check", "mx", "--host", "mx.example.test")
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertIn("result: ok", r.stdout)

    def test_missing_intermediate(self):
        r = self.s.cli("cert", "install", "mx", self.signed)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("outcome: missing intermediate", r.stdout)
        self.assertEqual(len(pem_blocks(self.cert)), 1)
        # the judge agrees: the leaf alone does not verify to the root
        r = openssl("verify", "-CAfile", self.ca, self.cert)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("unable to get local issuer certificate", r.stdout + r.stderr)
        r = self.s.cli("cert", "check", "mx", "--json")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(json.loads(r.stdout)["chain"]["status"], "missing_intermediate")

    def test_chain_ordered_and_duplicates_removed(self):
        chain = write(self.s.file("chain.pem"), "".join(
            pem_blocks(self.ca) + pem_blocks(self.intermediate) + pem_blocks(self.intermediate)))
        # the CA's "full chain" file: intermediate first, then the leaf
        full = write(self.s.file("full.pem"), "".join(pem_blocks(self.intermediate) +
                                                      pem_blocks(self.signed)))
        r = self.s.cli("cert", "install", "mx", full, "--chain", chain)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.count("removed a duplicate of 'tlsgate Test Intermediate CA'"),
                         2, r.stdout)
        self.assertIn("outcome: complete chain", r.stdout)
        self.assertEqual(subjects(self.cert), [
            "CN=mx.example.test",
            "CN=tlsgate Test Intermediate CA,O=tlsgate tests",
            "CN=tlsgate Test Root CA,O=tlsgate tests"])
        out = openssl_ok("verify", "-CAfile", self.ca, "-untrusted", self.cert, self.cert)
        self.assertIn(": OK", out)

    def test_unrelated_intermediate_refused(self):
        before = self.original()
        r = self.s.cli("cert", "install", "mx", self.signed, "--chain", self.intermediate,
                       "--chain", self.s.ca_path("other-ca.pem"))
        self.assertOneSentence(r, "refused", "tlsgate Other Root CA", "not part of the chain",
                               "nothing was installed")
        self.assertEqual(self.original(), before)

    def test_key_mismatch_refused(self):
        before = self.original()
        other = self.s.ca_path("good/cert.pem")
        # the judge: the public keys differ
        self.assertNotEqual(pubkey(other, "cert"), pubkey(self.s.path("mx", "key.pem"), "key"))
        r = self.s.cli("cert", "install", "mx", other)
        self.assertOneSentence(r, "does not match the private key of mx")
        self.assertEqual(self.original(), before)

    def test_expired_certificate(self):
        expired = self.s.ca_path("expired/cert.pem")
        r = openssl("x509", "-in", expired, "-noout", "-checkend", "0")
        self.assertNotEqual(r.returncode, 0)  # the judge: it has expired
        key = self.s.ca_path("expired/key.pem")
        r = self.s.cli("cert", "install", "old", expired, "--key-file", key)
        self.assertOneSentence(r, "expired on 2021-01-01", "--force")
        self.assertFalse(os.path.exists(self.s.path("old", "cert.pem")))
        r = self.s.cli("cert", "install", "old", expired, "--key-file", key, "--force")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("warning: the certificate expired", r.stderr)
        self.assertEqual(mode_of(self.s.path("old", "key.pem")), 0o600)
        r = self.s.cli("cert", "check", "old", "--json")
        self.assertEqual(r.returncode, 1)
        report = json.loads(r.stdout)
        self.assertTrue(report["expired"])
        self.assertFalse(report["ok"])
        self.assertTrue(any("expired on" in p for p in report["problems"]), report)

    def test_not_a_certificate(self):
        cases = [(self.s.path("mx", "csr.pem"), "certificate signing request"),
                 (self.s.path("mx", "key.pem"), "private key, not a certificate"),
                 (write(self.s.file("junk.txt"), "hello\n"), "not a certificate file"),
                 (self.s.file("missing.pem"), "No such file or directory")]
        for path, words in cases:
            r = self.s.cli("cert", "install", "mx", path)
            self.assertOneSentence(r, words)
            self.assertNotIn("BEGIN", r.stdout + r.stderr)
        # DER is read as well
        der = self.s.file("signed.der")
        openssl_ok("x509", "-in", self.signed, "-outform", "DER", "-out", der)
        r = self.s.cli("cert", "install", "mx", der, "--chain", self.intermediate)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("outcome: complete chain", r.stdout)

    def test_self_signed_outcome(self):
        cert = self.s.path("mx", "cert.pem")
        copy = shutil.copy(cert, self.s.file("self.pem"))
        r = self.s.cli("cert", "install", "mx", copy)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("outcome: self-signed", r.stdout)

    @unittest.skipUnless(os.geteuid() == 0 and shutil.which("setpriv"),
                         "needs root and setpriv to run as another user")
    def test_permission_denied(self):
        os.chmod(self.s.tmp, 0o755)
        os.chmod(self.s.certs, 0o755)
        r = self.s.cli("cert", "csr", "mx", user=65534)
        self.assertOneSentence(r, "Permission denied")
        r = self.s.cli("cert", "create", "other", "--cn", "x.example.test", "--key", "ec:P-256",
                       user=65534)
        self.assertOneSentence(r, "Permission denied")


class Pkcs12Test(StoreTestCase):
    def setUp(self):
        super().setUp()
        self.s.create_signed("mx")
        self.pw = self.s.password_file("correct horse")

    def test_export_import_round_trip(self):
        p12 = self.s.file("mx.p12")
        r = self.s.cli("cert", "export", "mx", p12, "--password-file", self.pw)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(mode_of(p12), 0o600)
        self.assertNotIn("correct horse", r.stdout + r.stderr)
        info = openssl_ok("pkcs12", "-info", "-in", p12, "-passin", "file:" + self.pw, "-noout")
        self.assertIn("MAC: sha256", info)
        self.assertIn("PBES2, PBKDF2, AES-256-CBC", info)
        self.assertNotIn("RC2", info)
        # the key inside is NAME's key
        key = openssl_ok("pkcs12", "-in", p12, "-passin", "file:" + self.pw, "-nocerts",
                         "-nodes")
        self.assertEqual(openssl_ok("pkey", "-pubout", input=key),
                         pubkey(self.s.path("mx", "key.pem"), "key"))
        r = self.s.cli("cert", "import", "copy", p12, "--password-file", self.pw)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(pubkey(self.s.path("copy", "key.pem"), "key"),
                         pubkey(self.s.path("mx", "key.pem"), "key"))
        with open(self.s.path("mx", "cert.pem")) as a, open(self.s.path("copy", "cert.pem")) as b:
            self.assertEqual(a.read(), b.read())
        self.assertEqual(mode_of(self.s.path("copy", "key.pem")), 0o600)
        self.assertIn("outcome: complete chain", r.stdout)
        # an existing name is replaced only with --force
        r = self.s.cli("cert", "import", "copy", p12, "--password-file", self.pw)
        self.assertOneSentence(r, "already exists", "--force")

    def test_wrong_password(self):
        p12 = self.s.file("mx.p12")
        self.s.cli("cert", "export", "mx", p12, "--password-file", self.pw)
        bad = self.s.password_file("wrong horse", "bad.txt")
        r = self.s.cli("cert", "import", "copy", p12, "--password-file", bad)
        self.assertOneSentence(r, "wrong password for " + p12)
        self.assertNotIn("wrong horse", r.stdout + r.stderr)
        self.assertFalse(os.path.exists(self.s.path("copy")))

    def test_imports_legacy_rc2_as_windows_writes(self):
        p12 = self.s.file("legacy.p12")
        openssl_ok("pkcs12", "-export", "-legacy", "-inkey", self.s.path("mx", "key.pem"),
                   "-in", self.s.path("mx", "cert.pem"), "-name", "Exchange",
                   "-passout", "file:" + self.pw, "-out", p12)
        info = openssl_ok("pkcs12", "-info", "-legacy", "-in", p12, "-passin",
                          "file:" + self.pw, "-noout")
        self.assertIn("pbeWithSHA1And40BitRC2-CBC", info)
        r = self.s.cli("cert", "import", "win", p12, "--password-file", self.pw)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(pubkey(self.s.path("win", "key.pem"), "key"),
                         pubkey(self.s.path("mx", "key.pem"), "key"))
        self.assertEqual(subjects(self.s.path("win", "cert.pem")),
                         subjects(self.s.path("mx", "cert.pem")))
        # without OpenSSL's legacy provider the error says what is missing
        r = self.s.cli("cert", "import", "win2", p12, "--password-file", self.pw,
                       env={"OPENSSL_MODULES": self.s.file("no-modules")})
        self.assertOneSentence(r, "pbeWithSHA1And40BitRC2-CBC", "legacy provider")

    def test_imports_3des_sha1(self):
        p12 = self.s.file("3des.p12")
        openssl_ok("pkcs12", "-export", "-keypbe", "PBE-SHA1-3DES", "-certpbe", "PBE-SHA1-3DES",
                   "-macalg", "sha1", "-inkey", self.s.path("mx", "key.pem"),
                   "-in", self.s.path("mx", "cert.pem"), "-passout", "file:" + self.pw,
                   "-out", p12)
        r = self.s.cli("cert", "import", "old", p12, "--password-file", self.pw)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(pubkey(self.s.path("old", "key.pem"), "key"),
                         pubkey(self.s.path("mx", "key.pem"), "key"))

    def test_export_legacy_for_old_windows(self):
        p12 = self.s.file("old.p12")
        r = self.s.cli("cert", "export", "mx", p12, "--legacy", "--password-file", self.pw)
        self.assertEqual(r.returncode, 0, r.stderr)
        info = openssl_ok("pkcs12", "-info", "-in", p12, "-passin", "file:" + self.pw, "-noout")
        self.assertIn("MAC: sha1", info)
        self.assertIn("pbeWithSHA1And3-KeyTripleDES-CBC", info)

    def test_password_prompt_does_not_echo(self):
        p12 = self.s.file("tty.p12")
        rc, shown = tlsgate_on_tty(["cert", "export", "mx", p12, "--certs-dir", self.s.certs],
                                   [b"tty secret\n", b"tty secret\n"])
        self.assertEqual(rc, 0, shown)
        self.assertIn("Password for %s:" % p12, shown)
        self.assertIn("Repeat the password:", shown)
        self.assertNotIn("tty secret", shown)
        pw = self.s.password_file("tty secret", "tty.txt")
        openssl_ok("pkcs12", "-info", "-in", p12, "-passin", "file:" + pw, "-noout")
        rc, shown = tlsgate_on_tty(["cert", "import", "back", p12, "--certs-dir", self.s.certs],
                                   [b"tty secret\n"])
        self.assertEqual(rc, 0, shown)
        self.assertNotIn("tty secret", shown)
        # two different answers, and Ctrl-C: nothing written
        rc, shown = tlsgate_on_tty(["cert", "export", "mx", self.s.file("b.p12"), "--certs-dir",
                                    self.s.certs], [b"one\n", b"two\n"])
        self.assertEqual(rc, 1, shown)
        self.assertIn("the two passwords differ", shown)
        rc, shown = tlsgate_on_tty(["cert", "export", "mx", self.s.file("c.p12"), "--certs-dir",
                                    self.s.certs], [b"\x03"])
        self.assertEqual(rc, 1, shown)
        self.assertIn("cancelled", shown)
        self.assertFalse(os.path.exists(self.s.file("b.p12")))
        self.assertFalse(os.path.exists(self.s.file("c.p12")))

    def test_not_pkcs12_and_no_password(self):
        r = self.s.cli("cert", "import", "x", self.s.path("mx", "cert.pem"), "--password-file",
                       self.pw)
        self.assertOneSentence(r, "is not a PKCS#12 file")
        r = self.s.cli("cert", "import", "x", write(self.s.file("junk"), "junk"),
                       "--password-file", self.pw)
        self.assertOneSentence(r, "is not a PKCS#12 file")
        # no password file and no terminal: says how to give one
        r = self.s.cli("cert", "export", "mx", self.s.file("x.p12"))
        self.assertOneSentence(r, "--password-file")
        empty = self.s.password_file("", "empty.txt")
        r = self.s.cli("cert", "export", "mx", self.s.file("x.p12"), "--password-file", empty)
        self.assertOneSentence(r, "empty password")
        self.assertFalse(os.path.exists(self.s.file("x.p12")))


class ListCheckRenewTest(StoreTestCase):
    def config(self):
        return write(self.s.file("gw.ini"),
                     "[gateway]\ncerts_dir = %s\n"
                     "[listener:in]\naddress = 127.0.0.1:2525\nhostname = mx.example.test\n"
                     "certificate = good\n"
                     "[listener:in2]\naddress = 127.0.0.1:2526\nhostname = other.example.test\n"
                     "certificate = good\n"
                     "[listener:gone]\naddress = 127.0.0.1:2527\nhostname = mx.example.test\n"
                     "certificate = nosuch\n" % self.s.certs)

    def test_list_table_and_json(self):
        for name in ("good", "selfsigned", "expired"):
            shutil.copytree(self.s.ca_path(name), self.s.path(name))
        conf = self.config()
        r = tlsgate("cert", "list", "-c", conf)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0].split(), ["NAME", "CN", "SANS", "KEY", "ISSUER", "NOT-AFTER",
                                            "DAYS", "SELF-SIGNED", "USED-BY"])
        good = [l for l in lines if l.startswith("good ")][0]
        self.assertIn("mx.example.test,localhost,127.0.0.1,::1", good)
        self.assertIn("in, in2 (hostname mismatch)", good)
        self.assertIn("listener gone uses certificate nosuch, which is not in the store",
                      r.stdout)
        r = tlsgate("cert", "list", "-c", conf, "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        data = json.loads(r.stdout)
        certs = {c["name"]: c for c in data["certificates"]}
        self.assertEqual(sorted(certs), ["expired", "good", "selfsigned"])
        g = certs["good"]
        self.assertEqual(g["cn"], "mx.example.test")
        self.assertEqual(g["sans"], ["mx.example.test", "localhost", "127.0.0.1", "::1"])
        self.assertEqual(g["key_type"], "ec:P-256")
        self.assertEqual(g["issuer_cn"], "tlsgate Test Intermediate CA")
        self.assertFalse(g["self_signed"])
        self.assertEqual(g["used_by"], [
            {"listener": "in", "hostname": "mx.example.test", "name_matches": True},
            {"listener": "in2", "hostname": "other.example.test", "name_matches": False}])
        leaf = pem_blocks(self.s.path("good", "cert.pem"))[0]
        self.assertEqual(g["sha256"], fingerprint(leaf))
        end = not_after(self.s.path("good", "cert.pem"))
        self.assertEqual(g["not_after"], end.strftime("%Y-%m-%dT%H:%M:%SZ"))
        self.assertIn(g["days_left"], ((end - datetime.datetime.utcnow()).days,))
        self.assertTrue(certs["selfsigned"]["self_signed"])
        self.assertTrue(certs["expired"]["expired"])
        self.assertLess(certs["expired"]["days_left"], 0)
        self.assertEqual(data["missing"], [{"listener": "gone", "certificate": "nosuch"}])

    def test_check(self):
        for name in ("good", "selfsigned", "expired", "wrongname"):
            shutil.copytree(self.s.ca_path(name), self.s.path(name))
        r = self.s.cli("cert", "check", "good", "--host", "mx.example.test")
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertIn("result: ok", r.stdout)
        r = self.s.cli("cert", "check", "good", "--host", "wrong.example.test", "--json")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(json.loads(r.stdout)["hosts"],
                         [{"host": "wrong.example.test", "matches": False}])
        r = self.s.cli("cert", "check", "selfsigned", "--host", "mx.example.test", "--json")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(json.loads(r.stdout)["chain"]["status"], "self_signed")
        r = self.s.cli("cert", "check", "expired", "--host", "mx.example.test")
        self.assertEqual(r.returncode, 1)
        self.assertIn("problem: 'mx.example.test' expired on 2021-01-01", r.stdout)
        # the listener hostnames are checked when no --host is given
        r = tlsgate("cert", "check", "good", "-c", self.config())
        self.assertEqual(r.returncode, 1)
        self.assertIn("host:     mx.example.test matches", r.stdout)
        self.assertIn("host:     other.example.test DOES NOT MATCH", r.stdout)
        # a private key readable by others is a problem
        os.chmod(self.s.path("good", "key.pem"), 0o644)
        r = self.s.cli("cert", "check", "good", "--host", "mx.example.test")
        self.assertEqual(r.returncode, 1)
        self.assertIn("readable by group or others", r.stdout)

    def test_check_warns_before_expiry(self):
        r = self.s.cli("cert", "create", "soon", "--cn", "soon.example.test", "--days", "10",
                       "--key", "ec:P-256")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.s.cli("trust", "add", self.s.path("soon", "cert.pem")).returncode, 0)
        r = self.s.cli("cert", "check", "soon", "--host", "soon.example.test", "--json")
        self.assertEqual(r.returncode, 0, r.stdout)
        report = json.loads(r.stdout)
        self.assertTrue(report["ok"])
        self.assertTrue(report["expires_soon"])
        self.assertTrue(any("expires in" in w for w in report["warnings"]), report)

    def test_renew_self_signed_same_key(self):
        self.s.cli("cert", "create", "mx", "--cn", "mx.example.test", "--key", "ec:P-256",
                   "--days", "5")
        cert = self.s.path("mx", "cert.pem")
        serial = openssl_ok("x509", "-in", cert, "-noout", "-serial")
        key = pubkey(self.s.path("mx", "key.pem"), "key")
        r = self.s.cli("cert", "renew", "mx", "--days", "100")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotEqual(openssl_ok("x509", "-in", cert, "-noout", "-serial"), serial)
        self.assertEqual(pubkey(cert, "cert"), key)
        self.assertEqual(pubkey(self.s.path("mx", "csr.pem"), "req"), key)
        self.assertIn((not_after(cert) - datetime.datetime.utcnow()).days, (99, 100))
        self.assertIn("verify OK", openssl_ok("req", "-in", self.s.path("mx", "csr.pem"),
                                              "-verify", "-noout"))

    def test_renew_ca_signed_keeps_the_certificate(self):
        self.s.create_signed("mx")
        cert = self.s.path("mx", "cert.pem")
        with open(cert) as f:
            before = f.read()
        key = pubkey(self.s.path("mx", "key.pem"), "key")
        r = self.s.cli("cert", "renew", "mx")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("stays in use", r.stdout)
        with open(cert) as f:
            self.assertEqual(f.read(), before)
        self.assertEqual(pubkey(self.s.path("mx", "csr.pem"), "req"), key)

    def test_renew_new_key_waits_for_the_signed_certificate(self):
        self.s.create_signed("mx")
        old = pubkey(self.s.path("mx", "key.pem"), "key")
        r = self.s.cli("cert", "renew", "mx", "--new-key", "--key", "rsa:2048")
        self.assertEqual(r.returncode, 0, r.stderr)
        pending = self.s.path("mx", "key.pending.pem")
        self.assertEqual(mode_of(pending), 0o600)
        self.assertEqual(pubkey(self.s.path("mx", "key.pem"), "key"), old)
        new = pubkey(pending, "key")
        self.assertNotEqual(new, old)
        self.assertEqual(pubkey(self.s.path("mx", "csr.pem"), "req"), new)
        # the gateway still has a matching pair until the signed one comes
        self.assertEqual(pubkey(self.s.path("mx", "cert.pem"), "cert"), old)
        signed = self.s.sign(self.s.path("mx", "csr.pem"), self.s.file("renewed.pem"))
        r = self.s.cli("cert", "install", "mx", signed, "--chain",
                       self.s.ca_path("intermediate.pem"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("pending key", r.stdout)
        self.assertFalse(os.path.exists(pending))
        self.assertEqual(pubkey(self.s.path("mx", "key.pem"), "key"), new)
        self.assertEqual(pubkey(self.s.path("mx", "cert.pem"), "cert"), new)
        self.assertIn("Public-Key: (2048 bit)", openssl_ok(
            "x509", "-in", self.s.path("mx", "cert.pem"), "-noout", "-text"))

    def test_renew_self_signed_new_key(self):
        self.s.cli("cert", "create", "mx", "--cn", "mx.example.test", "--key", "ec:P-256")
        old = pubkey(self.s.path("mx", "key.pem"), "key")
        r = self.s.cli("cert", "renew", "mx", "--new-key")
        self.assertEqual(r.returncode, 0, r.stderr)
        new = pubkey(self.s.path("mx", "key.pem"), "key")
        self.assertNotEqual(new, old)
        self.assertEqual(pubkey(self.s.path("mx", "cert.pem"), "cert"), new)
        self.assertIn("NIST CURVE: P-256", openssl_ok(
            "x509", "-in", self.s.path("mx", "cert.pem"), "-noout", "-text"))


# ---------------------------------------------------------------------------


def s_client_chain(host, port, starttls=True):
    """`openssl s_client -showcerts` against a listener: the list of PEM
    certificates the server presented, and the whole output."""
    cmd = ["openssl", "s_client", "-connect", "%s:%d" % (host, port), "-showcerts",
           "-servername", HOSTNAME, "-CAfile", ca_file()]
    if starttls:
        cmd += ["-starttls", "smtp"]
    r = subprocess.run(cmd, input="QUIT\n", capture_output=True, text=True, timeout=30)
    return re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n", r.stdout,
                      re.S), r.stdout


class SighupTest(unittest.TestCase):
    """`cert install` then SIGHUP: new sessions get the new certificate,
    a session in flight keeps its own and stays up."""

    def test_install_then_sighup(self):
        gw = Gateway(listeners={"in": {"certificate": "srv"}})
        self.addCleanup(lambda: gw.finish())
        r = tlsgate("cert", "create", "srv", "-c", gw.config_path, "--san", HOSTNAME, "--san",
                    "127.0.0.1", "--key", "ec:P-256", cwd=gw.tmp)
        self.assertEqual(r.returncode, 0, r.stderr)
        gw.start()
        host = gw.listener_host("in")
        chain, _ = s_client_chain(host, gw.ports["in"])
        self.assertEqual(len(chain), 1)
        with open(os.path.join(gw.certs_dir, "srv", "cert.pem")) as f:
            self.assertEqual(chain[0], f.read())
        # a session in flight, over TLS with the self-signed certificate
        old = gw.connect()
        old.ehlo()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(os.path.join(gw.certs_dir, "srv", "cert.pem"))
        self.assertEqual(old.starttls(context=ctx).code, 220)
        old_der = old.sock.getpeercert(binary_form=True)
        # the CA signs the CSR; install with the intermediate; SIGHUP
        store = Store()
        self.addCleanup(store.remove)
        signed = store.sign(os.path.join(gw.certs_dir, "srv", "csr.pem"),
                            store.file("signed.pem"))
        r = tlsgate("cert", "install", "srv", signed, "--chain",
                    store.ca_path("intermediate.pem"), "-c", gw.config_path, cwd=gw.tmp)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("outcome: complete chain", r.stdout)
        mark = gw.log_count()
        gw.send_signal(signal.SIGHUP)
        gw.wait_for_log(r"^configuration reloaded", since=mark)
        chain, out = s_client_chain(host, gw.ports["in"])
        self.assertEqual(len(chain), 2, out)
        self.assertEqual(chain, pem_blocks(os.path.join(gw.certs_dir, "srv", "cert.pem")))
        self.assertIn("Verify return code: 0 (ok)", out)
        # the old session is still up, on its old certificate
        self.assertEqual(old.ehlo(name="again.example.test").code, 250)
        self.assertEqual(old.cmd("NOOP").code, 250)
        self.assertEqual(old.sock.getpeercert(binary_form=True), old_der)
        # and a new verifying client is happy now
        new = gw.connect()
        new.ehlo()
        self.assertEqual(new.starttls(context=client_context()).code, 220)
        self.assertEqual(new.cmd("NOOP").code, 250)


if __name__ == "__main__":
    unittest.main()
