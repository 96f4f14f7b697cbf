/* Power loss while several threads write one handle, with and without an
 * I/O error first (docs/IO-SIM.md, crash mode with fail=KIND:at=M).
 *
 * The parent makes a tracked dynamic VHDX with data in its first half and
 * a reference point ID0, then runs this program again (exec, so that the
 * simulator reads a fresh VHDKIT_SIM) as the workload: four threads write,
 * zero and discard random ranges (some FUA), one takes reference points
 * and one flushes, all on one handle, until the simulated power loss.  A
 * thread whose change fails retries it once as a new change and stops
 * if that fails too (the handle may refuse from then on; every refusal
 * must say why).  Every call is logged before it starts and after it
 * returns, with one write(2) per line to a file outside the simulator, so
 * the log order is the order of events.
 *
 * After each crash the parent opens the image and checks, sector by
 * sector (each written sector carries the ID of the change that wrote
 * it):
 *  - every sector holds the first-half data, zeros, or exactly what a
 *    logged change wrote there (nothing else, nothing torn in a sector);
 *  - durability: a change that completed before a flush that returned is
 *    not lost (the sector holds it, or a change that had not completed
 *    before it began);
 *  - INV-1: for ID0 and every reference point that returned, every sector
 *    whose content comes from a change that began after the reference
 *    point returned lies in a changed range - or the ID answers 32775
 *    (allowed after a failure; never allowed for ID0 without one);
 *  - vhdkit_check finds the image clean; then a writer opens it, writes
 *    more, closes, and the checks above hold again.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "vhdkit.h"

extern char **environ;

#define MIB (1u << 20)
#define SIZE (16u * MIB)
#define DATA_END (8u * MIB)     /* the first half holds data at ID0 */
#define SECT 512u
#define NSECT (SIZE / SECT)
#define WRITERS 4
#define OPS_PER_WRITER 300
#define MAXLEN (64u * 1024)

/* ---- Sector content ---- */

