/* vhdkit CLI: the client of vhdkitd's JSON door (remote.h).
 *
 * Each request is one HTTP exchange on a fresh connection to the Unix
 * socket (a command makes a handful; polling a job makes one every
 * tenth of a second or so), so no connection outlives a request and
 * nothing needs cleaning up at exit.  Answers are parsed with jansson
 * and every value a verb uses is type-checked (remote_unpack) before
 * use: a service that answers something else fails the command with
 * 32768 instead of printing a guess.
 *
 * Signals: remote_run catches SIGINT and SIGTERM (cli_progress_begin)
 * for the whole call; one that arrives while a job runs terminates the
 * job through the service, and the command then reports how it ended.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <dlfcn.h>
#include <sys/stat.h>
#include <curl/curl.h>

#include "vhdkit.h"
#include "cli.h"
#include "remote.h"

#define NAMESPACE "root/virtualization/v2"
#define CONNECT_TIMEOUT_S 10
#define PROBE_TIMEOUT_S 2       /* remote_holder: a hint is not worth more */
#define MAX_ANSWER ((size_t) 1 << 30)
#define JOB_RUNNING 4
#define JOB_COMPLETED 7
#define TERMINATE 4             /* RequestStateChange: Terminate */

static const char *connect_opt;

void
remote_set_socket (const char *path)
{
  connect_opt = path;
}

const char *
remote_socket (void)
{
  const char *env;

  if (connect_opt)
    return connect_opt;
  env = getenv ("VHDKIT_CONNECT");
  return env && *env ? env : NULL;
}

/* ---- HTTP ---- */

struct answer {
  char *text;
  size_t len;
  bool too_big;
};

static size_t
collect (char *data, size_t size, size_t nmemb, void *opaque)
{
  struct answer *a = opaque;
  size_t n = size * nmemb;
  char *t;

  if (n > MAX_ANSWER - a->len) {
    a->too_big = true;
    return 0;                   /* curl stops with CURLE_WRITE_ERROR */
  }
  t = realloc (a->text, a->len + n + 1);
  if (t == NULL)
    return 0;
  memcpy (t + a->len, data, n);
  a->len += n;
  t[a->len] = '\0';
  a->text = t;
  return n;
}

/* libcurl is loaded when a command first talks to vhdkitd, not at
 * start-up: linking it brings in some thirty shared libraries (TLS,
 * Kerberos, LDAP, ...), which made every local command take four times
 * longer to start.  Only these functions are used; <curl/curl.h> still
 * gives the types and constants.  At run time --connect needs libcurl4
 * (scripts/install-deps.sh installs it with libcurl4-openssl-dev). */
static struct {
  CURLcode (*global_init) (long);
  CURL *(*easy_init) (void);
  CURLcode (*easy_setopt) (CURL *, CURLoption, ...);
  CURLcode (*easy_perform) (CURL *);
  CURLcode (*easy_getinfo) (CURL *, CURLINFO, ...);
  void (*easy_cleanup) (CURL *);
  const char *(*easy_strerror) (CURLcode);
  struct curl_slist *(*slist_append) (struct curl_slist *, const char *);
  void (*slist_free_all) (struct curl_slist *);
} cu;

#define LIBCURL_SONAME "libcurl.so.4"

/* 0, or -1 with the reason in ERR (the CLI is single-threaded). */
static int
load_curl (char *err, size_t n)
{
  static void *lib;
  const char *what = NULL;

  if (lib)
    return 0;
  void *h = dlopen (LIBCURL_SONAME, RTLD_NOW | RTLD_LOCAL);
  if (h == NULL) {
    snprintf (err, n, "cannot load %s, which --connect needs "
              "(install the libcurl4 package): %s", LIBCURL_SONAME, dlerror ());
    return -1;
  }
#define SYM(field, name) \
  if (what == NULL && (*(void **) &cu.field = dlsym (h, name)) == NULL) \
    what = name
  SYM (global_init, "curl_global_init");
  SYM (easy_init, "curl_easy_init");
  SYM (easy_setopt, "curl_easy_setopt");
  SYM (easy_perform, "curl_easy_perform");
  SYM (easy_getinfo, "curl_easy_getinfo");
  SYM (easy_cleanup, "curl_easy_cleanup");
  SYM (easy_strerror, "curl_easy_strerror");
  SYM (slist_append, "curl_slist_append");
  SYM (slist_free_all, "curl_slist_free_all");
#undef SYM
  if (what) {
    snprintf (err, n, "%s has no function %s", LIBCURL_SONAME, what);
    dlclose (h);
    return -1;
  }
  lib = h;
  return 0;
}

