/* bench/children, for bench/children.sh and
 * tests/unit/test-shared-parent-fds.sh: the memory and file descriptors
 * that N differencing children of one base cost when they are open at
 * once in one process.  The library opens a parent file once per
 * process and shares it between its children (lib/chain.c, L-6), so
 * the target is: the base open once, whatever N.
 *
 *   children [-n N] [-s SIZE] [-b BLOCK] [-k DATA] [-t] DIR
 *
 * Makes, in DIR (which must not hold these files yet), base.vhdx: a
 * dynamic VHDX of SIZE (default 64G) with blocks of BLOCK (default 1M,
 * so that its block table is large: 512 KiB for 64 GiB) and 8 KiB of
 * data at DATA places spread over it (default 4096); then
 * child-001.vhdx .. child-N.vhdx (default 100), differencing children
 * of it, each with 4 KiB of its own written over one of the base's
 * places, with change tracking enabled if -t.  Then, each in a fresh
 * process (this program run again, so that nothing of the making
 * counts), it opens 1 child, and then all N at once, through the public
 * API (read-write), reads every data place and one hole per place from
 * each open child, and closes them.  Printed, as growth from before the
 * first open in that process:
 *
 *   children=K fds=F base_opens=B rss_open_kib=R0 rss_kib=R hwm_kib=H
 *   per_child fds=F rss_open_kib=R0 rss_kib=R
 *
 * fds: descriptors open (/proc/self/fd) with K children open;
 * base_opens: how many of them are the base file; rss_open_kib: VmRSS
 * after the opens; rss_kib and hwm_kib: VmRSS and VmHWM after the
 * reads; per_child: (figure for N - figure for 1) / (N - 1).
 *
 * (-m K, given by the program to itself, measures K children of files
 * made before.)  Exits 1, saying why, if a read returns other data than was written,
 * if the base is open other than exactly once while children are open,
 * or if closing them all does not give every descriptor back. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include "vhdkit.h"

#define PLACE 8192u             /* bytes of base data at each place */
#define OWN   4096u             /* a child's own bytes, at place + OWN */

static unsigned nchildren = 100, ndata = 4096;
static uint64_t size = UINT64_C(64) << 30, block = UINT64_C(1) << 20;
static bool tracking;
static const char *dir;

static void
die (const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  fprintf (stderr, "children: ");
  vfprintf (stderr, fmt, ap);
  fputc ('\n', stderr);
  va_end (ap);
  exit (1);
}

static void
die_vhdkit (const char *what)
{
  die ("%s: %s", what, vhdkit_get_error ());
}

static uint64_t
parse_size (const char *s)
{
  char *end;
  errno = 0;
  uint64_t v = strtoull (s, &end, 10);
  unsigned shift = 0;
  switch (*end) {
  case 'K': shift = 10; end++; break;
  case 'M': shift = 20; end++; break;
  case 'G': shift = 30; end++; break;
  case 'T': shift = 40; end++; break;
  }
  if (errno || end == s || *end || v == 0 || v > (UINT64_MAX >> shift)) die ("bad size '%s'", s);
  return v << shift;
}

static unsigned
parse_count (const char *s)
{
  char *end;
  errno = 0;
  unsigned long v = strtoul (s, &end, 10);
  if (errno || end == s || *end || v == 0 || v > 100000) die ("bad count '%s'", s);
  return (unsigned) v;
}

static char *
path_of (unsigned child)          /* 0 = the base */
{
  char *p;
  int r = child ? asprintf (&p, "%s/child-%03u.vhdx", dir, child) : asprintf (&p, "%s/base.vhdx", dir);
  if (r == -1) die ("out of memory");
  return p;
}

/* The places, evenly spread and sector-aligned; a hole halfway between
 * two places (never written). */
static uint64_t
stride (void)
{
  return size / ndata / 4096 * 4096;
}

static uint64_t place (unsigned j) { return (uint64_t) j * stride (); }
static uint64_t hole (unsigned j) { return place (j) + stride () / 2 / 4096 * 4096; }

/* The content of LEN bytes at OFF as written by WHO (0 = the base,
 * else a child): 64-bit words that name both. */
static void
pattern (uint8_t *buf, size_t len, uint64_t off, unsigned who)
{
  for (size_t i = 0; i < len; i += 8) {
    uint64_t w = (off + i) * 0x9E3779B97F4A7C15u ^ ((uint64_t) who << 48 | 0x5a5a);
    memcpy (buf + i, &w, 8);
  }
}

/* ---- making the files ---- */