static uint64_t
mix (uint64_t x)
{
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

/* What change ID (0: the first-half data) writes at sector offset OFF. */
static void
stamp (uint8_t *b, uint64_t id, uint64_t off)
{
  memcpy (b, &id, 8);
  memcpy (b + 8, &off, 8);
  for (unsigned i = 16; i < SECT; i += 8) {
    uint64_t v = mix (id * 0x100000001b3ull ^ off ^ i);
    memcpy (b + i, &v, 8);
  }
}

static int
is_zero (const uint8_t *b, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (b[i]) return 0;
  return 1;
}

/* ---- The workload (this program with --run DIR) ---- */

static struct vhdkit_disk *wd;
static int logfd;
static atomic_int writers_left = WRITERS;

static void
logf_ (const char *fmt, ...)
{
  char line[512];
  va_list ap;
  va_start (ap, fmt);
  int n = vsnprintf (line, sizeof line - 1, fmt, ap);
  va_end (ap);
  if (n < 0 || n > (int) sizeof line - 2) n = (int) sizeof line - 2;
  line[n++] = '\n';
  if (write (logfd, line, (size_t) n) != n) _exit (97);
}

enum { K_WRITE, K_ZERO, K_DISCARD };
static const char kch[] = "wzd";

static int
do_op (unsigned t, uint32_t *seq, int kind, uint64_t off, uint64_t len, unsigned flags, uint8_t *buf)
{
  uint64_t id = ((uint64_t) (t + 1) << 32) | ++*seq;
  int r;
  logf_ ("B %" PRIu64 " %c %" PRIu64 " %" PRIu64 " %u", id, kch[kind], off, len, flags);
  if (kind == K_WRITE) {
    for (uint64_t s = 0; s < len; s += SECT)
      stamp (buf + s, id, off + s);
    r = vhdkit_disk_pwrite (wd, buf, len, off, flags);
  }
  else if (kind == K_ZERO)
    r = vhdkit_disk_zero (wd, len, off, flags);
  else
    r = vhdkit_disk_discard (wd, len, off, flags & VHDKIT_IO_FUA);
  if (r == -1) {
    const char *e = vhdkit_get_error ();
    logf_ ("D %" PRIu64 " -1 %u %s", id, vhdkit_get_error_code (), e && *e ? e : "(no message)");
  }
  else
    logf_ ("D %" PRIu64 " 0", id);
  return r;
}

static void *
writer (void *arg)
{
  unsigned t = (unsigned) (uintptr_t) arg, seed = 1234567u * (t + 1) ^ (unsigned) getpid ();
  uint32_t seq = 0;
  uint8_t *buf = malloc (MAXLEN);
  for (int i = 0; i < OPS_PER_WRITER; i++) {
    unsigned x = (unsigned) rand_r (&seed) % 100;
    int kind = x < 75 ? K_WRITE : x < 90 ? K_ZERO : K_DISCARD;
    uint64_t len = SECT * (1 + (uint64_t) rand_r (&seed) % (MAXLEN / SECT));
    if (kind == K_DISCARD && rand_r (&seed) % 2) len = MIB;
    uint64_t off = SECT * ((uint64_t) rand_r (&seed) % ((SIZE - len) / SECT + 1));
    if (len == MIB) off &= ~(uint64_t) (MIB - 1);
    unsigned flags = rand_r (&seed) % 10 == 0 ? VHDKIT_IO_FUA : 0;
    if (kind == K_ZERO && rand_r (&seed) % 2) flags |= VHDKIT_IO_NO_HOLE;
    if (do_op (t, &seq, kind, off, len, flags, buf) == -1 &&
        do_op (t, &seq, kind, off, len, flags, buf) == -1)
      break;                    /* refused twice: the handle is done */
  }
  free (buf);
  atomic_fetch_sub (&writers_left, 1);
  return NULL;
}

static void *
checkpointer (void *arg)
{
  char id[VHDKIT_RCT_ID_MAX];
  (void) arg;
  for (int k = 1; atomic_load (&writers_left) > 0; k++) {
    usleep (3000);
    logf_ ("CB %d", k);
    if (vhdkit_rct_checkpoint (wd, id) == -1)
      logf_ ("CF %d %u %s", k, vhdkit_get_error_code (), vhdkit_get_error ());
    else
      logf_ ("CD %d %s", k, id);
  }
  return NULL;
}

static void *
flusher (void *arg)
{
  (void) arg;
  for (int k = 1; atomic_load (&writers_left) > 0; k++) {
    usleep (2000);
    logf_ ("FB %d", k);
    if (vhdkit_disk_flush (wd) == -1)
      logf_ ("FF %d %u %s", k, vhdkit_get_error_code (), vhdkit_get_error ());
    else
      logf_ ("FD %d", k);
  }
  return NULL;
}

/* The same changes from one thread in a fixed order, with reference
 * points and flushes between them, so that every run makes the same
 * calls and the same I/O: the sweep fails each write and each sync in
 * turn. */
static void
seq_script (void)
{
  unsigned seed = 42;
  uint32_t seq = 0;
  uint8_t *buf = malloc (MAXLEN);
  char id[VHDKIT_RCT_ID_MAX];
  for (int i = 0; i < 40; i++) {
    unsigned x = (unsigned) rand_r (&seed) % 100;
    int kind = x < 70 ? K_WRITE : x < 85 ? K_ZERO : K_DISCARD;
    uint64_t len = SECT * (1 + (uint64_t) rand_r (&seed) % (MAXLEN / SECT));
    if (kind == K_DISCARD && rand_r (&seed) % 2) len = MIB;
    uint64_t off = SECT * ((uint64_t) rand_r (&seed) % ((SIZE - len) / SECT + 1));
    if (len == MIB) off &= ~(uint64_t) (MIB - 1);
    unsigned flags = i % 7 == 3 ? VHDKIT_IO_FUA : 0;
    if (do_op (0, &seq, kind, off, len, flags, buf) == -1)
      do_op (0, &seq, kind, off, len, flags, buf);      /* retry once, go on */
    if (i % 8 == 7) {
      logf_ ("CB %d", i / 8 + 1);
      if (vhdkit_rct_checkpoint (wd, id) == -1)
        logf_ ("CF %d %u %s", i / 8 + 1, vhdkit_get_error_code (), vhdkit_get_error ());
      else
        logf_ ("CD %d %s", i / 8 + 1, id);
    }
    if (i % 5 == 4) {
      logf_ ("FB %d", i / 5 + 1);
      if (vhdkit_disk_flush (wd) == -1)
        logf_ ("FF %d %u %s", i / 5 + 1, vhdkit_get_error_code (), vhdkit_get_error ());
      else
        logf_ ("FD %d", i / 5 + 1);
    }
  }
  free (buf);
}

static int
workload (const char *dir, int measure, int sequential)
{
  char path[512];
  pthread_t th[WRITERS + 2];
  snprintf (path, sizeof path, "%s/log", dir);
  logfd = open (path, O_WRONLY | O_APPEND | O_CREAT | O_TRUNC, 0644);
  snprintf (path, sizeof path, "%s/d.vhdx", dir);
  if (logfd == -1 || !(wd = vhdkit_disk_open (path, VHDKIT_OPEN_RDWR))) {
    fprintf (stderr, "workload: open %s: %s\n", path, vhdkit_get_error ());
    return 1;
  }
  if (sequential)
    seq_script ();
  else {
    for (int i = 0; i < WRITERS; i++)
      pthread_create (&th[i], NULL, writer, (void *) (uintptr_t) i);
    pthread_create (&th[WRITERS], NULL, checkpointer, NULL);
    pthread_create (&th[WRITERS + 1], NULL, flusher, NULL);
    for (int i = 0; i < WRITERS + 2; i++)
      pthread_join (th[i], NULL);
  }
  logf_ ("END");
  /* The measuring run exits normally, so that the simulator reports its
   * counts; otherwise no crash came: lose power anyway (pending writes
   * are not applied). */
  if (measure) exit (0);
  _exit (0);
}

/* ---- The parent: runs and checks ---- */

struct op {
  uint64_t id, off, len;
  char kind;
  long b, d;                    /* log line of its start and its end (LONG_MAX: none) */
  int ok;
  int forced;                   /* must be durable whatever the flushes say */
};

struct ckpt { long b, d; char id[VHDKIT_RCT_ID_MAX]; };

static struct op *ops;
static size_t nops;
static struct ckpt cks[4096];
static size_t ncks;
static long last_flush_begin;   /* log line of the latest FB whose FD was logged */
static int faults_seen;
static char dir[] = "/tmp/vhdkit-mtcrash.XXXXXX";
static uint8_t base[SIZE];      /* the image at ID0 */
static char id0[VHDKIT_RCT_ID_MAX];
static int failed;

#define FAIL(...) do { fprintf (stderr, "FAIL: " __VA_ARGS__); fputc ('\n', stderr); failed = 1; } while (0)

static struct op *
find_op (uint64_t id)
{
  size_t lo = 0, hi = nops;     /* ops are sorted by id after parse */
  while (lo < hi) {
    size_t m = (lo + hi) / 2;
    if (ops[m].id < id) lo = m + 1; else hi = m;
  }
  return lo < nops && ops[lo].id == id ? &ops[lo] : NULL;
}

static int
by_id (const void *a, const void *b)
{
  const struct op *x = a, *y = b;
  return x->id < y->id ? -1 : x->id > y->id;
}

static int
parse_log (void)
{
  char path[512], line[1024];
  snprintf (path, sizeof path, "%s/log", dir);
  FILE *f = fopen (path, "r");
  if (!f) { FAIL ("no log: %s", strerror (errno)); return -1; }
  long ln = 0, fb[65536] = { 0 };
  nops = ncks = 0;
  memset (cks, 0, sizeof cks);
  last_flush_begin = -1;
  faults_seen = 0;
  size_t cap = 4096;
  ops = realloc (ops, cap * sizeof *ops);
  while (fgets (line, sizeof line, f)) {
    uint64_t id, off, len;
    unsigned fl;
    char k;
    int n;
    ln++;
    if (sscanf (line, "B %" SCNu64 " %c %" SCNu64 " %" SCNu64 " %u", &id, &k, &off, &len, &fl) == 5) {
      if (nops == cap) ops = realloc (ops, (cap *= 2) * sizeof *ops);
      ops[nops++] = (struct op) { .id = id, .off = off, .len = len, .kind = k, .b = ln, .d = LONG_MAX };
    }
    else if (sscanf (line, "D %" SCNu64 " %d", &id, &n) == 2) {
      size_t i = nops;
      while (i > 0 && ops[i - 1].id != id) i--;
      if (i == 0) { FAIL ("log: end of a change that never began: %s", line); continue; }
      ops[i - 1].d = ln;
      ops[i - 1].ok = n == 0;
      if (n != 0) {
        faults_seen++;
        unsigned rc;
        char msg[512] = "";
        if (sscanf (line, "D %*u -1 %u %511[^\n]", &rc, msg) < 2 || strcmp (msg, "(no message)") == 0)
          FAIL ("a change failed without a sentence saying why: %s", line);
      }
    }
    else if (sscanf (line, "CB %d", &n) == 1 && n > 0 && (size_t) n < 4096)
      cks[n].b = ln;
    else if (sscanf (line, "CD %d", &n) == 1 && n > 0 && (size_t) n < 4096) {
      sscanf (line, "CD %*d %63s", cks[n].id);
      cks[n].d = ln;
      if ((size_t) n + 1 > ncks) ncks = (size_t) n + 1;
    }
    else if (sscanf (line, "FB %d", &n) == 1 && n > 0 && n < 65536)
      fb[n] = ln;
    else if (sscanf (line, "FD %d", &n) == 1 && n > 0 && n < 65536)
      last_flush_begin = fb[n];
    else if (line[0] == 'C' || line[0] == 'F')
      faults_seen++;            /* CF / FF: a refused checkpoint or flush */
  }
  fclose (f);
  qsort (ops, nops, sizeof *ops, by_id);
  return 0;
}

/* Per sector: the changes that touched it (indexes into ops). */
static size_t *touch_start, *touch;

static void
index_sectors (void)
{
  free (touch_start); free (touch);
  touch_start = calloc (NSECT + 1, sizeof *touch_start);
  size_t total = 0;
  for (size_t i = 0; i < nops; i++)
    for (uint64_t s = ops[i].off / SECT; s < (ops[i].off + ops[i].len) / SECT; s++) {
      touch_start[s + 1]++;
      total++;
    }
  for (size_t s = 0; s < NSECT; s++) touch_start[s + 1] += touch_start[s];
  touch = malloc ((total + 1) * sizeof *touch);
  size_t *fillp = calloc (NSECT, sizeof *fillp);
  for (size_t i = 0; i < nops; i++)
    for (uint64_t s = ops[i].off / SECT; s < (ops[i].off + ops[i].len) / SECT; s++)
      touch[touch_start[s] + fillp[s]++] = i;
  free (fillp);
}

/* Where sector S's content came from: the latest log line by which it
 * had certainly been written ("done"), and whether it was certainly
 * there before line L.  For content that more than one source explains
 * (zeros), the most lenient source is chosen by the callers. */
struct src { long b, d; int base; };

/* Candidate sources of sector S reading as BUF; returns how many. */
static size_t
sources (uint64_t s, const uint8_t *buf, struct src *out, size_t cap)
{
  size_t n = 0;
  uint8_t want[SECT];
  if (is_zero (buf, SECT)) {
    if (s * SECT >= DATA_END && n < cap) out[n++] = (struct src) { -1, -1, 1 };
    for (size_t k = touch_start[s]; k < touch_start[s + 1] && n < cap; k++) {
      const struct op *o = &ops[touch[k]];
      if (o->kind != 'w') out[n++] = (struct src) { o->b, o->d, 0 };
    }
    return n;
  }
  uint64_t id;
  memcpy (&id, buf, 8);
  if (id == 0) {
    if (s * SECT < DATA_END && memcmp (buf, base + s * SECT, SECT) == 0)
      out[n++] = (struct src) { -1, -1, 1 };
    return n;
  }
  const struct op *o = find_op (id);
  if (!o || o->kind != 'w' || o->off > s * SECT || o->off + o->len <= s * SECT) return 0;
  stamp (want, id, s * SECT);
  if (memcmp (want, buf, SECT) != 0) return 0;
  out[n++] = (struct src) { o->b, o->d, 0 };
  return n;
}

static int
covered (const struct vhdkit_changes *c, uint64_t off)
{
  size_t lo = 0, hi = c->count;
  while (lo < hi) {
    size_t m = (lo + hi) / 2;
    if (c->offsets[m] + c->lengths[m] <= off) lo = m + 1; else hi = m;
  }
  return lo < c->count && c->offsets[lo] <= off;
}

/* All checks on the image in DIR; WHEN names the moment for messages. */
static void
check_image (const char *when, int fault_run)
{
  char path[512];
  static uint8_t img[SIZE];
  snprintf (path, sizeof path, "%s/d.vhdx", dir);
  if (vhdkit_check (path, NULL, NULL) != 0) {
    FAIL ("%s: vhdkit_check: %s", when, vhdkit_get_error ());
    return;
  }
  struct vhdkit_disk *r = vhdkit_disk_open (path, VHDKIT_OPEN_RDONLY);
  if (!r) { FAIL ("%s: open: %s", when, vhdkit_get_error ()); return; }
  if (vhdkit_disk_pread (r, img, SIZE, 0, 0) == -1) {
    FAIL ("%s: read: %s", when, vhdkit_get_error ());
    vhdkit_disk_close (r);
    return;
  }
  /* Changes since ID0 and since every reference point that returned. */
  size_t nq = ncks ? ncks : 1;
  struct vhdkit_changes *ch = calloc (nq, sizeof *ch);
  int *valid = calloc (nq, sizeof *valid);
  for (size_t k = 0; k < nq; k++) {
    const char *id = k == 0 ? id0 : cks[k].id;
    ch[k] = (struct vhdkit_changes) VHDKIT_CHANGES_INIT;
    if (!*id) continue;
    if (vhdkit_disk_get_changes (r, id, NULL, 0, SIZE, 0, &ch[k]) == 0) valid[k] = 1;
    else if (vhdkit_get_error_code () != VHDKIT_RC_INVALID_STATE)
      FAIL ("%s: changes since %s: %s", when, id, vhdkit_get_error ());
    else if (k == 0 && !fault_run)
      FAIL ("%s: ID0 answers 32775 after a crash with no I/O error: %s", when, vhdkit_get_error ());
  }
  size_t bad_content = 0, lost = 0, fneg = 0;
  for (uint64_t s = 0; s < NSECT; s++) {
    struct src cand[64];
    size_t nc = sources (s, img + s * SECT, cand, 64);
    if (nc == 0) {
      if (bad_content++ < 5) FAIL ("%s: sector %" PRIu64 " holds data that no change wrote there", when, s);
      continue;
    }
    /* Durability: a change that completed before a flush that returned
     * (its end logged before that flush began) is not older than the
     * content. */
    for (size_t k = touch_start[s]; k < touch_start[s + 1]; k++) {
      const struct op *w = &ops[touch[k]];
      if (!w->forced && (!w->ok || w->d >= last_flush_begin)) continue;
      int fine = 0;
      for (size_t c = 0; c < nc && !fine; c++)
        fine = !(cand[c].base ? 1 : cand[c].d < w->b);
      if (!fine && lost++ < 5)
        FAIL ("%s: sector %" PRIu64 ": change %" PRIx64 " completed before a flush returned, but is gone",
              when, s, w->id);
    }
    /* INV-1: reported unless some source may have reached the image
     * before the reference point (for ID0: unless it is the data that
     * was there).  A log line is written before a call and after it
     * returns, so for a reference point taken while threads write, only
     * a change whose call began after the reference point's returned is
     * certainly later; a call that overlaps it may have done its work
     * before it or after it, and test-inflight covers that case
     * exactly, by holding a change inside the library. */
    for (size_t q = 0; q < nq; q++) {
      if (!valid[q]) continue;
      long after = q == 0 ? 0 : cks[q].d;
      int exempt = 0;
      for (size_t c = 0; c < nc && !exempt; c++)
        exempt = cand[c].base || (q > 0 && cand[c].b < after);
      if (!exempt && !covered (&ch[q], s * SECT) && fneg++ < 5)
        FAIL ("%s: FALSE NEGATIVE: sector %" PRIu64 " changed since %s (reference point %zu, returned at log line %ld) "
              "is not reported; its content is from a change logged at lines %ld..%ld%s",
              when, s, q == 0 ? id0 : cks[q].id, q, after, cand[0].b, cand[0].d,
              nc > 1 ? " (or others)" : "");
    }
  }
  for (size_t k = 0; k < nq; k++) vhdkit_changes_free (&ch[k]);
  free (ch); free (valid);
  vhdkit_disk_close (r);
}

/* Copy FROM to TO, keeping holes (the tracking file is mostly holes). */
static int
copy_file (const char *from, const char *to)
{
  static uint8_t buf[1 << 20];
  int in = open (from, O_RDONLY), out = open (to, O_WRONLY | O_CREAT | O_TRUNC, 0644), r = -1;
  struct stat st;
  if (in == -1 || out == -1 || fstat (in, &st) == -1 || ftruncate (out, st.st_size) == -1) goto done;
  for (off_t pos = 0; pos < st.st_size; ) {
    off_t data = lseek (in, pos, SEEK_DATA);
    if (data == -1) break;                      /* only a hole is left */
    off_t hole = lseek (in, data, SEEK_HOLE);
    if (hole == -1) goto done;
    while (data < hole) {
      size_t n = (size_t) (hole - data) < sizeof buf ? (size_t) (hole - data) : sizeof buf;
      ssize_t got = pread (in, buf, n, data);
      if (got <= 0 || pwrite (out, buf, (size_t) got, data) != got) goto done;
      data += got;
    }
    pos = hole;
  }
  r = 0;
 done:
  if (in != -1) close (in);
  if (out != -1 && close (out) == -1) r = -1;
  return r;
}

static void
restore (void)
{
  static const char *const f[] = { "d.vhdx", "d.vhdx.rct", "d.vhdx.mrt" };
  char a[512], b[512];
  for (int i = 0; i < 3; i++) {
    snprintf (a, sizeof a, "%s/base/%s", dir, f[i]);
    snprintf (b, sizeof b, "%s/%s", dir, f[i]);
    unlink (b);
    if (access (a, F_OK) == 0 && copy_file (a, b) == -1) FAIL ("copy %s", a);
  }
}

/* Run the workload under SPEC; its exit status (99: crashed). */
static int
run_workload (const char *self, const char *spec, const char *count_file, int sequential)
{
  char env_sim[256], env_cnt[600];
  char *argv[] = { (char *) self, (char *) "--run", dir, (char *) (count_file ? "measure" : "crash"),
                   (char *) (sequential ? "seq" : "threads"), NULL };
  char *envp[512];
  size_t n = 0;
  snprintf (env_sim, sizeof env_sim, "VHDKIT_SIM=%s", spec);
  envp[n++] = env_sim;
  if (count_file) {
    snprintf (env_cnt, sizeof env_cnt, "VHDKIT_SIM_COUNT_FILE=%s", count_file);
    envp[n++] = env_cnt;
  }
  /* The simulated power loss ends the workload with _exit while some
   * threads have finished and others run: ThreadSanitizer would call
   * that a thread leak.  It is the point of the test, so only that
   * report is turned off for the workload (races are still reported). */
  static char env_tsan[1100];
  const char *tsan = getenv ("TSAN_OPTIONS");
  snprintf (env_tsan, sizeof env_tsan, "TSAN_OPTIONS=%s%sreport_thread_leaks=0", tsan ? tsan : "", tsan ? ":" : "");
  envp[n++] = env_tsan;
  for (char **e = environ; *e && n < 510; e++)
    if (strncmp (*e, "VHDKIT_SIM", 10) != 0 && strncmp (*e, "TSAN_OPTIONS=", 13) != 0) envp[n++] = *e;
  envp[n] = NULL;
  pid_t pid;
  int st;
  if (posix_spawn (&pid, self, NULL, NULL, argv, envp) != 0 || waitpid (pid, &st, 0) == -1)
    return -1;
  return WIFEXITED (st) ? WEXITSTATUS (st) : 128 + WTERMSIG (st);
}

static uint64_t
count_of (const char *file, const char *key)
{
  char buf[256] = "";
  FILE *f = fopen (file, "r");
  if (!f) return 0;
  if (!fgets (buf, sizeof buf, f)) buf[0] = 0;
  fclose (f);
  const char *p = strstr (buf, key);
  return p ? strtoull (p + strlen (key), NULL, 10) : 0;
}

static void
more_work_then_check (const char *when, int fault_run)
{
  char path[512];
  uint8_t buf[8192];
  snprintf (path, sizeof path, "%s/d.vhdx", dir);
  struct vhdkit_disk *w = vhdkit_disk_open (path, VHDKIT_OPEN_RDWR);
  if (!w) { FAIL ("%s: open for writing after the crash: %s", when, vhdkit_get_error ()); return; }
  /* One more change, logged like the workload's (as change 0x9...). */
  uint64_t id = 0x900000001ull, off = 12 * MIB + 4096;
  for (uint64_t s = 0; s < sizeof buf; s += SECT) stamp (buf + s, id, off + s);
  if (vhdkit_disk_pwrite (w, buf, sizeof buf, off, 0) == -1 || vhdkit_disk_close (w) == -1) {
    /* A writer may refuse after a poisoned epoch only with a sentence. */
    const char *e = vhdkit_get_error ();
    if (!e || !*e) FAIL ("%s: a write after the crash failed without a reason", when);
    return;
  }
  ops = realloc (ops, (nops + 1) * sizeof *ops);
  ops[nops++] = (struct op) { .id = id, .off = off, .len = sizeof buf, .kind = 'w',
                              .b = LONG_MAX - 2, .d = LONG_MAX - 1, .ok = 1, .forced = 1 };
  qsort (ops, nops, sizeof *ops, by_id);
  index_sectors ();
  check_image (when, fault_run);
}

static int
setup (void)
{
  char path[512];
  struct vhdkit_create_params p = VHDKIT_CREATE_PARAMS_INIT;
  snprintf (path, sizeof path, "%s/base", dir);
  if (mkdir (path, 0755) == -1) return -1;
  snprintf (path, sizeof path, "%s/base/d.vhdx", dir);
  p.size = SIZE;
  p.block_size = MIB;
  for (uint64_t s = 0; s < DATA_END / SECT; s++) stamp (base + s * SECT, 0, s * SECT);
  struct vhdkit_disk *d;
  if (vhdkit_disk_create (path, &p) == -1 || !(d = vhdkit_disk_open (path, VHDKIT_OPEN_RDWR)) ||
      vhdkit_disk_pwrite (d, base, DATA_END, 0, 0) == -1 || vhdkit_rct_enable (d, 4096) == -1 ||
      vhdkit_rct_checkpoint (d, id0) == -1 || vhdkit_disk_close (d) == -1) {
    fprintf (stderr, "setup: %s\n", vhdkit_get_error ());
    return -1;
  }
  return 0;
}

int
main (int argc, char **argv)
{
  if (argc == 5 && strcmp (argv[1], "--run") == 0)
    return workload (argv[2], strcmp (argv[3], "measure") == 0, strcmp (argv[4], "seq") == 0);
  unsetenv ("VHDKIT_SIM");
  const char *self = "/proc/self/exe";
  char selfpath[4096], count[600];
  ssize_t sl = readlink (self, selfpath, sizeof selfpath - 1);
  if (sl <= 0) { perror ("readlink"); return 1; }
  selfpath[sl] = 0;
  if (!mkdtemp (dir) || setup () == -1) return 1;
  snprintf (count, sizeof count, "%s/count", dir);

  /* How many syncs and writes a whole run makes (it varies with timing). */
  restore ();
  int rc = run_workload (selfpath, "crash:n=100000000", count, 0);
  uint64_t syncs = count_of (count, "syncs="), writes = count_of (count, "writes=");
  if (rc != 0 || syncs < 10 || writes < 10) {
    fprintf (stderr, "the measuring run exited %d with %" PRIu64 " syncs, %" PRIu64 " writes\n", rc, syncs, writes);
    return 1;
  }
  printf ("a whole run: %" PRIu64 " syncs, %" PRIu64 " writes\n", syncs, writes);

  const char *runs_env = getenv ("VHDKIT_MTCRASH_RUNS");
  int runs = runs_env ? atoi (runs_env) : 16, crashed = 0, with_fault = 0;
  for (int i = 0; i < runs && !failed; i++) {
    char spec[128], when[160];
    int fault = i % 2;
    uint64_t n = 1 + (syncs * (uint64_t) (i / 2 * 2 + 1)) / (uint64_t) (runs + 1);
    if (fault)
      snprintf (spec, sizeof spec, "crash:n=%" PRIu64 ":seed=%d:fail=%s:at=%" PRIu64, n, i,
                i % 4 == 1 ? "write" : "sync", 1 + (mix ((uint64_t) i) % (i % 4 == 1 ? writes : syncs)) / 2);
    else
      snprintf (spec, sizeof spec, "crash:n=%" PRIu64 ":seed=%d", n, i);
    restore ();
    rc = run_workload (selfpath, spec, NULL, 0);
    if (rc != 99 && rc != 0) { FAIL ("%s: the workload exited %d", spec, rc); break; }
    crashed += rc == 99;
    if (parse_log () == -1) break;
    with_fault += faults_seen > 0;
    index_sectors ();
    snprintf (when, sizeof when, "after %s (%zu changes)", spec, nops);
    check_image (when, fault);
    snprintf (when, sizeof when, "after %s and more work", spec);
    more_work_then_check (when, fault);
    printf ("%s %s: %zu changes, %d failed calls, %zu reference points\n", failed ? "FAIL" : "ok",
            spec, nops, faults_seen, ncks ? ncks - 1 : 0);
  }
  /* The sweep: one thread, the same calls every time; fail each write
   * and each sync in turn (once), go on with the same handle, and lose
   * power one and four syncs after the fault, or at the very end. */
  int swept = 0;
  /* make test: a crash one sync after each fault; make soak (or
   * VHDKIT_MTCRASH_FULL=1): also four syncs after it, and none. */
  int full_sweep = getenv ("VHDKIT_MTCRASH_FULL") != NULL;
  if (!failed && !getenv ("VHDKIT_MTCRASH_NO_SWEEP")) {
    restore ();
    rc = run_workload (selfpath, "crash:n=100000000", count, 1);
    uint64_t s_syncs = count_of (count, "syncs="), s_writes = count_of (count, "writes=");
    if (rc != 0 || s_syncs < 5 || s_writes < 5)
      FAIL ("the sequential measuring run exited %d with %" PRIu64 " syncs", rc, s_syncs);
    printf ("the sequential script: %" PRIu64 " syncs, %" PRIu64 " writes\n", s_syncs, s_writes);
    for (int kind = 0; kind < 2 && !failed; kind++) {
      uint64_t total = kind == 0 ? s_writes : s_syncs;
      for (uint64_t m = 1; m <= total && !failed; m++) {
        uint64_t at_sync = kind == 0 ? m * s_syncs / s_writes : m;
        uint64_t crash_at[3] = { at_sync + 1, at_sync + 4, 100000000 };
        for (int c = 0; c < 3 && !failed; c++) {
          if (c > 0 && !full_sweep) continue;
          char spec[128], when[200];
          snprintf (spec, sizeof spec, "crash:n=%" PRIu64 ":seed=%" PRIu64 ":fail=%s:at=%" PRIu64,
                    crash_at[c], m, kind == 0 ? "write" : "sync", m);
          restore ();
          rc = run_workload (selfpath, spec, NULL, 1);
          if (rc != 99 && rc != 0) { FAIL ("%s: the sequential workload exited %d", spec, rc); break; }
          if (parse_log () == -1) break;
          index_sectors ();
          snprintf (when, sizeof when, "after %s, one thread (%zu changes)", spec, nops);
          check_image (when, 1);
          snprintf (when, sizeof when, "after %s, one thread, and more work", spec);
          more_work_then_check (when, 1);
          swept++;
        }
      }
    }
    printf ("%s the sweep: %d runs\n", failed ? "FAIL" : "ok", swept);
  }
  if (!failed && crashed < runs / 2)
    FAIL ("only %d of %d runs reached their crash: the runs prove little", crashed, runs);
  if (!failed && runs >= 4 && with_fault == 0)
    FAIL ("no injected fault reached the library in %d runs", runs);
  char cmd[600];
  snprintf (cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (!failed && system (cmd) != 0) fprintf (stderr, "could not remove %s\n", dir);
  printf ("%s (%d runs, %d crashed, %d with a failed call)\n", failed ? "FAIL" : "PASS", runs, crashed, with_fault);
  return failed;
}