/* One request to SOCKET: POST BODY to PATH (below the namespace), or GET
 * it when BODY is NULL.  0 with *REPLY the answer's JSON object, or a
 * return code with the reason in ERR. */
static uint32_t
request (const char *socket, const char *path, const char *body,
         long timeout_s, json_t **reply, char *err, size_t n)
{
  char errbuf[CURL_ERROR_SIZE] = "", *url = NULL;
  struct answer a = { NULL, 0, false };
  long status = 0;
  json_error_t je;
  CURLcode cc;
  CURL *h;
  uint32_t rc = 0;

  *reply = NULL;
  if (load_curl (err, n) == -1)
    return VHDKIT_RC_NOT_SUPPORTED;
  if (cu.global_init (CURL_GLOBAL_NOTHING) != CURLE_OK ||
      (h = cu.easy_init ()) == NULL) {
    snprintf (err, n, "cannot start an HTTP client");
    return VHDKIT_RC_OUT_OF_MEMORY;
  }
  if (asprintf (&url, "http://localhost/" NAMESPACE "/%s", path) == -1) {
    cu.easy_cleanup (h);
    snprintf (err, n, "out of memory");
    return VHDKIT_RC_OUT_OF_MEMORY;
  }
  cu.easy_setopt (h, CURLOPT_UNIX_SOCKET_PATH, socket);
  cu.easy_setopt (h, CURLOPT_URL, url);
  cu.easy_setopt (h, CURLOPT_NOSIGNAL, 1L);
  cu.easy_setopt (h, CURLOPT_CONNECTTIMEOUT, (long) CONNECT_TIMEOUT_S);
  cu.easy_setopt (h, CURLOPT_TIMEOUT, timeout_s);
  cu.easy_setopt (h, CURLOPT_ERRORBUFFER, errbuf);
  cu.easy_setopt (h, CURLOPT_WRITEFUNCTION, collect);
  cu.easy_setopt (h, CURLOPT_WRITEDATA, &a);
  struct curl_slist *hdr = NULL;
  if (body) {
    hdr = cu.slist_append (hdr, "Content-Type: application/json");
    cu.easy_setopt (h, CURLOPT_HTTPHEADER, hdr);
    cu.easy_setopt (h, CURLOPT_POSTFIELDS, body);
  }
  cc = cu.easy_perform (h);
  cu.easy_getinfo (h, CURLINFO_RESPONSE_CODE, &status);
  cu.slist_free_all (hdr);
  cu.easy_cleanup (h);
  free (url);

  if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_OPERATION_TIMEDOUT) {
    snprintf (err, n, "cannot reach vhdkitd at %s: %s", socket,
              *errbuf ? errbuf : cu.easy_strerror (cc));
    rc = cc == CURLE_OPERATION_TIMEDOUT ? VHDKIT_RC_TIMEOUT
      : VHDKIT_RC_NOT_AVAILABLE;
  }
  else if (cc != CURLE_OK) {
    snprintf (err, n, "vhdkitd at %s: %s", socket,
              a.too_big ? "the answer is larger than 1 GiB"
              : *errbuf ? errbuf : cu.easy_strerror (cc));
    rc = VHDKIT_RC_FAILED;
  }
  /* Every answer of the door is a JSON object, whatever the status. */
  else if ((*reply = json_loadb (a.text ? a.text : "", a.len,
                                 JSON_REJECT_DUPLICATES, &je)) == NULL ||
           !json_is_object (*reply)) {
    json_decref (*reply);
    *reply = NULL;
    snprintf (err, n, "vhdkitd at %s answered HTTP %ld with no JSON object "
              "(is it vhdkitd?)", socket, status);
    rc = VHDKIT_RC_FAILED;
  }
  free (a.text);
  return rc;
}

/* The answer's ReturnValue, or -1 if it has none. */
static int64_t
return_value (json_t *reply)
{
  json_t *v = json_object_get (reply, "ReturnValue");

  if (!json_is_integer (v) || json_integer_value (v) < 0 ||
      json_integer_value (v) > UINT32_MAX)
    return -1;
  return json_integer_value (v);
}

/* Report the service's failure RC with its sentence DESC. */
static int
service_error (int64_t rc, json_t *desc)
{
  const char *s = json_is_string (desc) ? json_string_value (desc) : "";

  if (rc <= 0)                  /* a failure never reads 0 */
    rc = VHDKIT_RC_FAILED;
  return cli_error ((uint32_t) rc, "%s", *s ? s : "vhdkitd gave no reason");
}

