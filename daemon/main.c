/* vhdkitd: options, configuration file, start, signals, stop
 * (docs/vhdkitd.8.md).
 *
 * Start: roots, state folder, credentials and TLS files (--listen),
 * jobs (restored), the doors; then READY=1 to systemd (Type=notify)
 * and, without --foreground, the parent returns once the daemon
 * listens.  SIGHUP reads the credentials file again (a bad file keeps
 * the previous one, with a message).  SIGTERM or SIGINT: new calls
 * get 32777 (System is not available); running jobs get until the
 * deadline (--stop-timeout, 30 s) to finish, then are cancelled; every
 * disk is flushed and closed; exit 0 (1 if a disk could not be closed
 * cleanly).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>

#include "vhdkitd.h"

static struct {
  char *config, *state_dir, *socket;
  char *listen, *credentials, *tls_cert, *tls_key;
  unsigned socket_mode, idle, workers, threads, stop_timeout;
  bool foreground;
  uid_t allow_uid[64];
  gid_t allow_gid[64];
  size_t nuid, ngid;
} opt = { .socket_mode = 0660, .idle = 300, .workers = 2, .threads = 4, .stop_timeout = 30 };

static bool stop_now;

void
vlog (const char *fmt, ...)
{
  char line[2048];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (line, sizeof line, fmt, ap);
  va_end (ap);
  fprintf (stderr, "vhdkitd: %s\n", line);
}

bool
access_peer_ok (unsigned uid, unsigned gid)
{
  if (uid == 0 || uid == geteuid ()) return true;
  for (size_t i = 0; i < opt.nuid; i++) if (opt.allow_uid[i] == uid) return true;
  for (size_t i = 0; i < opt.ngid; i++) if (opt.allow_gid[i] == gid) return true;
  return false;
}

static void
usage (FILE *f)
{
  fprintf (f,
    "Usage: vhdkitd [--config FILE] [--root DIR]... [--state-dir DIR] [--socket PATH]\n"
    "               [--listen ADDR:PORT --credentials FILE [--tls-cert FILE --tls-key FILE]]\n"
    "               [--allow-user NAME]... [--allow-group NAME]... [--idle-timeout S]\n"
    "               [--workers N] [--stop-timeout S] [--foreground]\n"
    "       vhdkitd --hash-password NAME | --new-token NAME\n"
    "       vhdkitd --api-doc | --help | --version\n"
    "The vhdkit image management service: Msvm_ImageManagementService over JSON\n"
    "and CIM-XML.\n\n"
    "  --config=FILE        read options from FILE (key = value, the long option names)\n"
    "  --root=DIR           an allowed root: every path a request names must be inside one\n"
    "  --state-dir=DIR      where jobs are kept across restarts (required)\n"
    "  --socket=PATH        the JSON door's Unix socket (mode 0660)\n"
    "  --listen=ADDR:PORT   also serve JSON and CIM-XML (POST /cimom) over TCP\n"
    "                       ([ADDR]:PORT for IPv6; port 0 picks a free one)\n"
    "  --credentials=FILE   who may use the TCP door (see --hash-password)\n"
    "  --tls-cert=FILE      TLS certificate (PEM), required unless ADDR is loopback\n"
    "  --tls-key=FILE       its private key (PEM)\n"
    "  --allow-user=NAME    a user besides root and the daemon's own that may connect\n"
    "  --allow-group=NAME   a group (primary group of the peer) that may connect\n"
    "  --idle-timeout=S     close a disk no call used for S seconds (default 300)\n"
    "  --workers=N          jobs that run at once (default 2)\n"
    "  --stop-timeout=S     on SIGTERM, how long running jobs may take (default 30)\n"
    "  --foreground         do not go to the background\n"
    "  --hash-password=NAME read a password on standard input, print a credentials\n"
    "                       entry for user NAME\n"
    "  --new-token=NAME     make a bearer token: print it, then its credentials entry\n"
    "  --api-doc            print the API reference (docs/API.md) and exit\n"
    "See vhdkitd(8).\n");
}

static int
set_option (const char *key, const char *val, const char *where)
{
  char *end;
  unsigned long n;
#define NUM(field, lo, hi) do { errno = 0; n = strtoul (val, &end, 10); \
    if (errno || *end || !*val || n + 1 < (unsigned long) (lo) + 1 || n > (hi)) { \
      vlog ("%s: %s must be a number from %lu to %lu, not \"%s\"", where, key, (unsigned long) (lo), \
            (unsigned long) (hi), val); return -1; } \
    opt.field = (unsigned) n; } while (0)
  if (strcmp (key, "root") == 0) return roots_add (val);
  if (strcmp (key, "state-dir") == 0) { free (opt.state_dir); opt.state_dir = strdup (val); return 0; }
  if (strcmp (key, "socket") == 0) { free (opt.socket); opt.socket = strdup (val); return 0; }
  if (strcmp (key, "idle-timeout") == 0) { NUM (idle, 1, 86400 * 365); return 0; }
  if (strcmp (key, "workers") == 0) { NUM (workers, 1, 64); return 0; }
  if (strcmp (key, "stop-timeout") == 0) { NUM (stop_timeout, 0, 86400); return 0; }
  if (strcmp (key, "foreground") == 0) { opt.foreground = strcmp (val, "false") != 0 && strcmp (val, "0") != 0; return 0; }
  if (strcmp (key, "allow-user") == 0) {
    struct passwd *pw = getpwnam (val);
    if (!pw || opt.nuid == 64) { vlog ("%s: allow-user: no user \"%s\"", where, val); return -1; }
    opt.allow_uid[opt.nuid++] = pw->pw_uid;
    return 0;
  }
  if (strcmp (key, "allow-group") == 0) {
    struct group *gr = getgrnam (val);
    if (!gr || opt.ngid == 64) { vlog ("%s: allow-group: no group \"%s\"", where, val); return -1; }
    opt.allow_gid[opt.ngid++] = gr->gr_gid;
    return 0;
  }
  char **text = strcmp (key, "listen") == 0 ? &opt.listen : strcmp (key, "credentials") == 0 ? &opt.credentials
    : strcmp (key, "tls-cert") == 0 ? &opt.tls_cert : strcmp (key, "tls-key") == 0 ? &opt.tls_key : NULL;
  if (text) {
    free (*text);
    *text = strdup (val);
    return 0;
  }
  vlog ("%s: unknown option \"%s\"", where, key);
  return -1;
#undef NUM
}

static int
read_config (const char *path)
{
  FILE *f = fopen (path, "r");
  if (!f) { vlog ("config %s: %s", path, strerror (errno)); return -1; }
  char line[4096], where[4200];
  int ln = 0, r = 0;
  while (fgets (line, sizeof line, f)) {
    ln++;
    snprintf (where, sizeof where, "%s:%d", path, ln);
    char *s = line;
    while (*s == ' ' || *s == '\t') s++;
    s[strcspn (s, "\r\n")] = 0;
    if (!*s || *s == '#') continue;
    char *eq = strchr (s, '=');
    char *key = s, *val = (char *) "true";
    if (eq) {
      *eq = 0;
      val = eq + 1;
      while (*val == ' ' || *val == '\t') val++;
    }
    for (char *e = key + strlen (key); e > key && (e[-1] == ' ' || e[-1] == '\t'); ) *--e = 0;
    for (char *e = val + strlen (val); e > val && (e[-1] == ' ' || e[-1] == '\t'); ) *--e = 0;
    if (set_option (key, val, where) == -1) r = -1;
  }
  fclose (f);
  return r;
}

/* A PEM file into memory (kept for the daemon's life), or NULL. */
static char *
read_pem (const char *option, const char *path)
{
  FILE *f = fopen (path, "re");
  if (!f) {
    vlog ("--%s %s: %s", option, path, strerror (errno));
    return NULL;
  }
  struct stat st;
  size_t cap = 1 << 20, n = 0;
  if (fstat (fileno (f), &st) == 0 && st.st_size >= 0 && (size_t) st.st_size < cap) cap = (size_t) st.st_size;
  char *b = malloc (cap + 1);
  if (b) n = fread (b, 1, cap + 1, f);
  int err = ferror (f);
  fclose (f);
  if (!b || err || n == 0 || n > cap) {
    vlog ("--%s %s: %s", option, path, !b ? "out of memory" : err ? "cannot be read"
          : n == 0 ? "the file is empty" : "larger than 1 MiB, not a PEM file");
    free (b);
    return NULL;
  }
  b[n] = 0;
  if (!strstr (b, "-----BEGIN ")) {
    vlog ("--%s %s: not a PEM file (no \"-----BEGIN\" line)", option, path);
    free (b);
    return NULL;
  }
  return b;
}

