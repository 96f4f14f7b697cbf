/* The JSON door (docs/vhdkitd.8.md, "JSON"): HTTP over a Unix socket,
 * served by libmicrohttpd.
 *
 *   POST /root/virtualization/v2/<Class>/<Method>   a method call
 *   GET  /root/virtualization/v2/Msvm_ConcreteJob   every job
 *   GET  /root/virtualization/v2/Msvm_ConcreteJob/<InstanceID>
 *
 * Limits: a request body of at most MAX_BODY bytes (413 beyond), 64 KiB
 * of headers per connection (libmicrohttpd answers 431/413), a 30 s idle
 * timeout per connection (a slow or half-sent request is dropped), at
 * most 256 connections.  The peer of the Unix socket must be an allowed
 * user (SO_PEERCRED, access_peer_ok) or gets 403.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <microhttpd.h>

#include "vhdkitd.h"

#define MAX_BODY (1u << 20)
#define PREFIX "/" VHDKITD_NAMESPACE "/"

static struct MHD_Daemon *mhd;
static char *socket_path;

struct req {
  char *body;
  size_t len;
  bool too_big, denied;
};

static enum MHD_Result
reply (struct MHD_Connection *conn, unsigned status, json_t *v)
{
  char *text = json_dumps (v, JSON_COMPACT);
  json_decref (v);
  if (!text) text = strdup ("{\"ReturnValue\":32778,\"ErrorDescription\":\"out of memory\"}");
  size_t n = strlen (text);
  text = realloc (text, n + 2);
  text[n] = '\n';
  text[n + 1] = 0;
  struct MHD_Response *r = MHD_create_response_from_buffer (n + 1, text, MHD_RESPMEM_MUST_FREE);
  MHD_add_response_header (r, "Content-Type", "application/json");
  enum MHD_Result ret = MHD_queue_response (conn, status, r);
  MHD_destroy_response (r);
  return ret;
}

static enum MHD_Result
reply_error (struct MHD_Connection *conn, unsigned status, uint32_t rc, const char *fmt, ...)
  __attribute__ ((format (printf, 4, 5)));

static enum MHD_Result
reply_error (struct MHD_Connection *conn, unsigned status, uint32_t rc, const char *fmt, ...)
{
  char msg[1024];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  return reply (conn, status, json_pack ("{s:i, s:n, s:o}", "ReturnValue", (int) rc, "Job", "ErrorDescription", json_text (msg)));
}

json_t *
dispatch (const struct method *m, json_t *in)
{
  struct call c = { .m = m };
  json_t *out = json_object ();
  char jobpath[256] = "";
  uint32_t rc;
  if (jobs_stopping ())
    rc = call_fail (&c, VHDKIT_RC_NOT_AVAILABLE, "vhdkitd is stopping");
  else if ((rc = params_check (&c, in)) == 0) {
    if (m->job)
      rc = params_precheck (&c, in) ?: jobs_start (&c, in, jobpath, sizeof jobpath);
    else if (m->deadline_ms)
      rc = jobs_run_deadline (&c, in, out, m->deadline_ms, jobpath, sizeof jobpath);
    else
      rc = m->fn (&c, in, out);
  }
  if (rc != 0 && rc != VHDKIT_RC_JOB_STARTED) {
    /* A failed call has no out-parameters. */
    json_decref (out);
    out = json_object ();
  }
  json_t *res = json_object ();
  json_object_set_new (res, "ReturnValue", json_integer (rc));
  json_object_update (res, out);
  json_decref (out);
  json_object_set_new (res, "Job", *jobpath ? json_string (jobpath) : json_null ());
  json_object_set_new (res, "ErrorDescription", json_text (rc == 0 || rc == VHDKIT_RC_JOB_STARTED ? "" : c.error));
  return res;
}

static bool
peer_ok (struct MHD_Connection *conn)
{
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info (conn, MHD_CONNECTION_INFO_CONNECTION_FD);
  struct ucred cr;
  socklen_t l = sizeof cr;
  if (!ci || getsockopt (ci->connect_fd, SOL_SOCKET, SO_PEERCRED, &cr, &l) == -1) return false;
  return access_peer_ok (cr.uid, cr.gid);
}

