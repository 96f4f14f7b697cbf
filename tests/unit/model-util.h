/* model-util.h — what the model-based tests (test-rct-model.c,
 * test-set-model.c) share: failure reporting, the random numbers, the
 * 512-byte content pattern, the work directory, children under the io
 * simulator (VHDKIT_SIM, docs/IO-SIM.md), and the structural checks of a
 * page of a change query.  Everything is static: each test gets its own
 * copy, its own seed and its own state.
 *
 * The including test defines, before the #include:
 *   MODEL_NAME        "rct-model": the test is test-MODEL_NAME, its work
 *                     directory vhdkit-MODEL_NAME.XXXXXX
 *   MODEL_ENV         "VHDKIT_RCT_MODEL_": the prefix of its environment
 *                     variables (SEED, TRACE, DIR, KEEP)
 * and may define:
 *   MODEL_PATH_MAX    the size of a pathf buffer (default 700)
 *   MODEL_LASTOP_MAX  the size of the last-op text (default 512)
 *   MODEL_OPLOG       how many ops before the last one a failure lists
 *                     (default 0: none)
 */
#ifndef MODEL_UTIL_H
#define MODEL_UTIL_H

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "vhdkit.h"

#if !defined (MODEL_NAME) || !defined (MODEL_ENV)
#error "define MODEL_NAME and MODEL_ENV before including model-util.h"
#endif
#ifndef MODEL_PATH_MAX
#define MODEL_PATH_MAX 700
#endif
#ifndef MODEL_LASTOP_MAX
#define MODEL_LASTOP_MAX 512
#endif
#ifndef MODEL_OPLOG
#define MODEL_OPLOG 0
#endif

#define UNIT 512u               /* the byte model's unit (torn-write grain) */
#define SIM_EXIT_CRASH 99       /* how a child dies at a simulated crash */
#define IOBUF (4u << 20)        /* the read buffer */

/* ---- failure reporting ---- */

static uint64_t g_seed;         /* the run's seed */
static char g_ctx[512];         /* where we are: phase or round, config, step */
static char g_dir[512];         /* work directory */
static char g_lastop[MODEL_LASTOP_MAX];         /* the last op issued */
#if MODEL_OPLOG
static char g_oplog[MODEL_OPLOG][MODEL_LASTOP_MAX];     /* the ops before it */
static unsigned g_nops;
#endif
static bool g_trace;            /* MODEL_ENV TRACE=1: print every op */

#define TRACE(...) do { if (g_trace) { fprintf (stderr, "+ " __VA_ARGS__); \
      fputc ('\n', stderr); } } while (0)

static void fail (const char *fmt, ...) __attribute__ ((format (printf, 1, 2), noreturn));
static void
fail (const char *fmt, ...)
{
  va_list ap;

  fprintf (stderr, "FAIL [seed=%" PRIu64 "] %s (last op: %s): ", g_seed,
           g_ctx, g_lastop);
  va_start (ap, fmt);
  vfprintf (stderr, fmt, ap);
  va_end (ap);
#if MODEL_OPLOG
  {
    unsigned i, n = g_nops < MODEL_OPLOG ? g_nops : MODEL_OPLOG;

    fprintf (stderr, "\n  the ops before, oldest first:\n");
    for (i = g_nops - n; i < g_nops; i++)
      fprintf (stderr, "    %s\n", g_oplog[i % MODEL_OPLOG]);
  }
#else
  fprintf (stderr, "\n");
#endif
  fflush (stderr);
  exit (1);
}

static void
fail_lib (const char *what)
{
  fail ("%s failed: rc %" PRIu32 " (%s), errno %d: %s", what,
        vhdkit_get_error_code (), vhdkit_rc_name (vhdkit_get_error_code ())
        ? vhdkit_rc_name (vhdkit_get_error_code ()) : "?",
        vhdkit_get_errno (), vhdkit_get_error ());
}

