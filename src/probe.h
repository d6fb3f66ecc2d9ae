/*
 * probe: "tlsgate probe", a CheckTLS-style test of what tlsgate would get
 * from a destination (SPEC sections 3 and 8).  For a domain it looks up
 * the MX targets (route_mx_lookup, the lookup the gateway uses), and for
 * each MX host and address it connects, reads the greeting, sends EHLO,
 * checks that STARTTLS is advertised, runs STARTTLS and the handshake with
 * the gateway's own client context (certstore_client_ctx: the protocol
 * floor, security level 2, the trust store), shows the protocol, cipher,
 * server temporary key and presented chain, verifies the chain and the
 * name as the gateway does (tls_verify_peer), times every step, and says
 * what each of the five destination levels would do.  It never sends mail:
 * each session ends with QUIT after EHLO.
 *
 * Must not: include OpenSSL headers (tls and certstore do the TLS), run on
 * the event loop, or write the mail log.  Blocking sockets with a
 * per-step timeout are fine here: this is a command-line tool.
 *
 * Usage:
 *   tlsgate probe DOMAIN | HOST[:PORT] | [ADDRESS][:PORT] [options]
 *     --starttls        STARTTLS after EHLO (the default)
 *     --implicit        TLS from the first byte (SMTPS; default port 465)
 *     --host            treat the argument as a host name, not a domain
 *     --port N          the port (default 25, or 465 with --implicit);
 *                       in MX mode the port of every MX target
 *     --name NAME       the reference name to verify and send as SNI,
 *                       instead of the MX host and the domain / the host
 *     --ehlo NAME       the EHLO name (default: the configuration's
 *                       [gateway] hostname, else this machine's name)
 *     --trust FILE      verify against the PEM certificates in FILE only
 *     --policy LEVEL    none | preferred | required | preferred-verify |
 *                       required-verify (the default) | config (the level
 *                       the configuration gives the domain or host)
 *     -c FILE           the configuration: certs_dir/trust, system_trust,
 *                       min_tls_version, ciphers, hostname (default
 *                       policy/tlsgate.ini when it exists)
 *     --certs-dir DIR   the certificate store (trust anchors in DIR/trust,
 *                       used with the system store); overrides the
 *                       configuration's certs_dir
 *     --timeout SECS    the limit for each step (default 20)
 *     --no-retry        no permissive retry after a failed handshake
 *     --json            the report as JSON (below) on standard output
 *
 * Domain or host: an argument with a port ("mx.example.org:2525",
 * "[2001:db8::1]:25"), an IP address (bare or in brackets), or any
 * argument with --host is a host and is probed directly; anything else is
 * a domain and its MX targets are probed (the implicit MX when it has no
 * MX record).  A host name is resolved with getaddrinfo, except under the
 * TLSGATE_HOSTS_MX test hook (route_mx.h), whose A/AAAA lines are then
 * used.
 *
 * Reference names (as the gateway checks them, SPEC section 3): in MX mode
 * the MX host name and the domain; in host mode the host (an IP address
 * never matches a DNS-ID, as in the gateway); --name replaces them.  SNI
 * is the MX host / the host, never an IP address.
 *
 * Trust store: --trust FILE alone; else certs_dir/trust of --certs-dir or
 * of the configuration (without either: ./certs/trust when present) plus
 * the system store when system_trust = yes (the default).
 *
 * Failed handshakes: after a handshake that fails with the gateway's
 * context (for instance "dh key too small" from a server with only
 * 1024-bit DHE, which security level 2 refuses), the probe connects once
 * more with a permissive context (security level 0, TLS 1.0 floor, every
 * cipher) only to report what the server offers; the verdicts always come
 * from the gateway's context.
 *
 * Exit status: 0 when the chosen --policy would deliver through at least
 * one probed target (the gateway tries the MX targets in order and moves
 * on after a failure, so one target that passes is enough; the report
 * names the first), 1 when it would not (or the lookup failed), 2 for a
 * usage or set-up error (bad option, unreadable configuration or trust
 * file).
 *
 * JSON (--json), one object:
 *   query        the domain or host, lower-case, without port or brackets
 *   mode         "mx" | "host"
 *   tls_mode     "starttls" | "implicit"
 *   port, ehlo, policy, trust (a description of the trust store)
 *   lookup       {"status": "ok"|"nxdomain"|"null-mx"|"nodata"|"tempfail"|
 *                 "error", "error": null | text}
 *   targets      [target, ...] in the order the gateway tries them
 *   result       {"policy", "deliver": bool, "via": null | {"host",
 *                 "address", "port"}, "text"}
 *   exit         the exit status
 * target:
 *   host, preference (null in host mode), implicit_mx (bool), address,
 *   port, sni (null for none), reference_names [..]
 *   failed_step  null | "connect" | "greeting" | "ehlo" | "starttls" |
 *                "tls" | "ehlo_tls": where the session stopped early
 *   error        null | why that step failed
 *   connect      {"ok", "ms"}
 *   greeting     null | reply
 *   ehlo         null | reply + {"command": "EHLO"|"HELO",
 *                "extensions": ["PIPELINING", "SIZE 10240000", ...]}
 *   starttls_offered  bool
 *   starttls     null | reply + {"data_after_220": bool}
 *   tls          null (not attempted) | tls
 *   permissive   null (no retry) | tls, from the permissive retry
 *   flags        [..]: "dh-key-too-small" (our handshake failed on the
 *                server's DH group), "dh-below-2048", "tls-below-1.2",
 *                "weak-cipher" (seen in either attempt),
 *                "data-after-starttls", "certificate-expired",
 *                "certificate-expires-soon" (leaf, under 30 days)
 *   verdicts     {"none": verdict, "preferred": ..., "required": ...,
 *                 "preferred-verify": ..., "required-verify": ...}
 * reply: {"code": int, "text": the reply lines joined with "\n", "ms"}
 * tls:
 *   ok, ms, error (null | OpenSSL's text), reason (null | its short form,
 *   e.g. "dh key too small"); only when ok: protocol, cipher, cipher_bits,
 *   temp_key     null | {"kind": "DH"|"ECDH", "group": "X25519"|"P-256"|
 *                "" , "bits"}
 *   chain        [{"subject", "issuer", "not_before", "not_after" (ISO
 *                8601 UTC), "days_left", "expired", "self_signed", "key",
 *                "san": ["DNS:...", "IP:..."]}], leaf first, as presented
 *   chain_verify {"ok", "result": "ok"|"no-certificate"|"expired"|
 *                "untrusted"|"other", "reason": null | text}
 *   name_verify  {"ok", "matched": null | the reference name that matched,
 *                "checked": [..], "reason": null | text}
 *   ehlo         null | the EHLO reply inside TLS (as above)
 * verdict:
 *   deliver, encrypted (bools); verified (the level checks the certificate
 *   and it passed: false for none, preferred and required); reason (null
 *   when nothing stood in the way, else why, also when preferred-verify
 *   delivers unverified: "connect-failed", "greeting-failed",
 *   "ehlo-failed", "starttls-not-supported", "starttls-refused",
 *   "handshake-failed", "dh-key-too-small", "no-certificate",
 *   "certificate-expired", "certificate-not-trusted",
 *   "certificate-host-mismatch", "validation-failure": the RFC 8460
 *   result types where one fits); text ("would deliver encrypted
 *   (unverified)", "would NOT deliver: certificate has expired").
 */
#ifndef TLSGATE_PROBE_H
#define TLSGATE_PROBE_H

/* "tlsgate probe ..." with ARGV[0] = "probe"; returns the exit status. */
int probe_main(int argc, char **argv);

#endif