static void
make_files (void)
{
  struct vhdkit_create_params p = VHDKIT_CREATE_PARAMS_INIT;
  char *base = path_of (0);
  p.size = size;
  p.block_size = (uint32_t) block;
  if (vhdkit_disk_create (base, &p) == -1) die_vhdkit ("create the base");
  struct vhdkit_disk *d = vhdkit_disk_open (base, VHDKIT_OPEN_RDWR);
  if (!d) die_vhdkit ("open the base");
  uint8_t buf[PLACE];
  for (unsigned j = 0; j < ndata; j++) {
    pattern (buf, PLACE, place (j), 0);
    if (vhdkit_disk_pwrite (d, buf, PLACE, place (j), 0) == -1) die_vhdkit ("write the base");
  }
  if (vhdkit_disk_close (d) == -1) die_vhdkit ("close the base");
  for (unsigned c = 1; c <= nchildren; c++) {
    char *path = path_of (c);
    struct vhdkit_create_params cp = VHDKIT_CREATE_PARAMS_INIT;
    cp.parent = base;
    if (vhdkit_disk_create (path, &cp) == -1) die_vhdkit ("create a child");
    if (!(d = vhdkit_disk_open (path, VHDKIT_OPEN_RDWR))) die_vhdkit ("open a child");
    if (tracking && vhdkit_rct_enable (d, 0) == -1) die_vhdkit ("enable tracking");
    uint64_t off = place (c % ndata) + OWN;
    pattern (buf, OWN, off, c);
    if (vhdkit_disk_pwrite (d, buf, OWN, off, 0) == -1) die_vhdkit ("write a child");
    if (vhdkit_disk_close (d) == -1) die_vhdkit ("close a child");
    free (path);
  }
  free (base);
}

/* ---- measuring (in a fresh process) ---- */

struct sample {
  long rss_kib, hwm_kib;
  unsigned fds, base_opens;
};

static long
status_kib (const char *status, const char *key)
{
  const char *p = strstr (status, key);
  if (!p) die ("/proc/self/status has no %s", key);
  return strtol (p + strlen (key), NULL, 10);
}

static void
sample (struct sample *s, const char *base_real)
{
  char status[8192];
  FILE *f = fopen ("/proc/self/status", "r");
  if (!f) die ("/proc/self/status: %s", strerror (errno));
  size_t n = fread (status, 1, sizeof status - 1, f);
  fclose (f);
  status[n] = '\0';
  s->rss_kib = status_kib (status, "\nVmRSS:");
  s->hwm_kib = status_kib (status, "\nVmHWM:");
  DIR *fd_dir = opendir ("/proc/self/fd");
  if (!fd_dir) die ("/proc/self/fd: %s", strerror (errno));
  s->fds = s->base_opens = 0;
  struct dirent *e;
  while ((e = readdir (fd_dir))) {
    if (e->d_name[0] == '.' || atoi (e->d_name) == dirfd (fd_dir)) continue;
    char link[PATH_MAX + 16], target[PATH_MAX];
    snprintf (link, sizeof link, "/proc/self/fd/%s", e->d_name);
    ssize_t len = readlink (link, target, sizeof target - 1);
    if (len < 0) continue;          /* closed meanwhile */
    target[len] = '\0';
    s->fds++;
    if (strcmp (target, base_real) == 0) s->base_opens++;
  }
  closedir (fd_dir);
}

static void
check_read (struct vhdkit_disk *d, unsigned c, unsigned j)
{
  uint8_t got[PLACE], want[PLACE];
  if (vhdkit_disk_pread (d, got, PLACE, place (j), 0) == -1) die_vhdkit ("read a child");
  pattern (want, PLACE, place (j), 0);
  if (c % ndata == j) pattern (want + OWN, OWN, place (j) + OWN, c);
  if (memcmp (got, want, PLACE))
    die ("child %u reads other data at %" PRIu64 " than was written there", c, place (j));
  if (vhdkit_disk_pread (d, got, 4096, hole (j), 0) == -1) die_vhdkit ("read a child");
  memset (want, 0, 4096);
  if (memcmp (got, want, 4096)) die ("child %u reads data at %" PRIu64 ", where nothing was written", c, hole (j));
}

static void
measure (unsigned k)
{
  char *base = path_of (0);
  char *base_real = realpath (base, NULL);
  if (!base_real) die ("%s: %s", base, strerror (errno));
  struct vhdkit_disk **d = calloc (k, sizeof *d);
  char **paths = calloc (k, sizeof *paths);
  if (!d || !paths) die ("out of memory");
  for (unsigned c = 1; c <= k; c++) paths[c - 1] = path_of (c);
  struct sample s0, s1, s2, s3;
  sample (&s0, base_real);
  for (unsigned c = 1; c <= k; c++)
    if (!(d[c - 1] = vhdkit_disk_open (paths[c - 1], VHDKIT_OPEN_RDWR))) die_vhdkit ("open a child");
  sample (&s1, base_real);
  for (unsigned c = 1; c <= k; c++)
    for (unsigned j = 0; j < ndata; j++) check_read (d[c - 1], c, j);
  sample (&s2, base_real);
  if (s1.base_opens != 1 || s2.base_opens != 1)
    die ("with %u children open the base is open %u times (after the reads: %u), not once",
         k, s1.base_opens, s2.base_opens);
  for (unsigned c = 0; c < k; c++)
    if (vhdkit_disk_close (d[c]) == -1) die_vhdkit ("close a child");
  sample (&s3, base_real);
  if (s3.base_opens != 0 || s3.fds != s0.fds)
    die ("after closing %u children, %u descriptors are open (%u before), %u of the base",
         k, s3.fds, s0.fds, s3.base_opens);
  printf ("children=%u fds=%d base_opens=%u rss_open_kib=%ld rss_kib=%ld hwm_kib=%ld\n",
          k, (int) s1.fds - (int) s0.fds, s1.base_opens, s1.rss_kib - s0.rss_kib,
          s2.rss_kib - s0.rss_kib, s2.hwm_kib - s0.hwm_kib);
  for (unsigned c = 0; c < k; c++) free (paths[c]);
  free (paths);
  free (d);
  free (base_real);
  free (base);
}

