/* Credentials of the TCP door (docs/vhdkitd.8.md, "TCP, credentials and
 * TLS").
 *
 * The credentials file holds one entry a line ("#" starts a comment):
 *   user  NAME HASH   HTTP Basic with NAME and a password (both doors)
 *   token NAME HASH   "Authorization: Bearer NAME.SECRET" (JSON door)
 * HASH is a crypt(3) string of the password or SECRET; yescrypt ($y$,
 * what `vhdkitd --hash-password` and `--new-token` write, and what
 * `mkpasswd -m yescrypt` writes) is the one to use, and any method
 * libxcrypt rates as not legacy is accepted.  Names are 1 to 64 of
 * A-Z a-z 0-9 _ -.
 *
 * Checking costs one crypt_r (tens of milliseconds with yescrypt's
 * default cost); an unknown name costs the same (a hash of a random
 * password stands in for it) and the comparison of the result takes a
 * time that depends only on the stored hash's length, so neither the
 * answer's timing nor its text says whether a name exists.  The HTTP
 * layer caches a success per connection (http.c), keyed by
 * auth_generation so that a reload ends it.
 *
 * Locking: the table is replaced whole under a write lock (start,
 * SIGHUP); checks hold the read lock across crypt_r, so they run in
 * parallel and a reload waits for them.
 */
#include <errno.h>
#include <crypt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <termios.h>
#include <unistd.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "vhdkitd.h"

#define NAME_MAX_LEN 64
#define SECRET_MAX 1024
#define MAX_ENTRIES 4096

struct cred {
  char kind;                     /* 'u' (user) or 't' (token) */
  char name[NAME_MAX_LEN + 1];
  char *hash;
};

static pthread_rwlock_t lock = PTHREAD_RWLOCK_INITIALIZER;
static struct cred *table;
static size_t ntable;
static char *dummy_hash;         /* for names that are not in the table */
static unsigned generation;

static bool
name_ok (const char *s, size_t n)
{
  if (n == 0 || n > NAME_MAX_LEN) return false;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
          s[i] == '_' || s[i] == '-'))
      return false;
  return true;
}

/* A hash of SECRET in the preferred method, or NULL. */
static char *
hash_secret (const char *secret)
{
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
  if (!crypt_gensalt_rn ("$y$", 0, NULL, 0, salt, sizeof salt)) return NULL;
  struct crypt_data *cd = calloc (1, sizeof *cd);
  if (!cd) return NULL;
  char *h = crypt_r (secret, salt, cd);
  char *r = h && h[0] != '*' ? strdup (h) : NULL;
  explicit_bzero (cd, sizeof *cd);
  free (cd);
  return r;
}

/* Equal strings, in a time that depends only on B's length (B is the
 * stored hash; A what the caller's secret hashed to). */
static bool
same (const char *a, const char *b)
{
  size_t la = strlen (a), lb = strlen (b);
  volatile unsigned char d = la != lb;
  for (size_t i = 0; i < lb; i++)
    d |= (unsigned char) ((i < la ? a[i] : 0) ^ b[i]);
  return d == 0;
}

static void
free_table (struct cred *t, size_t n)
{
  for (size_t i = 0; i < n; i++) free (t[i].hash);
  free (t);
}