static enum MHD_Result
handle (void *cls, struct MHD_Connection *conn, const char *url, const char *method,
        const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
  (void) cls; (void) version;
  struct req *q = *con_cls;
  if (!q) {
    q = calloc (1, sizeof *q);
    if (!q) return MHD_NO;
    q->denied = !peer_ok (conn);
    *con_cls = q;
    return MHD_YES;
  }
  if (*upload_size) {
    if (!q->too_big && !q->denied) {
      if (q->len + *upload_size > MAX_BODY) {
        q->too_big = true;
        free (q->body);
        q->body = NULL;
      }
      else {
        char *b = realloc (q->body, q->len + *upload_size + 1);
        if (!b) q->too_big = true;
        else {
          memcpy (b + q->len, upload, *upload_size);
          q->body = b;
          q->len += *upload_size;
        }
      }
    }
    *upload_size = 0;
    return MHD_YES;
  }
  if (q->denied)
    return reply_error (conn, MHD_HTTP_FORBIDDEN, VHDKIT_RC_ACCESS_DENIED,
                        "this user may not use vhdkitd (see allow-user and allow-group in vhdkitd(8))");
  if (q->too_big)
    return reply_error (conn, 413, VHDKIT_RC_INVALID_PARAMETER,
                        "the request body is larger than %u bytes", MAX_BODY);
  if (strncmp (url, PREFIX, strlen (PREFIX)) != 0)
    return reply_error (conn, MHD_HTTP_NOT_FOUND, VHDKIT_RC_INVALID_PARAMETER,
                        "no such resource: %.200s (methods are under " PREFIX ")", url);
  const char *rest = url + strlen (PREFIX);
  char klass[128], name[128];
  const char *slash = strchr (rest, '/');
  size_t kl = slash ? (size_t) (slash - rest) : strlen (rest);
  if (kl == 0 || kl >= sizeof klass)
    return reply_error (conn, MHD_HTTP_NOT_FOUND, VHDKIT_RC_INVALID_PARAMETER, "no such class in %.200s", url);
  memcpy (klass, rest, kl);
  klass[kl] = 0;
  snprintf (name, sizeof name, "%s", slash ? slash + 1 : "");

  if (strcmp (method, "GET") == 0) {
    if (strcmp (klass, "Msvm_ConcreteJob") != 0)
      return reply_error (conn, MHD_HTTP_NOT_FOUND, VHDKIT_RC_NOT_SUPPORTED,
                          "GET is for Msvm_ConcreteJob only (not %.100s)", klass);
    if (!*name)
      return reply (conn, MHD_HTTP_OK, json_pack ("{s:o}", "Msvm_ConcreteJob", jobs_list ()));
    json_t *j = jobs_get (name);
    if (!j)
      return reply_error (conn, MHD_HTTP_NOT_FOUND, VHDKIT_RC_INVALID_PARAMETER, "no job %.100s", name);
    return reply (conn, MHD_HTTP_OK, j);
  }
  if (strcmp (method, "POST") != 0)
    return reply_error (conn, MHD_HTTP_METHOD_NOT_ALLOWED, VHDKIT_RC_NOT_SUPPORTED,
                        "HTTP method %.20s: methods are called with POST, jobs read with GET", method);
  const struct method *m = method_find (klass, name);
  if (!m)
    return reply_error (conn, MHD_HTTP_NOT_FOUND, VHDKIT_RC_INVALID_PARAMETER,
                        class_known (klass) ? "class %.100s has no method \"%.100s\"" : "no class %.100s (method %.100s)",
                        klass, name);
  json_error_t err;
  json_t *in = json_loadb (q->body ? q->body : "", q->len, JSON_REJECT_DUPLICATES, &err);
  if (!in)
    return reply_error (conn, MHD_HTTP_BAD_REQUEST, VHDKIT_RC_INCORRECT_TYPE,
                        "the request body is not valid JSON: %s (line %d, column %d)", err.text, err.line, err.column);
  json_t *res = dispatch (m, in);
  json_decref (in);
  return reply (conn, MHD_HTTP_OK, res);
}

static void
done (void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
  (void) cls; (void) conn; (void) toe;
  struct req *q = *con_cls;
  if (q) {
    free (q->body);
    free (q);
  }
  *con_cls = NULL;
}

int
http_start_unix (const char *path, unsigned mode, unsigned threads)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  if (strlen (path) >= sizeof sa.sun_path) {
    vlog ("socket path %s is too long (at most %zu bytes)", path, sizeof sa.sun_path - 1);
    return -1;
  }
  strcpy (sa.sun_path, path);
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd == -1) { vlog ("socket: %s", strerror (errno)); return -1; }
  /* A socket file left by a daemon that died: replace it, but never
   * another kind of file, and never a socket something answers on. */
  struct stat st;
  if (lstat (path, &st) == 0) {
    if (!S_ISSOCK (st.st_mode)) {
      vlog ("%s exists and is not a socket; not replacing it", path);
      close (fd);
      return -1;
    }
    int probe = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe != -1 && connect (probe, (struct sockaddr *) &sa, sizeof sa) == 0) {
      close (probe);
      close (fd);
      vlog ("%s: another vhdkitd is already listening there", path);
      return -1;
    }
    if (probe != -1) close (probe);
    unlink (path);
  }
  mode_t old = umask (0177);
  int b = bind (fd, (struct sockaddr *) &sa, sizeof sa);
  umask (old);
  if (b == -1 || chmod (path, mode) == -1 || listen (fd, 128) == -1) {
    vlog ("%s: %s", path, strerror (errno));
    close (fd);
    return -1;
  }
  mhd = MHD_start_daemon (MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG,
                          0, NULL, NULL, handle, NULL,
                          MHD_OPTION_LISTEN_SOCKET, fd,
                          MHD_OPTION_THREAD_POOL_SIZE, (unsigned int) (threads ? threads : 4),
                          MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int) 30,
                          MHD_OPTION_CONNECTION_LIMIT, (unsigned int) 256,
                          MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) 65536,
                          MHD_OPTION_NOTIFY_COMPLETED, done, NULL,
                          MHD_OPTION_END);
  if (!mhd) {
    vlog ("%s: the HTTP server did not start", path);
    close (fd);
    unlink (path);
    return -1;
  }
  socket_path = strdup (path);
  return 0;
}

void
http_stop (void)
{
  if (mhd) MHD_stop_daemon (mhd);
  mhd = NULL;
  if (socket_path) unlink (socket_path);
  free (socket_path);
  socket_path = NULL;
}