/* POST IN to CLASS/METHOD; the answer, or NULL after reporting. */
static json_t *
call (const char *klass, const char *method, json_t *in)
{
  char err[1024], *path = NULL, *body;
  json_t *reply = NULL;
  uint32_t rc;

  body = json_dumps (in, JSON_COMPACT);
  if (body == NULL || asprintf (&path, "%s/%s", klass, method) == -1) {
    free (body);
    cli_error (VHDKIT_RC_OUT_OF_MEMORY, "out of memory");
    return NULL;
  }
  rc = request (remote_socket (), path, body, 0, &reply, err, sizeof err);
  free (body);
  free (path);
  if (rc) {
    cli_error (rc, "%s", err);
    return NULL;
  }
  if (return_value (reply) == -1) {
    json_decref (reply);
    cli_error (VHDKIT_RC_FAILED, "vhdkitd at %s answered %s.%s without a "
               "ReturnValue", remote_socket (), klass, method);
    return NULL;
  }
  return reply;
}

/* ---- Jobs ---- */

/* The InstanceID in a job's object path
 * (root/virtualization/v2:Msvm_ConcreteJob.InstanceID="GUID"): a GUID,
 * so that it can go into a URL as it is.  0, or -1. */
static int
job_id (json_t *job, char *id, size_t n)
{
  const char *s = json_string_value (job), *p, *e;

  if (s == NULL || (p = strstr (s, "InstanceID=\"")) == NULL)
    return -1;
  p += strlen ("InstanceID=\"");
  e = strchr (p, '"');
  if (e == NULL || e == p || (size_t) (e - p) >= n ||
      strspn (p, "0123456789abcdefABCDEF-") != (size_t) (e - p))
    return -1;
  memcpy (id, p, (size_t) (e - p));
  id[e - p] = '\0';
  return 0;
}

static void
pause_ms (unsigned ms)
{
  struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000 };

  nanosleep (&ts, NULL);        /* a signal ends it early: fine */
}

static void
terminate (const char *id)
{
  json_t *in = json_pack ("{s:s, s:i, s:n}", "InstanceID", id,
                          "RequestedState", TERMINATE, "TimeoutPeriod");
  json_t *r = in ? call ("Msvm_ConcreteJob", "RequestStateChange", in) : NULL;

  /* 4097: it ended meanwhile, which the next poll shows. */
  json_decref (in);
  json_decref (r);
}

/* Poll job ID until it leaves Running; the job's instance, or NULL after
 * reporting. */
static json_t *
wait_job (const char *id, struct cli_progress *prog)
{
  char err[1024], path[128];
  unsigned delay = 20;
  bool cancelled = false;

  snprintf (path, sizeof path, "Msvm_ConcreteJob/%s", id);
  for (;;) {
    json_t *job;
    json_int_t state, pct;
    uint32_t rc = request (remote_socket (), path, NULL, 0, &job, err,
                           sizeof err);

    if (rc) {
      cli_error (rc, "%s (waiting for job %s)", err, id);
      return NULL;
    }
    if (json_unpack (job, "{s:I, s:I}", "JobState", &state,
                     "PercentComplete", &pct) == -1) {
      /* 404: it is gone, or never was. */
      int64_t r = return_value (job);
      if (r > 0)
        service_error (r, json_object_get (job, "ErrorDescription"));
      else
        cli_error (VHDKIT_RC_FAILED, "vhdkitd at %s: job %s has no "
                   "JobState", remote_socket (), id);
      json_decref (job);
      return NULL;
    }
    if (state != JOB_RUNNING)
      return job;
    json_decref (job);
    if (cli_progress_percent (prog, pct < 0 ? 0 : pct > 100 ? 100
                              : (unsigned) pct) && !cancelled) {
      terminate (id);
      cancelled = true;
      delay = 20;
    }
    pause_ms (delay);
    if (delay < 200)
      delay += delay / 2;
  }
}