int
auth_load (const char *path)
{
  FILE *f = fopen (path, "re");
  if (!f) {
    vlog ("credentials %s: %s", path, strerror (errno));
    return -1;
  }
  struct stat st;
  if (fstat (fileno (f), &st) == 0 && (st.st_mode & 022)) {
    vlog ("credentials %s: its group or others may write it (mode %03o): make it writable by its owner only (chmod 600)",
          path, (unsigned) (st.st_mode & 0777));
    fclose (f);
    return -1;
  }
  struct cred *t = NULL;
  size_t n = 0;
  char line[2048];
  int ln = 0, bad = 0;
  while (fgets (line, sizeof line, f)) {
    ln++;
    if (!strchr (line, '\n') && !feof (f)) {
      vlog ("credentials %s:%d: the line is longer than %zu bytes", path, ln, sizeof line - 2);
      bad = 1;
      break;
    }
    char *save, *kind = strtok_r (line, " \t\r\n", &save);
    if (!kind || *kind == '#') continue;
    char *name = strtok_r (NULL, " \t\r\n", &save), *hash = strtok_r (NULL, " \t\r\n", &save);
    char *extra = strtok_r (NULL, " \t\r\n", &save);
    char k = strcmp (kind, "user") == 0 ? 'u' : strcmp (kind, "token") == 0 ? 't' : 0;
    if (!k || !name || !hash || (extra && *extra != '#')) {
      vlog ("credentials %s:%d: expected \"user NAME HASH\" or \"token NAME HASH\"", path, ln);
      bad = 1;
      continue;
    }
    if (!name_ok (name, strlen (name))) {
      vlog ("credentials %s:%d: the name \"%.80s\" is not 1 to %d of A-Z a-z 0-9 _ -", path, ln, name, NAME_MAX_LEN);
      bad = 1;
      continue;
    }
    int cs = crypt_checksalt (hash);
    if (cs != CRYPT_SALT_OK) {
      vlog ("credentials %s:%d: %s: %s", path, ln, name,
            cs == CRYPT_SALT_METHOD_LEGACY ? "the hash uses a legacy method, or is no hash at all (make one with "
            "vhdkitd --hash-password)" : "the hash is not a crypt(3) hash this system knows (make one with "
            "vhdkitd --hash-password)");
      bad = 1;
      continue;
    }
    bool dup = false;
    for (size_t i = 0; i < n; i++) dup |= t[i].kind == k && strcmp (t[i].name, name) == 0;
    if (dup) {
      vlog ("credentials %s:%d: %s %s is given twice", path, ln, kind, name);
      bad = 1;
      continue;
    }
    if (n == MAX_ENTRIES) {
      vlog ("credentials %s:%d: more than %d entries", path, ln, MAX_ENTRIES);
      bad = 1;
      break;
    }
    struct cred *nt = realloc (t, (n + 1) * sizeof *t);
    if (!nt) { bad = 1; break; }
    t = nt;
    t[n].kind = k;
    snprintf (t[n].name, sizeof t[n].name, "%s", name);
    t[n].hash = strdup (hash);
    if (!t[n].hash) { bad = 1; break; }
    n++;
  }
  if (ferror (f)) {
    vlog ("credentials %s: %s", path, strerror (errno));
    bad = 1;
  }
  fclose (f);
  if (!bad && n == 0) {
    vlog ("credentials %s: no entry (add one with vhdkitd --hash-password NAME >> %s)", path, path);
    bad = 1;
  }
  /* The stand-in for unknown names: a hash of a random password. */
  char *dummy = NULL;
  if (!bad) {
    unsigned char r[24];
    char pw[2 * sizeof r + 1];
    if (getrandom (r, sizeof r, 0) != (ssize_t) sizeof r) bad = 1;
    for (size_t i = 0; !bad && i < sizeof r; i++) snprintf (pw + 2 * i, 3, "%02x", r[i]);
    if (!bad && !(dummy = hash_secret (pw))) bad = 1;
  }
  if (bad) {
    free_table (t, n);
    free (dummy);
    return -1;
  }
  pthread_rwlock_wrlock (&lock);
  free_table (table, ntable);
  free (dummy_hash);
  table = t;
  ntable = n;
  dummy_hash = dummy;
  __atomic_add_fetch (&generation, 1, __ATOMIC_ACQ_REL);
  pthread_rwlock_unlock (&lock);
  return 0;
}

unsigned
auth_generation (void)
{
  return __atomic_load_n (&generation, __ATOMIC_ACQUIRE);
}

/* SECRET against the entry KIND NAME; the read lock is held. */
static bool
verify_locked (char kind, const char *name, size_t name_len, const char *secret)
{
  const char *hash = dummy_hash;
  bool known = false;
  for (size_t i = 0; i < ntable; i++)
    if (table[i].kind == kind && strlen (table[i].name) == name_len && memcmp (table[i].name, name, name_len) == 0) {
      hash = table[i].hash;
      known = true;
    }
  if (!hash) return false;
  struct crypt_data *cd = calloc (1, sizeof *cd);
  if (!cd) return false;
  const char *h = crypt_r (secret, hash, cd);
  bool ok = h && same (h, hash) && known;
  explicit_bzero (cd, sizeof *cd);
  free (cd);
  return ok;
}

/* Standard base64 (padding optional) into OUT; its length, or -1. */
static ssize_t
unbase64 (const char *s, char *out, size_t n)
{
  size_t o = 0;
  unsigned acc = 0, bits = 0;
  for (; *s && *s != '='; s++) {
    const char *alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *p = strchr (alpha, *s);
    if (!p || !*s) return -1;
    acc = (acc << 6) | (unsigned) (p - alpha);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (o + 1 >= n) return -1;
      out[o++] = (char) ((acc >> bits) & 0xff);
    }
  }
  while (*s == '=') s++;
  if (*s) return -1;
  out[o] = 0;
  return (ssize_t) o;
}