static void setop (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
static void
setop (const char *fmt, ...)
{
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (g_lastop, sizeof g_lastop, fmt, ap);
  va_end (ap);
#if MODEL_OPLOG
  snprintf (g_oplog[g_nops++ % MODEL_OPLOG], sizeof g_oplog[0], "%s", g_lastop);
#endif
  TRACE ("%s", g_lastop);
}

/* A call that must fail with RC. */
static void
expect_rc (uint32_t rc, int r, const char *what)
{
  if (r != -1)
    fail ("%s succeeded; expected return code %" PRIu32, what, rc);
  if (vhdkit_get_error_code () != rc)
    fail ("%s: expected return code %" PRIu32 ", got %" PRIu32 ": %s", what,
          rc, vhdkit_get_error_code (), vhdkit_get_error ());
  if (vhdkit_get_error ()[0] == '\0')
    fail ("%s: no error sentence", what);
}

/* ---- random numbers (splitmix64) ---- */

static uint64_t rng;

static uint64_t
rnd (void)
{
  uint64_t z = (rng += UINT64_C (0x9E3779B97F4A7C15));
  z = (z ^ (z >> 30)) * UINT64_C (0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * UINT64_C (0x94D049BB133111EB);
  return z ^ (z >> 31);
}

static uint64_t rnd_below (uint64_t n) { return n ? rnd () % n : 0; }
static bool chance (unsigned pct) { return rnd_below (100) < pct; }

/* A random op range in sectors of LSS bytes on a disk of SIZE bytes
 * tracked at granularity G: small, crossing a G boundary, whole G-blocks,
 * large, or near the previous one; at most WMAX bytes. */
static void
rnd_range_in (uint64_t size, uint32_t g, uint32_t lss, uint64_t wmax,
              uint64_t *off, uint64_t *len)
{
  static uint64_t prev;
  uint64_t secs = size / lss, spg = g / lss, o, n, b;

  switch (rnd_below (6)) {
  case 0:
    o = rnd_below (secs);
    n = 1 + rnd_below (16);
    break;
  case 1:                               /* across a G boundary */
    b = 1 + rnd_below (size / g > 1 ? size / g - 1 : 1);
    n = 1 + rnd_below (spg < 8 ? spg : 8);
    o = b * spg >= n ? b * spg - n : 0;
    n += 1 + rnd_below (spg < 16 ? spg : 16);
    break;
  case 2:                               /* whole G-blocks */
    o = rnd_below (secs / spg) * spg;
    n = (1 + rnd_below (3)) * spg;
    break;
  case 3:                               /* large */
    o = rnd_below (secs);
    n = 1 + rnd_below ((2u << 20) / lss);
    break;
  case 4:                               /* near the previous one */
    o = prev / lss + rnd_below (2 * spg + 1);
    o = o > spg ? o - spg : 0;
    n = 1 + rnd_below (2 * spg);
    break;
  default:
    o = rnd_below (secs);
    n = 1 + rnd_below (spg * 3);
    break;
  }
  if (o >= secs)
    o = secs - 1;
  if (o + n > secs)
    n = secs - o;
  if (n > wmax / lss)
    n = wmax / lss;
  *off = o * lss;
  *len = n * lss;
  prev = *off;
}

/* ---- helpers ---- */

static char *
pathf (const char *fmt, ...)
{
  static char bufs[8][MODEL_PATH_MAX];
  static unsigned i;
  char *p = bufs[i++ % 8];
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (p, sizeof bufs[0], fmt, ap);
  va_end (ap);
  return p;
}

static double
now_s (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t
env_u64 (const char *name, uint64_t dflt)
{
  const char *s = getenv (name);
  char *end;
  unsigned long long v;

  if (s == NULL || *s == '\0')
    return dflt;
  errno = 0;
  v = strtoull (s, &end, 10);
  if (errno || *end) {
    fprintf (stderr, "test-" MODEL_NAME ": bad %s=%s\n", name, s);
    exit (2);
  }
  return v;
}

static void *
xcalloc (size_t n, size_t sz)
{
  void *p = calloc (n ? n : 1, sz);
  if (!p) {
    perror ("calloc");
    exit (2);
  }
  return p;
}

static void
get_rct_status (struct vhdkit_disk *d, struct vhdkit_rct_status *st)
{
  memset (st, 0, sizeof *st);
  st->struct_size = sizeof *st;
  if (vhdkit_rct_status (d, st) == -1)
    fail_lib ("rct_status");
}

/* ---- the content pattern: each 512-byte unit says which write put it ---- */

static unsigned char *wbuf, *iobuf;     /* the write and the read buffer */

/* Allocate wbuf (WSIZE bytes) and iobuf (IOBUF bytes); false if out of
 * memory. */
static bool
alloc_bufs (size_t wsize)
{
  wbuf = aligned_alloc (4096, wsize);
  iobuf = aligned_alloc (4096, IOBUF);
  return wbuf && iobuf;
}

static inline uint64_t
patword (uint32_t tag, uint64_t unit, unsigned w)
{
  return ((uint64_t) tag << 32) | (uint32_t) (unit * 64 + w + 1);
}

static void
fill_pattern (void *buf, uint64_t off, uint64_t len, uint32_t tag)
{
  uint64_t *w = buf;
  uint64_t u, first = off / UNIT;
  unsigned i;

  for (u = 0; u < len / UNIT; u++)
    for (i = 0; i < UNIT / 8; i++)
      w[u * (UNIT / 8) + i] = patword (tag, first + u, i);
}

/* The tag a unit holds, 0 for zeros, or UINT64_MAX if it is neither
 * zeros nor a whole pattern. */
static uint64_t
unit_tag (const void *p, uint64_t unit)
{
  const uint64_t *w = p;
  uint32_t tag = (uint32_t) (w[0] >> 32);
  unsigned i;

  if (w[0] == 0) {
    for (i = 1; i < UNIT / 8; i++)
      if (w[i] != 0)
        return UINT64_MAX;
    return 0;
  }
  if (tag == 0)
    return UINT64_MAX;
  for (i = 0; i < UNIT / 8; i++)
    if (w[i] != patword (tag, unit, i))
      return UINT64_MAX;
  return tag;
}

/* ---- a page of a change query ---- */

struct qstats { uint64_t queries, calls; };
static struct qstats qs;        /* change queries, and the calls they made */

/* Get one page of a change query into C (poisoned first, so that a field
 * the library leaves unset shows), counted in qs.calls. */
static int
get_page (struct vhdkit_disk *d, const char *limit_id, const char *target,
          uint64_t off, uint64_t len, size_t cap, struct vhdkit_changes *c)
{
  memset (c, 0xa5, sizeof *c);
  c->struct_size = sizeof *c;
  qs.calls++;
  return vhdkit_disk_get_changes (d, limit_id, target, off, len, cap, c);
}

/* What is wrong with page C of vhdkit_disk_get_changes asked for REM > 0
 * bytes with output cap CAP (0: the default), or NULL. */
static const char *
page_problem (const struct vhdkit_changes *c, uint64_t rem, size_t cap)
{
  size_t eff_cap = cap ? cap : VHDKIT_CHANGES_DEFAULT_MAX;

  if (c->processed == 0)
    return "no forward progress (processed 0 with ByteLength > 0)";
  if (c->processed > rem)
    return pathf ("processed exceeds ByteLength %" PRIu64, rem);
  if (c->count > eff_cap)
    return "more ranges than the cap";
  if (c->count > 0 && (c->offsets == NULL || c->lengths == NULL))
    return "NULL arrays with ranges";
  if (c->processed < rem && c->count != eff_cap)
    return "processed < ByteLength although the cap was not reached";
  return NULL;
}

/* What is wrong with range I of page C, which starts at OFF: empty, not
 * aligned to ALIGN, outside the page, not after the range before (the
 * message ends with ORDER_NOTE), of no known kind; or NULL. */
static const char *
range_problem (const struct vhdkit_changes *c, size_t i, uint64_t off,
               uint32_t align, const char *order_note)
{
  uint64_t o = c->offsets[i], l = c->lengths[i];

  if (l == 0 || o % align || l % align)
    return pathf ("range %zu [%" PRIu64 "+%" PRIu64 ") empty or not sector aligned", i, o, l);
  if (o < off || o + l > off + c->processed)
    return pathf ("range %zu [%" PRIu64 "+%" PRIu64 ") outside the processed window", i, o, l);
  if (i > 0 && o <= c->offsets[i - 1] + c->lengths[i - 1])
    return pathf ("range %zu [%" PRIu64 "+%" PRIu64 ") overlaps, precedes or touches the one before%s",
                  i, o, l, order_note);
  if (c->kinds && c->kinds[i] > VHDKIT_CHANGE_ZERO)
    return pathf ("range %zu has kind %u", i, c->kinds[i]);
  return NULL;
}

/* ---- children ---- */

/* fork; in the child arm an alarm of ALARM_S seconds (0: none), set
 * VHDKIT_SIM to SIM and VHDKIT_SIM_COUNT_FILE to COUNT_FILE (NULL: unset
 * them), run FN (ARG) and exit 0.  Returns the child's wait status. */
static int
in_child (const char *sim, const char *count_file, unsigned alarm_s,
          void (*fn) (void *), void *arg)
{
  pid_t pid;
  int st;

  fflush (stdout);
  fflush (stderr);
  pid = fork ();
  if (pid == -1) {
    perror ("fork");
    exit (2);
  }
  if (pid == 0) {
    if (alarm_s)
      alarm (alarm_s);
    if (sim)
      setenv ("VHDKIT_SIM", sim, 1);
    else
      unsetenv ("VHDKIT_SIM");
    if (count_file)
      setenv ("VHDKIT_SIM_COUNT_FILE", count_file, 1);
    else
      unsetenv ("VHDKIT_SIM_COUNT_FILE");
    fn (arg);
    exit (0);
  }
  while (waitpid (pid, &st, 0) == -1)
    if (errno != EINTR) {
      perror ("waitpid");
      exit (2);
    }
  return st;
}

static bool
exited (int st, int code)
{
  return WIFEXITED (st) && WEXITSTATUS (st) == code;
}

static void
describe_status (char *buf, size_t n, int st)
{
  if (WIFEXITED (st))
    snprintf (buf, n, "exit %d", WEXITSTATUS (st));
  else if (WIFSIGNALED (st))
    snprintf (buf, n, "signal %d", WTERMSIG (st));
  else
    snprintf (buf, n, "status %d", st);
}

/* The syncs a child under VHDKIT_SIM=count wrote to COUNT_FILE
 * ("syncs=N"), 0 if none.  LINE (N bytes, may be NULL) gets the file's
 * first line, or "missing" if there is no file. */
static uint64_t
read_syncs (const char *count_file, char *line, size_t n)
{
  char buf[256] = "";
  uint64_t syncs = 0;
  FILE *f = fopen (count_file, "r");

  if (f && fgets (buf, sizeof buf, f)) {
    char *s = strstr (buf, "syncs=");
    if (s)
      syncs = strtoull (s + 6, NULL, 10);
  }
  if (f)
    fclose (f);
  if (line)
    snprintf (line, n, "%s", f ? buf : "missing");
  return syncs;
}

/* ---- the work directory and the run ---- */

static int
rm_one (const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
  (void) sb; (void) flag; (void) ftw;
  return remove (p);
}

static void
rm_tree (const char *p)
{
  nftw (p, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* MODEL_ENV KEEP set: leave the work directory. */
static bool
keep_dir (void)
{
  return getenv (MODEL_ENV "KEEP") != NULL;
}

/* Read MODEL_ENV TRACE and SEED (default: from the clock), seed rng and
 * say how to rerun. */
static void
model_start (uint64_t steps, uint64_t crashes)
{
  g_trace = env_u64 (MODEL_ENV "TRACE", 0) != 0;
  g_seed = env_u64 (MODEL_ENV "SEED", 0);
  if (g_seed == 0)
    g_seed = (uint64_t) time (NULL) ^ ((uint64_t) getpid () << 20);
  rng = g_seed;
  fprintf (stderr, "# test-" MODEL_NAME ": seed %" PRIu64 ", %" PRIu64 " steps, %"
           PRIu64 " crashes (rerun: " MODEL_ENV "SEED=%" PRIu64 ")\n",
           g_seed, steps, crashes, g_seed);
}

/* Make g_dir in MODEL_ENV DIR, else /dev/shm if writable, else $TMPDIR,
 * else /tmp; -1 if that fails.  (Real fsyncs on a busy disk would
 * dominate the run time, and crashes are simulated anyway: prefer
 * tmpfs.) */
static int
make_work_dir (void)
{
  const char *tmp = getenv ("TMPDIR");

  if (getenv (MODEL_ENV "DIR") && *getenv (MODEL_ENV "DIR"))
    tmp = getenv (MODEL_ENV "DIR");
  else if (access ("/dev/shm", W_OK | X_OK) == 0)
    tmp = "/dev/shm";
  snprintf (g_dir, sizeof g_dir, "%s/vhdkit-" MODEL_NAME ".XXXXXX",
            tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp (g_dir)) {
    perror ("mkdtemp");
    return -1;
  }
  return 0;
}

/* Remove the work directory after a pass (unless KEEP), say how the run
 * ended (TAIL follows the seed) and return STATUS. */
static int
model_finish (int status, const char *tail)
{
  if (status == 0 && !keep_dir ())
    rm_tree (g_dir);
  if (status != 0)
    fprintf (stderr, "test-" MODEL_NAME " FAILED: rerun with " MODEL_ENV "SEED=%"
             PRIu64 " (work directory kept: %s)\n", g_seed, g_dir);
  else
    fprintf (stderr, "test-" MODEL_NAME ": passed (seed %" PRIu64 "%s)\n", g_seed, tail);
  return status;
}

#endif /* MODEL_UTIL_H */
