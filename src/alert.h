/*
 * alert: the administrator's alert when a required TLS level fails (SPEC
 * section 7) — always a Warning line in the mail log (written by the
 * caller), and, when [alerts] is configured, one message per destination
 * per interval to the configured recipients through the configured route
 * (a Maildir or a host).  Must not: raise an alert about its own delivery,
 * or hold more than one pending alert per destination.
 */
#ifndef TLSGATE_ALERT_H
#define TLSGATE_ALERT_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <uv.h>

#include "snapshot.h"

/* Sends the alert for DOMAIN (WHY says what failed) unless one was sent
 * for it less than alerts.interval seconds ago.  Safe from any worker. */
void alert_raise(uv_loop_t *loop, struct snapshot *snap, const char *domain, const char *why);

/* Sends the alert that certificate NAME (TEXT: what and when) expires
 * within 30 days or has expired, at most once per interval. */
void alert_certificate(uv_loop_t *loop, struct snapshot *snap, const char *name, const char *text);

/* True if an alert for DOMAIN at time NOW is due, and records it as sent
 * (the rate limit, exposed for tests).  INTERVAL in seconds. */
bool alert_due(const char *domain, time_t now, int interval);

#endif