int
remote_run (const char *klass, const char *method, json_t *in,
            int progress_mode, json_t **out)
{
  struct cli_progress prog;
  json_t *reply, *job = NULL;
  int64_t rc;
  char id[64];
  int st = CLI_EXIT_FAILURE;

  *out = NULL;
  if (in == NULL)
    return cli_error (VHDKIT_RC_OUT_OF_MEMORY, "out of memory");
  cli_progress_begin (&prog, progress_mode);
  reply = call (klass, method, in);
  json_decref (in);
  if (reply == NULL)
    goto out;
  rc = return_value (reply);
  if (rc == 0) {
    *out = reply;
    reply = NULL;
    st = CLI_EXIT_OK;
  }
  else if (rc != VHDKIT_RC_JOB_STARTED)
    service_error (rc, json_object_get (reply, "ErrorDescription"));
  else if (job_id (json_object_get (reply, "Job"), id, sizeof id) == -1)
    cli_error (VHDKIT_RC_FAILED, "vhdkitd at %s started %s.%s as a job "
               "without a job path", remote_socket (), klass, method);
  else if ((job = wait_job (id, &prog)) == NULL)
    ;
  else if (json_integer_value (json_object_get (job, "JobState"))
           != JOB_COMPLETED)
    service_error (json_integer_value (json_object_get (job, "ErrorCode")),
                   json_object_get (job, "ErrorDescription"));
  else {
    json_t *o = json_object_get (job, "OutParameters");
    *out = json_is_object (o) ? json_incref (o) : json_object ();
    st = *out ? CLI_EXIT_OK
      : cli_error (VHDKIT_RC_OUT_OF_MEMORY, "out of memory");
  }
 out:
  cli_progress_end (&prog);
  json_decref (reply);
  json_decref (job);
  return st;
}

int
remote_unpack (json_t *v, const char *method, const char *fmt, ...)
{
  json_error_t e;
  va_list ap;
  int r;

  va_start (ap, fmt);
  r = json_vunpack_ex (v, &e, 0, fmt, ap);
  va_end (ap);
  if (r == 0)
    return 0;
  return cli_error (VHDKIT_RC_FAILED, "vhdkitd at %s: the answer of %s is "
                    "not as expected: %s", remote_socket (), method, e.text);
}

int
remote_unsupported (const char *what, const char *why)
{
  return cli_error (VHDKIT_RC_NOT_SUPPORTED, "%s is not available through "
                    "vhdkitd (--connect %s): %s", what, remote_socket (), why);
}

/* ---- Paths ---- */

/* Whether PATH has a "." or ".." component (the service refuses them). */
static bool
dot_components (const char *path)
{
  for (const char *s = path; *s; ) {
    size_t n;

    while (*s == '/')
      s++;
    n = strcspn (s, "/");
    if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
      return true;
    s += n;
  }
  return false;
}

/* PATH made absolute into a new string; NULL with errno. */
static char *
absolute (const char *path)
{
  char cwd[PATH_MAX], dir[PATH_MAX], *out, *slash;
  const char *base;

  if (!dot_components (path)) {
    if (path[0] == '/')
      return strdup (path);
    if (getcwd (cwd, sizeof cwd) == NULL)
      return NULL;
    return asprintf (&out, "%s/%s", cwd, path) == -1 ? NULL : out;
  }
  /* Resolve the folder (the file itself may be new); a path that ends
   * in "." or ".." names a folder and is resolved whole. */
  if (strlen (path) >= sizeof dir) {
    errno = ENAMETOOLONG;
    return NULL;
  }
  strcpy (dir, path);
  slash = strrchr (dir, '/');
  base = slash ? slash + 1 : dir;
  if (*base == '\0' || strcmp (base, ".") == 0 || strcmp (base, "..") == 0)
    return realpath (path, NULL);
  if (slash == NULL)
    strcpy (dir, ".");
  else if (slash == dir)
    dir[1] = '\0';
  else
    *slash = '\0';
  if (realpath (dir, cwd) == NULL)
    return NULL;
  base = path + (slash ? (size_t) (slash - dir) + 1 : 0);
  return asprintf (&out, "%s%s%s", cwd, strcmp (cwd, "/") ? "/" : "",
                   base) == -1 ? NULL : out;
}

/* SET.vhds@ID names a snapshot of a set (the local verbs open it). */
static bool
snapshot_path (const char *path)
{
  const char *at = strrchr (path, '@');
  struct stat st;

  return at && at - path >= 5 && strncasecmp (at - 5, ".vhds", 5) == 0 &&
    stat (path, &st) == -1;
}

json_t *
remote_path (const char *path)
{
  json_t *v;
  char *abs;

  if (snapshot_path (path)) {
    remote_unsupported ("a snapshot (SET.vhds@SNAPSHOT-ID)",
                        "the service opens a set's current state only");
    return NULL;
  }
  abs = absolute (path);
  if (abs == NULL) {
    cli_error (errno == ENOENT || errno == ENOTDIR ? VHDKIT_RC_FILE_NOT_FOUND
               : errno == ENOMEM ? VHDKIT_RC_OUT_OF_MEMORY
               : VHDKIT_RC_INVALID_PARAMETER,
               "%s: %s", path, strerror (errno));
    return NULL;
  }
  v = json_string (abs);
  if (v == NULL)
    cli_error (VHDKIT_RC_INVALID_PARAMETER, "%s: the service takes paths "
               "in UTF-8 only", path);
  free (abs);
  return v;
}

