/* rawcmp — sector-wise comparisons of raw disk contents, for the crash
 * and change-tracking tests (they ran these in python, whose start-up
 * alone cost more than the check inside a sweep).
 *
 *   rawcmp oneof OLD NEW GOT    every 512-byte sector of GOT equals the
 *                               same sector of OLD or of NEW, and GOT is
 *                               as long as OLD or NEW
 *   rawcmp covers A B RANGES    every sector in which A and B differ lies
 *                               inside the "OFFSET LENGTH" lines of RANGES
 *   rawcmp diff A B BASE        prints "OFFSET LENGTH" (BASE added to the
 *                               offset) for each run of sectors in which
 *                               A and B differ
 *
 * A sector is the slice [i, i+512) of a file, shorter or empty past its
 * end; two sectors are equal when they have the same length and bytes,
 * so a sector that only one of two files has always differs.  Exit
 * status: 0 when the check holds (diff: always), 1 when it does not
 * (the first few offsets are named on stderr), 2 for a usage or I/O
 * error.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define SECTOR 512u
#define CHUNK (1u << 20)        /* whole chunks are compared first */

struct file { const char *name; const unsigned char *p; uint64_t len; };

static void
die (const char *fmt, const char *arg)
{
  fprintf (stderr, "rawcmp: ");
  fprintf (stderr, fmt, arg);
  fprintf (stderr, "\n");
  exit (2);
}

static void
map_file (struct file *f, const char *name)
{
  struct stat st;
  int fd = open (name, O_RDONLY | O_CLOEXEC);

  f->name = name;
  if (fd == -1 || fstat (fd, &st) == -1)
    die ("%s: cannot open", name);
  f->len = (uint64_t) st.st_size;
  f->p = NULL;
  if (f->len > 0) {
    void *m = mmap (NULL, f->len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED)
      die ("%s: cannot map", name);
    f->p = m;
  }
  close (fd);
}

/* The length of the slice [off, off+n) of F. */
static uint64_t
slice_len (const struct file *f, uint64_t off, uint64_t n)
{
  if (off >= f->len) return 0;
  return f->len - off < n ? f->len - off : n;
}

static bool
same_slice (const struct file *a, const struct file *b, uint64_t off, uint64_t n)
{
  uint64_t la = slice_len (a, off, n), lb = slice_len (b, off, n);
  return la == lb && (la == 0 || memcmp (a->p + off, b->p + off, la) == 0);
}

static int
oneof (const struct file *old, const struct file *new, const struct file *got)
{
  unsigned bad = 0;

  if (got->len != old->len && got->len != new->len) {
    fprintf (stderr, "size %" PRIu64 " is neither old %" PRIu64 " nor new %" PRIu64 "\n",
             got->len, old->len, new->len);
    return 1;
  }
  for (uint64_t c = 0; c < got->len; c += CHUNK) {
    if (same_slice (got, old, c, CHUNK) || same_slice (got, new, c, CHUNK))
      continue;
    for (uint64_t i = c; i < c + CHUNK && i < got->len; i += SECTOR)
      if (!same_slice (got, old, i, SECTOR) && !same_slice (got, new, i, SECTOR)) {
        if (++bad <= 5)
          fprintf (stderr, "sector at %" PRIu64 " is neither old nor new\n", i);
      }
  }
  return bad ? 1 : 0;
}

struct range { uint64_t start, end; };

static int
cmp_range (const void *x, const void *y)
{
  const struct range *a = x, *b = y;
  return a->start < b->start ? -1 : a->start > b->start;
}

static int
covers (const struct file *a, const struct file *b, const char *rangesf)
{
  FILE *fp = fopen (rangesf, "r");
  struct range *rs = NULL;
  size_t n = 0, cap = 0, k = 0;
  uint64_t off, len, end = a->len > b->len ? a->len : b->len;
  unsigned miss = 0;
  int r;

  if (fp == NULL)
    die ("%s: cannot open", rangesf);
  while ((r = fscanf (fp, "%" SCNu64 " %" SCNu64, &off, &len)) == 2) {
    if (n == cap) {
      cap = cap ? 2 * cap : 64;
      if ((rs = realloc (rs, cap * sizeof *rs)) == NULL)
        die ("%s: out of memory", rangesf);
    }
    rs[n].start = off;
    rs[n++].end = off + len;
  }
  if (r != EOF)
    die ("%s: a line is not \"OFFSET LENGTH\"", rangesf);
  fclose (fp);
  qsort (rs, n, sizeof *rs, cmp_range);
  /* The union: overlapping and touching ranges merged, sorted. */
  for (size_t i = 0; i < n; i++) {
    if (rs[i].end <= rs[i].start) continue;
    if (k > 0 && rs[i].start <= rs[k - 1].end) {
      if (rs[i].end > rs[k - 1].end) rs[k - 1].end = rs[i].end;
    }
    else
      rs[k++] = rs[i];
  }
  n = k;

  for (uint64_t c = 0; c < end; c += CHUNK) {
    if (same_slice (a, b, c, CHUNK))
      continue;
    for (uint64_t i = c; i < c + CHUNK && i < end; i += SECTOR) {
      if (same_slice (a, b, i, SECTOR))
        continue;
      size_t lo = 0, hi = n;            /* the last range starting <= i */
      while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (rs[mid].start <= i) lo = mid + 1; else hi = mid;
      }
      if ((lo == 0 || rs[lo - 1].end < i + SECTOR) && ++miss <= 3)
        fprintf (stderr, "changed sector at %" PRIu64 " is not reported\n", i);
    }
  }
  free (rs);
  return miss ? 1 : 0;
}

static int
diff (const struct file *a, const struct file *b, const char *basestr)
{
  char *e;
  errno = 0;
  uint64_t base = strtoull (basestr, &e, 10);
  uint64_t end = a->len > b->len ? a->len : b->len, i, run = 0;
  bool in = false;

  if (errno || *e || e == basestr)
    die ("BASE must be a number: %s", basestr);
  for (i = 0; i < end; i += SECTOR) {
    if (!in && i % CHUNK == 0 && same_slice (a, b, i, CHUNK)) {
      i += CHUNK - SECTOR;
      continue;
    }
    bool d = !same_slice (a, b, i, SECTOR);
    if (d && !in) { run = i; in = true; }
    if (!d && in) { printf ("%" PRIu64 " %" PRIu64 "\n", base + run, i - run); in = false; }
  }
  if (in)
    printf ("%" PRIu64 " %" PRIu64 "\n", base + run, end - run);
  return fflush (stdout) == 0 ? 0 : 2;
}

int
main (int argc, char **argv)
{
  struct file f[3];

  if (argc == 5 && strcmp (argv[1], "oneof") == 0) {
    for (int i = 0; i < 3; i++) map_file (&f[i], argv[2 + i]);
    return oneof (&f[0], &f[1], &f[2]);
  }
  if (argc == 5 && strcmp (argv[1], "covers") == 0) {
    map_file (&f[0], argv[2]); map_file (&f[1], argv[3]);
    return covers (&f[0], &f[1], argv[4]);
  }
  if (argc == 5 && strcmp (argv[1], "diff") == 0) {
    map_file (&f[0], argv[2]); map_file (&f[1], argv[3]);
    return diff (&f[0], &f[1], argv[4]);
  }
  fprintf (stderr, "usage: rawcmp oneof OLD NEW GOT | covers A B RANGES | diff A B BASE\n");
  return 2;
}
