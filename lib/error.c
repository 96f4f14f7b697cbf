/* Thread-local last error (see vhdkit.h, "Conventions").  No locking:
 * each thread has its own copy.  Layer 0: every layer may call it.  The
 * public getters (vhdkit_get_error and the others) are in api.c and
 * return what error_message, error_errno and error_code return here:
 * internal code reads its error through these, never the public API. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

#define MSG_MAX 1024

static _Thread_local char msg[MSG_MAX];
static _Thread_local int last_errno;
static _Thread_local uint32_t last_rc;
static _Thread_local unsigned held;

const char *error_message (void) { return msg; }
int error_errno (void) { return last_errno; }
uint32_t error_code (void) { return last_rc; }

void
clear_error (void)
{
  held = 0;
  msg[0] = '\0';
  last_errno = 0;
  last_rc = VHDKIT_RC_OK;
}

void error_hold (void) { held++; }
void error_release (void) { held--; }

uint32_t
rc_from_errno (int e)
{
  switch (e) {
  case ENOENT: case ENOTDIR: return VHDKIT_RC_FILE_NOT_FOUND;
  case EACCES: case EPERM: case EROFS: return VHDKIT_RC_ACCESS_DENIED;
  case ENOMEM: return VHDKIT_RC_OUT_OF_MEMORY;
  case ENXIO: case ENODEV: case ESTALE: return VHDKIT_RC_NOT_AVAILABLE;
  case EWOULDBLOCK: case EBUSY: return VHDKIT_RC_IN_USE;
  case ETIMEDOUT: return VHDKIT_RC_TIMEOUT;
  case EINVAL: case ENAMETOOLONG: case ERANGE: return VHDKIT_RC_INVALID_PARAMETER;
  case EEXIST: return VHDKIT_RC_INVALID_PARAMETER;
  case ENOTSUP: return VHDKIT_RC_NOT_SUPPORTED;
  default: return VHDKIT_RC_FAILED;
  }
}

static void
vset (uint32_t rc, int errnum, const char *fmt, va_list ap)
{
  if (held) return;
  char buf[MSG_MAX];
  vsnprintf (buf, sizeof buf, fmt, ap);
  if (errnum)
    snprintf (msg, sizeof msg, "%s: %s", buf, strerror (errnum));
  else
    snprintf (msg, sizeof msg, "%s", buf);
  last_errno = errnum;
  last_rc = rc;
}

void
set_error (uint32_t rc, int errnum, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  vset (rc, errnum, fmt, ap);
  va_end (ap);
}

void
set_error_errno (int errnum, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  vset (rc_from_errno (errnum), errnum, fmt, ap);
  va_end (ap);
}

void
error_prefix (const char *fmt, ...)
{
  char pre[MSG_MAX], old[MSG_MAX];
  va_list ap;
  if (held) return;
  va_start (ap, fmt);
  vsnprintf (pre, sizeof pre, fmt, ap);
  va_end (ap);
  snprintf (old, sizeof old, "%s", msg);
  snprintf (msg, sizeof msg, "%s: %s", pre, old);
}

const char *
rc_name (uint32_t rc)
{
  switch (rc) {
  case VHDKIT_RC_OK: return "Completed with No Error";
  case VHDKIT_RC_JOB_STARTED: return "Method Parameters Checked - Job Started";
  case VHDKIT_RC_FAILED: return "Failed";
  case VHDKIT_RC_ACCESS_DENIED: return "Access Denied";
  case VHDKIT_RC_NOT_SUPPORTED: return "Not Supported";
  case VHDKIT_RC_STATUS_UNKNOWN: return "Status is unknown";
  case VHDKIT_RC_TIMEOUT: return "Timeout";
  case VHDKIT_RC_INVALID_PARAMETER: return "Invalid parameter";
  case VHDKIT_RC_IN_USE: return "System is in use";
  case VHDKIT_RC_INVALID_STATE: return "Invalid state for this operation";
  case VHDKIT_RC_INCORRECT_TYPE: return "Incorrect data type";
  case VHDKIT_RC_NOT_AVAILABLE: return "System is not available";
  case VHDKIT_RC_OUT_OF_MEMORY: return "Out of memory";
  case VHDKIT_RC_FILE_NOT_FOUND: return "File not found";
  default: return NULL;
  }
}
