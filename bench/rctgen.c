/* bench/rctgen: workloads for the change-tracking benchmark (bench/rct.sh),
 * written through libvhdkit in one process.
 *
 *   rctgen offsets SIZE N SEED
 *       print N distinct random 4 KiB-aligned offsets below SIZE (bytes),
 *       one per line, in the order they are drawn (fixed by SEED)
 *   rctgen write IMG FILE [FLUSH_EVERY]
 *       write 4 KiB of data at every offset listed in FILE (one per line),
 *       flushing after every FLUSH_EVERY writes if given (as a guest
 *       would), then close (which flushes); prints "writes=N"
 *   rctgen rounds IMG ROUNDS WRITES SEED [LOG]
 *       ROUNDS times: WRITES random 4 KiB writes, then a reference point
 *       (vhdkit_rct_checkpoint); prints every RCT ID, one per line, and
 *       logs "ROUND OFFSET" for every write to LOG if given (rounds count
 *       from 1; the ID printed on line R seals round R)
 *
 * Every failure prints the library's sentence and exits 1. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vhdkit.h"

static uint64_t rng;
static uint64_t next (void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return rng; }
static void seed (const char *s) { rng = strtoull (s, NULL, 0) * 2654435761u + 1; }

static char buf[4096] __attribute__((aligned (4096)));

static int
die (const char *what)
{
  fprintf (stderr, "rctgen: %s: %s\n", what, vhdkit_get_error ());
  return 1;
}

/* Open addressing set of block numbers (never contains UINT64_MAX). */
struct set { uint64_t *v; size_t cap; };

static int
set_add (struct set *s, uint64_t x)
{
  size_t i = (size_t) ((x * UINT64_C (0x9E3779B97F4A7C15)) >> 20) & (s->cap - 1);
  while (s->v[i] != UINT64_MAX) {
    if (s->v[i] == x) return 0;
    i = (i + 1) & (s->cap - 1);
  }
  s->v[i] = x;
  return 1;
}

static int
offsets (uint64_t size, long n, const char *sd)
{
  uint64_t blocks = size / 4096;
  if ((uint64_t) n > blocks / 2) { fprintf (stderr, "rctgen: too many offsets for the size\n"); return 2; }
  struct set s = { NULL, 1 };
  while (s.cap < (size_t) n * 2) s.cap <<= 1;
  s.v = malloc (s.cap * sizeof *s.v);
  if (!s.v) { perror ("rctgen"); return 1; }
  memset (s.v, 0xff, s.cap * sizeof *s.v);
  seed (sd);
  for (long i = 0; i < n; ) {
    uint64_t b = next () % blocks;
    if (set_add (&s, b)) { printf ("%" PRIu64 "\n", b * 4096); i++; }
  }
  free (s.v);
  return fflush (stdout) == 0 ? 0 : 1;
}

static int
write_list (const char *img, const char *list, long flush_every)
{
  FILE *f = fopen (list, "r");
  if (!f) { perror (list); return 1; }
  struct vhdkit_disk *d = vhdkit_disk_open (img, VHDKIT_OPEN_RDWR);
  if (!d) return die (img);
  uint64_t off;
  long n = 0;
  while (fscanf (f, "%" SCNu64, &off) == 1) {
    memset (buf, (int) (n % 251) + 1, sizeof buf);
    if (vhdkit_disk_pwrite (d, buf, sizeof buf, off, 0) == -1) return die ("write");
    n++;
    if (flush_every > 0 && n % flush_every == 0 && vhdkit_disk_flush (d) == -1) return die ("flush");
  }
  fclose (f);
  if (vhdkit_disk_close (d) == -1) return die ("close");
  printf ("writes=%ld\n", n);
  return 0;
}

static int
rounds (const char *img, long nrounds, long writes, const char *sd,
        const char *log)
{
  FILE *lf = NULL;
  if (log && !(lf = fopen (log, "w"))) { perror (log); return 1; }
  struct vhdkit_disk *d = vhdkit_disk_open (img, VHDKIT_OPEN_RDWR);
  if (!d) return die (img);
  struct vhdkit_disk_info info = VHDKIT_DISK_INFO_INIT;
  if (vhdkit_disk_get_info (d, &info) == -1) return die ("info");
  uint64_t blocks = info.virtual_size / 4096;
  char id[VHDKIT_RCT_ID_MAX];
  seed (sd);
  for (long r = 0; r < nrounds; r++) {
    for (long w = 0; w < writes; w++) {
      uint64_t off = next () % blocks * 4096;
      memset (buf, (int) ((r + w) % 251) + 1, sizeof buf);
      if (vhdkit_disk_pwrite (d, buf, sizeof buf, off, 0) == -1) return die ("write");
      if (lf) fprintf (lf, "%ld %" PRIu64 "\n", r + 1, off);
    }
    if (vhdkit_rct_checkpoint (d, id) == -1) return die ("checkpoint");
    printf ("%s\n", id);
  }
  if (vhdkit_disk_close (d) == -1) return die ("close");
  if (lf && fclose (lf) != 0) { perror (log); return 1; }
  return fflush (stdout) == 0 ? 0 : 1;
}

int
main (int argc, char **argv)
{
  if (argc == 5 && strcmp (argv[1], "offsets") == 0)
    return offsets (strtoull (argv[2], NULL, 0), atol (argv[3]), argv[4]);
  if ((argc == 4 || argc == 5) && strcmp (argv[1], "write") == 0)
    return write_list (argv[2], argv[3], argc == 5 ? atol (argv[4]) : 0);
  if ((argc == 6 || argc == 7) && strcmp (argv[1], "rounds") == 0)
    return rounds (argv[2], atol (argv[3]), atol (argv[4]), argv[5], argc == 7 ? argv[6] : NULL);
  fprintf (stderr, "usage: rctgen offsets SIZE N SEED | write IMG FILE [FLUSH_EVERY] | rounds IMG ROUNDS WRITES SEED [LOG]\n");
  return 2;
}