/* Whether the library would make PATH a VHDX by its name. */
static bool
vhdx_name (const char *path)
{
  const char *dot = strrchr (path, '.');

  return dot && strchr (dot, '/') == NULL &&
    (strcasecmp (dot, ".vhdx") == 0 || strcasecmp (dot, ".avhdx") == 0);
}

json_t *
remote_setting_data (const char *path, const struct vhdkit_create_params *p)
{
  json_t *dst, *parent = NULL, *sd;
  int type = p->type;

  if (p->format == VHDKIT_FORMAT_RAW)
    return remote_unsupported ("--format raw", "the service makes VHDX "
                               "images only"), NULL;
  if (p->format == 0 && !vhdx_name (path))
    return cli_error (VHDKIT_RC_NOT_SUPPORTED, "%s would be a raw image by "
                      "its name, and vhdkitd (--connect %s) makes VHDX "
                      "images only: name it *.vhdx or *.avhdx, or give "
                      "--format vhdx", path, remote_socket ()), NULL;
  if (type == 0)
    type = p->parent ? VHDKIT_TYPE_DIFFERENCING : VHDKIT_TYPE_DYNAMIC;
  if ((dst = remote_path (path)) == NULL)
    return NULL;
  if (p->parent && (parent = remote_path (p->parent)) == NULL) {
    json_decref (dst);
    return NULL;
  }
  sd = json_pack ("{s:s, s:o, s:i, s:i, s:I, s:I, s:I, s:I, s:o}",
                  "__CLASS", "Msvm_VirtualHardDiskSettingData",
                  "Path", dst, "Type", type, "Format", VHDKIT_FORMAT_VHDX,
                  "MaxInternalSize", (json_int_t) p->size,
                  "BlockSize", (json_int_t) p->block_size,
                  "LogicalSectorSize", (json_int_t) p->logical_sector_size,
                  "PhysicalSectorSize", (json_int_t) p->physical_sector_size,
                  "ParentPath", parent ? parent : json_string (""));
  if (sd == NULL)
    cli_error (VHDKIT_RC_OUT_OF_MEMORY, "out of memory");
  return sd;
}

/* ---- Who holds an image ---- */

/* Whether the daemon on SOCKET lists one of the N real paths REAL. */
static bool
holds (const char *socket, char *const *real, int n)
{
  char err[1024];
  json_t *reply, *paths, *p;
  bool found = false;
  size_t i;

  if (request (socket, "Vhdkit_Service/ListOpenDisks", "{}",
               PROBE_TIMEOUT_S, &reply, err, sizeof err) != 0)
    return false;
  paths = json_object_get (reply, "Paths");
  json_array_foreach (paths, i, p) {
    for (int k = 0; k < n && !found; k++)
      found = real[k] && json_is_string (p) &&
        strcmp (json_string_value (p), real[k]) == 0;
  }
  json_decref (reply);
  return found;
}

char *
remote_holder (char *const *paths, int n)
{
  const char *env = getenv ("VHDKIT_CONNECT");
  const char *candidates[] = {
    env && *env ? env : NULL, "/run/vhdkitd/vhdkitd.sock",
    "var/vhdkitd.sock",         /* make run, from the top of the tree */
  };
  char *real[8] = { NULL }, *found = NULL;
  struct stat st;

  if (n > 8)
    n = 8;
  for (int k = 0; k < n; k++) {
    char *at;

    real[k] = realpath (paths[k], NULL);
    /* SET.vhds@ID: the service holds SET.vhds. */
    if (real[k] == NULL && (at = strrchr (paths[k], '@')) != NULL) {
      char *set = strndup (paths[k], (size_t) (at - paths[k]));
      real[k] = set ? realpath (set, NULL) : NULL;
      free (set);
    }
  }
  for (size_t i = 0; !found && i < sizeof candidates / sizeof candidates[0];
       i++) {
    if (candidates[i] == NULL || stat (candidates[i], &st) == -1 ||
        !S_ISSOCK (st.st_mode) || !holds (candidates[i], real, n))
      continue;
    found = absolute (candidates[i]);
  }
  for (int k = 0; k < n; k++)
    free (real[k]);
  return found;
}