bool
auth_check (const char *header, unsigned kinds, char *why, size_t n)
{
  const char *need = kinds == AUTH_BASIC ? "HTTP Basic authentication (a user of the credentials file)"
    : "HTTP Basic authentication or a bearer token";
  if (!header || !*header) {
    snprintf (why, n, "this door needs %s", need);
    return false;
  }
  bool ok = false;
  if (strncasecmp (header, "Basic ", 6) == 0 && (kinds & AUTH_BASIC)) {
    const char *b = header + 6;
    while (*b == ' ') b++;
    char plain[SECRET_MAX + NAME_MAX_LEN + 2];
    ssize_t l = unbase64 (b, plain, sizeof plain);
    char *colon = l > 0 ? memchr (plain, ':', (size_t) l) : NULL;
    if (!colon || memchr (plain, 0, (size_t) l)) {
      snprintf (why, n, "the Basic credentials are not base64 of NAME:PASSWORD");
      return false;
    }
    pthread_rwlock_rdlock (&lock);
    ok = verify_locked ('u', plain, (size_t) (colon - plain), colon + 1);
    pthread_rwlock_unlock (&lock);
    explicit_bzero (plain, sizeof plain);
    if (!ok) snprintf (why, n, "wrong user name or password");
  }
  else if (strncasecmp (header, "Bearer ", 7) == 0 && (kinds & AUTH_BEARER)) {
    const char *t = header + 7;
    while (*t == ' ') t++;
    const char *dot = strchr (t, '.');
    if (!dot || strlen (dot + 1) > SECRET_MAX) {
      snprintf (why, n, "the bearer token is not of the form NAME.SECRET");
      return false;
    }
    pthread_rwlock_rdlock (&lock);
    ok = verify_locked ('t', t, (size_t) (dot - t), dot + 1);
    pthread_rwlock_unlock (&lock);
    if (!ok) snprintf (why, n, "unknown or wrong bearer token");
  }
  else {
    /* Name the scheme only: the rest may be a secret. */
    int l = (int) strcspn (header, " ");
    snprintf (why, n, "this door takes %s, not the scheme \"%.*s\"", need, l > 20 ? 20 : l, header);
  }
  return ok;
}

/* ---- the helper modes ---- */

static int
read_secret (const char *name, char *buf, size_t n)
{
  bool tty = isatty (0);
  struct termios old, quiet;
  for (int round = 0; round < (tty ? 2 : 1); round++) {
    char *dst = round == 0 ? buf : buf + n / 2;
    if (tty) {
      fprintf (stderr, round == 0 ? "Password for %s: " : "Again: ", name);
      tcgetattr (0, &old);
      quiet = old;
      quiet.c_lflag &= ~(tcflag_t) ECHO;
      tcsetattr (0, TCSAFLUSH, &quiet);
    }
    char *r = fgets (dst, (int) (n / 2), stdin);
    if (tty) {
      tcsetattr (0, TCSAFLUSH, &old);
      fputc ('\n', stderr);
    }
    if (!r) {
      vlog ("--hash-password: no password on standard input");
      return -1;
    }
    if (!strchr (dst, '\n') && !feof (stdin)) {
      vlog ("--hash-password: the password is longer than %zu bytes", n / 2 - 2);
      return -1;
    }
    dst[strcspn (dst, "\r\n")] = 0;
  }
  if (tty && strcmp (buf, buf + n / 2) != 0) {
    vlog ("--hash-password: the two passwords differ");
    return -1;
  }
  if (!*buf) {
    vlog ("--hash-password: the password is empty");
    return -1;
  }
  return 0;
}

int
auth_hash_password (const char *name)
{
  if (!name_ok (name, strlen (name))) {
    vlog ("--hash-password: the name \"%.80s\" is not 1 to %d of A-Z a-z 0-9 _ -", name, NAME_MAX_LEN);
    return 2;
  }
  char buf[2 * (SECRET_MAX + 2)];
  int r = read_secret (name, buf, sizeof buf);
  char *h = r == 0 ? hash_secret (buf) : NULL;
  explicit_bzero (buf, sizeof buf);
  if (r == -1) return 1;
  if (!h) {
    vlog ("--hash-password: crypt: %s", strerror (errno));
    return 1;
  }
  printf ("user %s %s\n", name, h);
  free (h);
  return fflush (stdout) == 0 ? 0 : 1;
}

int
auth_new_token (const char *name)
{
  if (!name_ok (name, strlen (name))) {
    vlog ("--new-token: the name \"%.80s\" is not 1 to %d of A-Z a-z 0-9 _ -", name, NAME_MAX_LEN);
    return 2;
  }
  static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  unsigned char r[33];
  char secret[45];
  if (getrandom (r, sizeof r, 0) != (ssize_t) sizeof r) {
    vlog ("--new-token: getrandom: %s", strerror (errno));
    return 1;
  }
  size_t o = 0;
  for (size_t i = 0; i < sizeof r; i += 3) {
    unsigned v = (unsigned) r[i] << 16 | (unsigned) r[i + 1] << 8 | r[i + 2];
    for (int j = 3; j >= 0; j--) secret[o++] = b64url[(v >> (6 * j)) & 63];
  }
  secret[o] = 0;
  char *h = hash_secret (secret);
  if (!h) {
    vlog ("--new-token: crypt: %s", strerror (errno));
    return 1;
  }
  printf ("%s.%s\ntoken %s %s\n", name, secret, name, h);
  explicit_bzero (secret, sizeof secret);
  free (h);
  return fflush (stdout) == 0 ? 0 : 1;
}
