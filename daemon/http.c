/* The HTTP doors (docs/vhdkitd.8.md, "JSON" and "TCP, credentials and
 * TLS"), served by libmicrohttpd, on a Unix socket and, with --listen,
 * on one TCP port (TLS with --tls-cert/--tls-key):
 *
 *   POST /root/virtualization/v2/<Class>/<Method>   a method call (JSON)
 *   GET  /root/virtualization/v2/Msvm_ConcreteJob   every job
 *   GET  /root/virtualization/v2/Msvm_ConcreteJob/<InstanceID>
 *   POST /cimom                                     CIM-XML (cimxml.c)
 *
 * Limits: a request body of at most MAX_BODY bytes (413 beyond), 64 KiB
 * of headers per connection (libmicrohttpd answers 431/413), a 30 s idle
 * timeout per connection (a slow or half-sent request is dropped), at
 * most 256 connections per listener.  The peer of the Unix socket must
 * be an allowed user (SO_PEERCRED, access_peer_ok) or gets 403.  Over
 * TCP every request authenticates (auth.c): HTTP Basic for CIM-XML,
 * Basic or a bearer token for JSON, else 401 with WWW-Authenticate and
 * a sentence, answered before the body is read.  A success is
 * remembered for the rest of the connection (wbemcli sends GetClass and
 * then the call on one connection), until the credentials are reloaded.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <microhttpd.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "vhdkitd.h"

#define MAX_BODY (1u << 20)
#define PREFIX "/" VHDKITD_NAMESPACE "/"

#define CIMOM "/cimom"

static struct MHD_Daemon *mhd, *mhd_tcp;
static char *socket_path;

/* The listener a connection came in on (the handler's cls). */
struct door {
  bool tcp;
};
static struct door door_unix = { false }, door_tcp = { true };

struct req {
  char *body;
  size_t len;
  bool too_big, denied;
};

/* Per TCP connection: the Authorization value that passed, and the
 * credentials' generation it passed with. */