/* The TCP door's conditions, before anything starts. */
static int
check_tcp (void)
{
  bool loopback;
  if (!opt.listen) {
    if (opt.credentials || opt.tls_cert || opt.tls_key) {
      vlog ("--%s is for the TCP door: give --listen ADDR:PORT too",
            opt.credentials ? "credentials" : opt.tls_cert ? "tls-cert" : "tls-key");
      return -1;
    }
    return 0;
  }
  if (http_listen_check (opt.listen, &loopback) == -1) return -1;
  if (!opt.credentials) {
    vlog ("--listen %s needs --credentials FILE: every request over TCP must authenticate "
          "(make entries with vhdkitd --hash-password NAME)", opt.listen);
    return -1;
  }
  if (!opt.tls_cert != !opt.tls_key) {
    vlog ("--%s needs --%s too", opt.tls_cert ? "tls-cert" : "tls-key", opt.tls_cert ? "tls-key" : "tls-cert");
    return -1;
  }
  if (!loopback && !opt.tls_cert) {
    vlog ("--listen %s is not a loopback address, so the TCP door needs TLS: give --tls-cert FILE and "
          "--tls-key FILE (passwords and disk paths would otherwise cross the network in clear text)",
          opt.listen);
    return -1;
  }
  return 0;
}

static void *
housekeeping (void *arg)
{
  (void) arg;
  /* A quarter of the idle timeout, at most 2 s: a disk closes between
   * S and 1.25 S seconds after its last use (S >= 8: S + 2 s). */
  unsigned tick_ms = reg_idle_seconds () * 250;
  if (tick_ms > 2000) tick_ms = 2000;
  while (!__atomic_load_n (&stop_now, __ATOMIC_ACQUIRE)) {
    struct timespec ts = { tick_ms / 1000, (long) (tick_ms % 1000) * 1000000 };
    nanosleep (&ts, NULL);
    reg_close_idle ();
  }
  return NULL;
}