/* Run this program again to measure K children; its line of figures. */
static void
measure_in_child (unsigned k, char *line, size_t cap, char **argv)
{
  int pfd[2];
  if (pipe (pfd) == -1) die ("pipe: %s", strerror (errno));
  pid_t pid = fork ();
  if (pid == -1) die ("fork: %s", strerror (errno));
  if (pid == 0) {
    char ks[16];
    snprintf (ks, sizeof ks, "%u", k);
    if (dup2 (pfd[1], STDOUT_FILENO) == -1) _exit (127);
    close (pfd[0]);
    close (pfd[1]);
    /* argv as given, with "-m K" put first (options before DIR). */
    int argc = 0;
    while (argv[argc]) argc++;
    char **a = calloc ((size_t) argc + 3, sizeof *a);
    if (!a) _exit (127);
    a[0] = argv[0];
    a[1] = "-m";
    a[2] = ks;
    for (int i = 1; i < argc; i++) a[i + 2] = argv[i];
    execv ("/proc/self/exe", a);
    fprintf (stderr, "children: exec /proc/self/exe: %s\n", strerror (errno));
    _exit (127);
  }
  close (pfd[1]);
  FILE *f = fdopen (pfd[0], "r");
  if (!f) die ("fdopen: %s", strerror (errno));
  if (!fgets (line, (int) cap, f)) line[0] = '\0';
  fclose (f);
  int st;
  if (waitpid (pid, &st, 0) == -1) die ("waitpid: %s", strerror (errno));
  if (!WIFEXITED (st) || WEXITSTATUS (st) != 0) die ("the measurement of %u children failed", k);
  line[strcspn (line, "\n")] = '\0';
}

static void
field (const char *line, const char *key, double *v)
{
  char k[32];
  snprintf (k, sizeof k, " %s=", key);
  const char *p = strstr (line, k);
  if (!p) die ("no %s in '%s'", key, line);
  *v = strtod (p + strlen (k), NULL);
}

int
main (int argc, char **argv)
{
  unsigned measure_k = 0;
  int opt;
  while ((opt = getopt (argc, argv, "n:s:b:k:tm:")) != -1) {
    switch (opt) {
    case 'n': nchildren = parse_count (optarg); break;
    case 's': size = parse_size (optarg); break;
    case 'b': block = parse_size (optarg); break;
    case 'k': ndata = parse_count (optarg); break;
    case 't': tracking = true; break;
    case 'm': measure_k = parse_count (optarg); break;
    default:
      fprintf (stderr, "usage: children [-n N] [-s SIZE] [-b BLOCK] [-k DATA] [-t] DIR\n");
      return 2;
    }
  }
  if (optind + 1 != argc) {
    fprintf (stderr, "usage: children [-n N] [-s SIZE] [-b BLOCK] [-k DATA] [-t] DIR\n");
    return 2;
  }
  dir = argv[optind];
  if (stride () < 2 * PLACE) die ("%u places do not fit in %" PRIu64 " bytes", ndata, size);
  if (block > UINT32_MAX) die ("block size too large");
  if (measure_k) {
    measure (measure_k);
    return 0;
  }
  make_files ();
  printf ("# base: %" PRIu64 " MiB dynamic VHDX, %" PRIu64 " KiB blocks, %u places of %u bytes of data;"
          " %u children, %u bytes of their own each%s\n",
          size >> 20, block >> 10, ndata, PLACE, nchildren, OWN, tracking ? ", tracking enabled" : "");
  char one[256], all[256];
  measure_in_child (1, one, sizeof one, argv);
  printf ("%s\n", one);
  if (nchildren > 1) {
    measure_in_child (nchildren, all, sizeof all, argv);
    printf ("%s\n", all);
    double f1, fn, o1, on, r1, rn;
    field (one, "fds", &f1);
    field (all, "fds", &fn);
    field (one, "rss_open_kib", &o1);
    field (all, "rss_open_kib", &on);
    field (one, "rss_kib", &r1);
    field (all, "rss_kib", &rn);
    unsigned m = nchildren - 1;
    printf ("per_child fds=%.2f rss_open_kib=%.1f rss_kib=%.1f\n", (fn - f1) / m, (on - o1) / m, (rn - r1) / m);
  }
  return 0;
}