struct sock {
  char *auth;
  unsigned generation;
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

/* 401 with WWW-Authenticate and the sentence, in the door's language. */
static enum MHD_Result
reply_unauthorized (struct MHD_Connection *conn, bool cim, const char *why)
{
  char msg[512];
  struct MHD_Response *r;
  if (cim) {
    snprintf (msg, sizeof msg, "vhdkitd: %s\n", why);
    r = MHD_create_response_from_buffer (strlen (msg), msg, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header (r, "Content-Type", "text/plain; charset=utf-8");
  }
  else {
    json_t *v = json_pack ("{s:i, s:n, s:s}", "ReturnValue", (int) VHDKIT_RC_ACCESS_DENIED, "Job",
                           "ErrorDescription", why);
    char *text = v ? json_dumps (v, JSON_COMPACT) : NULL;
    json_decref (v);
    r = MHD_create_response_from_buffer (text ? strlen (text) : 0, text, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header (r, "Content-Type", "application/json");
  }
  MHD_add_response_header (r, "WWW-Authenticate", "Basic realm=\"vhdkitd\", charset=\"UTF-8\"");
  if (!cim) MHD_add_response_header (r, "WWW-Authenticate", "Bearer realm=\"vhdkitd\"");
  enum MHD_Result ret = MHD_queue_response (conn, MHD_HTTP_UNAUTHORIZED, r);
  MHD_destroy_response (r);
  return ret;
}

static enum MHD_Result
reply_too_big (struct MHD_Connection *conn, bool cim)
{
  if (!cim)
    return reply_error (conn, 413, VHDKIT_RC_INVALID_PARAMETER,
                        "the request body is larger than %u bytes", MAX_BODY);
  char msg[128];
  snprintf (msg, sizeof msg, "vhdkitd: the request body is larger than %u bytes\n", MAX_BODY);
  struct MHD_Response *r = MHD_create_response_from_buffer (strlen (msg), msg, MHD_RESPMEM_MUST_COPY);
  MHD_add_response_header (r, "Content-Type", "text/plain; charset=utf-8");
  enum MHD_Result ret = MHD_queue_response (conn, 413, r);
  MHD_destroy_response (r);
  return ret;
}

/* Over TCP: may this request go on?  WHY gets the sentence if not. */
static bool
authorized (struct MHD_Connection *conn, bool cim, char *why, size_t n)
{
  const char *h = MHD_lookup_connection_value (conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info (conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  struct sock *s = ci ? ci->socket_context : NULL;
  unsigned gen = auth_generation ();
  unsigned kinds = cim ? AUTH_BASIC : AUTH_BASIC | AUTH_BEARER;
  /* Remembered: the same value passed before on this connection (for
   * either door only if it is Basic). */
  if (s && s->auth && h && s->generation == gen && strcmp (s->auth, h) == 0 &&
      (!cim || strncasecmp (h, "Basic ", 6) == 0))
    return true;
  if (!auth_check (h, kinds, why, n)) return false;
  if (s) {
    free (s->auth);
    s->auth = strdup (h);
    s->generation = gen;
  }
  return true;
}

static void
notify_connection (void *cls, struct MHD_Connection *conn, void **socket_context,
                   enum MHD_ConnectionNotificationCode code)
{
  (void) cls; (void) conn;
  if (code == MHD_CONNECTION_NOTIFY_STARTED)
    *socket_context = calloc (1, sizeof (struct sock));
  else if (*socket_context) {
    struct sock *s = *socket_context;
    if (s->auth) explicit_bzero (s->auth, strlen (s->auth));
    free (s->auth);
    free (s);
    *socket_context = NULL;
  }
}

/* Hand a CIM-XML request to cimxml.c and send its answer. */
static enum MHD_Result
serve_cimxml (struct MHD_Connection *conn, const char *method, struct req *q)
{
  struct MHD_Response *r;
  enum MHD_Result ret;
  if (strcmp (method, "POST") != 0) {
    static const char msg[] = "vhdkitd: CIM-XML requests are POSTed to /cimom\n";
    r = MHD_create_response_from_buffer (sizeof msg - 1, (void *) msg, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header (r, "Allow", "POST");
    MHD_add_response_header (r, "Content-Type", "text/plain; charset=utf-8");
    ret = MHD_queue_response (conn, MHD_HTTP_METHOD_NOT_ALLOWED, r);
    MHD_destroy_response (r);
    return ret;
  }
  struct cimxml_exchange x = {
    .operation = MHD_lookup_connection_value (conn, MHD_HEADER_KIND, "CIMOperation"),
    .method = MHD_lookup_connection_value (conn, MHD_HEADER_KIND, "CIMMethod"),
    .batch = MHD_lookup_connection_value (conn, MHD_HEADER_KIND, "CIMBatch"),
    .protocol_version = MHD_lookup_connection_value (conn, MHD_HEADER_KIND, "CIMProtocolVersion"),
    .body = q->body ? q->body : "",
    .len = q->len,
  };
  cimxml_serve (&x);
  if (!x.reply) {
    static const char msg[] = "vhdkitd: out of memory\n";
    r = MHD_create_response_from_buffer (sizeof msg - 1, (void *) msg, MHD_RESPMEM_PERSISTENT);
    ret = MHD_queue_response (conn, MHD_HTTP_INTERNAL_SERVER_ERROR, r);
    MHD_destroy_response (r);
    return ret;
  }
  r = MHD_create_response_from_buffer (x.reply_len, x.reply, MHD_RESPMEM_MUST_FREE);
  MHD_add_response_header (r, "Content-Type", x.content_type);
  if (x.status == MHD_HTTP_OK) MHD_add_response_header (r, "CIMOperation", "MethodResponse");
  if (x.cimerror) MHD_add_response_header (r, "CIMError", x.cimerror);
  MHD_add_response_header (r, "Cache-Control", "no-cache");
  ret = MHD_queue_response (conn, x.status, r);
  MHD_destroy_response (r);
  return ret;
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
  (void) version;
  const struct door *door = cls;
  bool cim = strcmp (url, CIMOM) == 0;
  struct req *q = *con_cls;
  if (!q) {
    q = calloc (1, sizeof *q);
    if (!q) return MHD_NO;
    *con_cls = q;
    if (door->tcp) {
      char why[512];
      if (!authorized (conn, cim, why, sizeof why))
        return reply_unauthorized (conn, cim, why);
    }
    else
      q->denied = !peer_ok (conn);
    /* A body larger than MAX_BODY is read and dropped, and answered 413
     * once it is in: answering before it is read would close a socket
     * with unread data, and the client would see a reset, not the 413. */
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
  if (q->too_big) return reply_too_big (conn, cim);
  if (cim) return serve_cimxml (conn, method, q);
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
                          0, NULL, NULL, handle, &door_unix,
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

/* ---- TCP ---- */

/* SPEC into an address; 0, or -1 with WHY. */
static int
listen_resolve (const char *spec, struct sockaddr_storage *ss, socklen_t *len, bool *loopback,
                char *why, size_t n)
{
  char host[256];
  const char *port;
  if (spec[0] == '[') {
    const char *e = strchr (spec, ']');
    if (!e || e[1] != ':' || (size_t) (e - spec - 1) >= sizeof host) {
      snprintf (why, n, "expected [ADDRESS]:PORT");
      return -1;
    }
    memcpy (host, spec + 1, (size_t) (e - spec - 1));
    host[e - spec - 1] = 0;
    port = e + 2;
  }
  else {
    const char *c = strrchr (spec, ':');
    if (!c || c == spec || (size_t) (c - spec) >= sizeof host || memchr (spec, ':', (size_t) (c - spec))) {
      snprintf (why, n, "expected ADDRESS:PORT (an IPv6 address in brackets: [::1]:5988)");
      return -1;
    }
    memcpy (host, spec, (size_t) (c - spec));
    host[c - spec] = 0;
    port = c + 1;
  }
  char *end;
  unsigned long p = strtoul (port, &end, 10);
  if (!*port || *end || p > 65535) {
    snprintf (why, n, "the port \"%.20s\" is not a number from 0 to 65535", port);
    return -1;
  }
  struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                            .ai_flags = AI_PASSIVE | AI_NUMERICSERV }, *res;
  int e = getaddrinfo (host, port, &hints, &res);
  if (e) {
    snprintf (why, n, "%s: %s", host, gai_strerror (e));
    return -1;
  }
  memcpy (ss, res->ai_addr, res->ai_addrlen);
  *len = res->ai_addrlen;
  freeaddrinfo (res);
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *) ss;
    *loopback = (ntohl (a->sin_addr.s_addr) >> 24) == 127;
  }
  else {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *) ss;
    *loopback = IN6_IS_ADDR_LOOPBACK (&a->sin6_addr) ||
      (IN6_IS_ADDR_V4MAPPED (&a->sin6_addr) && a->sin6_addr.s6_addr[12] == 127);
  }
  return 0;
}

int
http_listen_check (const char *spec, bool *loopback)
{
  struct sockaddr_storage ss;
  socklen_t len;
  char why[512];
  if (listen_resolve (spec, &ss, &len, loopback, why, sizeof why) == -1) {
    vlog ("--listen %s: %s", spec, why);
    return -1;
  }
  return 0;
}

int
http_tls_check (const char *cert, const char *key, const char *cert_path, const char *key_path)
{
  gnutls_certificate_credentials_t cred;
  gnutls_datum_t c = { (unsigned char *) cert, (unsigned) strlen (cert) };
  gnutls_datum_t k = { (unsigned char *) key, (unsigned) strlen (key) };
  if (gnutls_certificate_allocate_credentials (&cred) < 0) return -1;
  int e = gnutls_certificate_set_x509_key_mem2 (cred, &c, &k, GNUTLS_X509_FMT_PEM, NULL, 0);
  gnutls_certificate_free_credentials (cred);
  if (e < 0) {
    vlog ("--tls-cert %s with --tls-key %s: %s", cert_path, key_path, gnutls_strerror (e));
    return -1;
  }
  gnutls_x509_crt_t crt;
  if (gnutls_x509_crt_init (&crt) == 0) {
    if (gnutls_x509_crt_import (crt, &c, GNUTLS_X509_FMT_PEM) == 0) {
      time_t now = time (NULL), until = gnutls_x509_crt_get_expiration_time (crt);
      if (until != (time_t) -1 && until < now)
        vlog ("warning: the certificate in %s has expired; clients will refuse it", cert_path);
      if (gnutls_x509_crt_get_activation_time (crt) > now)
        vlog ("warning: the certificate in %s is not valid yet; clients will refuse it", cert_path);
    }
    gnutls_x509_crt_deinit (crt);
  }
  return 0;
}

/* libmicrohttpd's own messages (a failed TLS handshake, ...). */
static void
mhd_log (void *cls, const char *fmt, va_list ap)
{
  (void) cls;
  char line[512];
  vsnprintf (line, sizeof line, fmt, ap);
  line[strcspn (line, "\n")] = 0;
  vlog ("tcp: %s", line);
}

int
http_start_tcp (const char *spec, const char *cert, const char *key, unsigned threads, char *bound, size_t n)
{
  struct sockaddr_storage ss;
  socklen_t len;
  bool loopback;
  char why[512];
  if (listen_resolve (spec, &ss, &len, &loopback, why, sizeof why) == -1) {
    vlog ("--listen %s: %s", spec, why);
    return -1;
  }
  int fd = socket (ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
  if (fd == -1 || setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == -1 ||
      bind (fd, (struct sockaddr *) &ss, len) == -1 || listen (fd, 128) == -1) {
    vlog ("--listen %s: %s", spec, strerror (errno));
    if (fd != -1) close (fd);
    return -1;
  }
  char host[INET6_ADDRSTRLEN] = "?";
  len = sizeof ss;
  getsockname (fd, (struct sockaddr *) &ss, &len);
  unsigned port;
  if (ss.ss_family == AF_INET) {
    inet_ntop (AF_INET, &((struct sockaddr_in *) &ss)->sin_addr, host, sizeof host);
    port = ntohs (((struct sockaddr_in *) &ss)->sin_port);
    snprintf (bound, n, "%s:%u", host, port);
  }
  else {
    inet_ntop (AF_INET6, &((struct sockaddr_in6 *) &ss)->sin6_addr, host, sizeof host);
    port = ntohs (((struct sockaddr_in6 *) &ss)->sin6_port);
    snprintf (bound, n, "[%s]:%u", host, port);
  }
  struct MHD_OptionItem o[16];
  size_t k = 0;
  o[k++] = (struct MHD_OptionItem) { MHD_OPTION_EXTERNAL_LOGGER, (intptr_t) mhd_log, NULL };
  o[k++] = (struct MHD_OptionItem) { MHD_OPTION_LISTEN_SOCKET, fd, NULL };
  o[k++] = (struct MHD_OptionItem) { MHD_OPTION_THREAD_POOL_SIZE, threads ? threads : 4, NULL };
  o[k++] = (struct MHD_OptionItem) { MHD_OPTION_CONNECTION_TIMEOUT, 30, NULL };
  o[k++] = (struct MHD_OptionItem) { MHD_OPTION_CONNECTION_LIMIT, 256, NULL };
  o[k++] = (struct MHD_OptionItem) { MHD_OPTION_CONNECTION_MEMORY_LIMIT, 65536, NULL };
  o[k++] = (struct MHD_OptionItem) { MHD_OPTION_NOTIFY_COMPLETED, (intptr_t) done, NULL };
  o[k++] = (struct MHD_OptionItem) { MHD_OPTION_NOTIFY_CONNECTION, (intptr_t) notify_connection, NULL };
  if (cert) {
    o[k++] = (struct MHD_OptionItem) { MHD_OPTION_HTTPS_MEM_CERT, 0, (void *) cert };
    o[k++] = (struct MHD_OptionItem) { MHD_OPTION_HTTPS_MEM_KEY, 0, (void *) key };
  }
  o[k++] = (struct MHD_OptionItem) { MHD_OPTION_END, 0, NULL };
  mhd_tcp = MHD_start_daemon (MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG |
                              (cert ? MHD_USE_TLS : 0),
                              0, NULL, NULL, handle, &door_tcp, MHD_OPTION_ARRAY, o, MHD_OPTION_END);
  if (!mhd_tcp) {
    vlog ("--listen %s: the HTTP server did not start", spec);
    close (fd);
    return -1;
  }
  return 0;
}

void
http_stop (void)
{
  if (mhd_tcp) MHD_stop_daemon (mhd_tcp);
  mhd_tcp = NULL;
  if (mhd) MHD_stop_daemon (mhd);
  mhd = NULL;
  if (socket_path) unlink (socket_path);
  free (socket_path);
  socket_path = NULL;
}