int
main (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "config", required_argument, NULL, 'c' }, { "root", required_argument, NULL, 'r' },
    { "state-dir", required_argument, NULL, 's' }, { "socket", required_argument, NULL, 'S' },
    { "allow-user", required_argument, NULL, 'u' }, { "allow-group", required_argument, NULL, 'g' },
    { "idle-timeout", required_argument, NULL, 'i' }, { "workers", required_argument, NULL, 'w' },
    { "stop-timeout", required_argument, NULL, 't' }, { "foreground", no_argument, NULL, 'f' },
    { "listen", required_argument, NULL, 'L' }, { "credentials", required_argument, NULL, 'C' },
    { "tls-cert", required_argument, NULL, 'T' }, { "tls-key", required_argument, NULL, 'K' },
    { "hash-password", required_argument, NULL, 'P' }, { "new-token", required_argument, NULL, 'N' },
    { "api-doc", no_argument, NULL, 'A' }, { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' }, { NULL, 0, NULL, 0 },
  };
  /* The config file first, so that the command line wins. */
  for (int i = 1; i < argc; i++) {
    const char *cfg = NULL;
    if (strncmp (argv[i], "--config=", 9) == 0) cfg = argv[i] + 9;
    else if (strcmp (argv[i], "--config") == 0 && i + 1 < argc) cfg = argv[i + 1];
    if (cfg && read_config (cfg) == -1) return 2;
  }
  int c;
  while ((c = getopt_long (argc, argv, "", longopts, NULL)) != -1) {
    const char *key = NULL;
    for (const struct option *o = longopts; o->name; o++) if (o->val == c) key = o->name;
    switch (c) {
    case 'c': break;
    case 'A': api_doc_print (stdout); return 0;
    case 'P': return auth_hash_password (optarg);
    case 'N': return auth_new_token (optarg);
    case 'h': usage (stdout); return 0;
    case 'V': printf ("vhdkitd %s (libvhdkit %s)\n", VHDKIT_VERSION_STRING, vhdkit_get_version ()); return 0;
    case 'f': opt.foreground = true; break;
    case '?': usage (stderr); return 2;
    default:
      if (set_option (key, optarg, "command line") == -1) return 2;
    }
  }
  if (optind < argc) { vlog ("unexpected argument \"%s\"", argv[optind]); return 2; }
  if (roots_count () == 0) { vlog ("no allowed root: give at least one --root DIR"); return 2; }
  if (!opt.state_dir) { vlog ("no state folder: give --state-dir DIR"); return 2; }
  if (!opt.socket && !opt.listen) { vlog ("no door: give --socket PATH or --listen ADDR:PORT"); return 2; }
  if (check_tcp () == -1) return 2;
  static char *cert, *key;     /* static: reachable on every exit path */
  if (opt.credentials && auth_load (opt.credentials) == -1) return 2;
  if (opt.tls_cert && (!(cert = read_pem ("tls-cert", opt.tls_cert)) || !(key = read_pem ("tls-key", opt.tls_key)) ||
                       http_tls_check (cert, key, opt.tls_cert, opt.tls_key) == -1)) {
    free (cert);
    free (key);
    return 2;
  }
  classes_init ();
  if (classes_check ()) vlog ("class table: the CIM-XML door lacks the properties named above");
  cimxml_init ();
  if (mkdir (opt.state_dir, 0700) == -1 && errno != EEXIST) {
    vlog ("state folder %s: %s", opt.state_dir, strerror (errno));
    return 1;
  }
  reg_set_idle_seconds (opt.idle);

  /* Without --foreground: the parent waits until the daemon listens. */
  int ready[2] = { -1, -1 };
  if (!opt.foreground) {
    if (pipe (ready) == -1) { vlog ("pipe: %s", strerror (errno)); return 1; }
    pid_t pid = fork ();
    if (pid == -1) { vlog ("fork: %s", strerror (errno)); return 1; }
    if (pid > 0) {
      char b;
      close (ready[1]);
      return read (ready[0], &b, 1) == 1 ? 0 : 1;
    }
    close (ready[0]);
    setsid ();
  }

  sigset_t sigs;
  sigemptyset (&sigs);
  sigaddset (&sigs, SIGTERM);
  sigaddset (&sigs, SIGINT);
  sigaddset (&sigs, SIGHUP);
  pthread_sigmask (SIG_BLOCK, &sigs, NULL);
  signal (SIGPIPE, SIG_IGN);

  if (jobs_init (opt.state_dir, opt.workers) == -1) return 1;
  if (opt.socket && http_start_unix (opt.socket, opt.socket_mode, opt.threads) == -1) return 1;
  char bound[128] = "";
  if (opt.listen && http_start_tcp (opt.listen, cert, key, opt.threads, bound, sizeof bound) == -1) {
    http_stop ();
    return 1;
  }
  pthread_t hk;
  pthread_create (&hk, NULL, housekeeping, NULL);
  char doors[512] = "", *d = doors;
  if (opt.socket) d += snprintf (d, sizeof doors, "JSON on unix:%s", opt.socket);
  if (opt.listen)
    snprintf (d, sizeof doors - (size_t) (d - doors), "%sJSON and CIM-XML (/cimom) on %s://%s", opt.socket ? ", " : "",
              cert ? "https" : "http", bound);
  vlog ("ready: %s, %zu root(s), state in %s", doors, roots_count (), opt.state_dir);
  sd_notify (0, "READY=1");
  if (ready[1] != -1) {
    if (write (ready[1], "r", 1) != 1) vlog ("telling the parent: %s", strerror (errno));
    close (ready[1]);
    int nul = open ("/dev/null", O_RDWR);
    if (nul != -1) { dup2 (nul, 0); dup2 (nul, 1); close (nul); }
  }

  int sig;
  for (;;) {
    sigwait (&sigs, &sig);
    if (sig != SIGHUP) break;
    if (opt.credentials)
      vlog ("SIGHUP: %s", auth_load (opt.credentials) == 0 ? "credentials read again"
            : "the credentials file has errors (above); the previous entries stay in force");
  }
  vlog ("%s: stopping (jobs have %u s to finish)", sig == SIGTERM ? "SIGTERM" : "SIGINT", opt.stop_timeout);
  sd_notify (0, "STOPPING=1");
  jobs_shutdown (opt.stop_timeout);
  http_stop ();
  /* The TLS pair lived as long as the TCP door. */
  if (key) explicit_bzero (key, strlen (key));
  free (key);
  free (cert);
  __atomic_store_n (&stop_now, true, __ATOMIC_RELEASE);
  pthread_join (hk, NULL);
  int r = reg_close_all ();
  vlog ("stopped%s", r == -1 ? " (a disk could not be closed cleanly)" : "");
  return r == -1 ? 1 : 0;
}
