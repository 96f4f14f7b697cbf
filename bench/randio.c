/* bench/randio, for bench/run.sh and bench/rct.sh.  Random 4 KiB reads and writes through libvhdkit, or
 * straight to a file with pread/pwrite (the physical limit), over the
 * same offsets from the same seed.
 *
 *   randio vhdkit PATH OPS SEED [FLUSH_EVERY]
 *       through vhdkit_disk_pread/pwrite
 *   randio posix PATH OPS SEED [FLUSH_EVERY]
 *       pread/pwrite on the file itself
 *
 * With FLUSH_EVERY > 0, the write loop also flushes (vhdkit_disk_flush,
 * or fdatasync) after every FLUSH_EVERY writes, inside the timing.
 *
 * Prints "read_iops=N write_iops=N" (then flushes once, outside the
 * timing, so both sides pay for durability the same way). */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vhdkit.h"

static uint64_t rng;
static uint64_t next (void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return rng; }
static double now (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

int
main (int argc, char **argv)
{
  if (argc != 5 && argc != 6) { fprintf (stderr, "usage: randio vhdkit|posix PATH OPS SEED [FLUSH_EVERY]\n"); return 2; }
  long flush_every = argc == 6 ? atol (argv[5]) : 0;
  int lib = strcmp (argv[1], "vhdkit") == 0;
  long ops = atol (argv[3]);
  struct vhdkit_disk *d = NULL;
  int fd = -1;
  uint64_t size;
  if (lib) {
    d = vhdkit_disk_open (argv[2], VHDKIT_OPEN_RDWR);
    if (!d) { fprintf (stderr, "randio: %s\n", vhdkit_get_error ()); return 1; }
    struct vhdkit_disk_info i = VHDKIT_DISK_INFO_INIT;
    vhdkit_disk_get_info (d, &i);
    size = i.virtual_size;
  }
  else {
    fd = open (argv[2], O_RDWR);
    if (fd == -1) { perror (argv[2]); return 1; }
    size = (uint64_t) lseek (fd, 0, SEEK_END);
  }
  static char buf[4096] __attribute__((aligned (4096)));
  uint64_t blocks = size / 4096;
  double t[2];
  for (int w = 0; w < 2; w++) {
    rng = (uint64_t) atol (argv[4]) * 2654435761u + 1;
    memset (buf, w ? 0x5a : 0, sizeof buf);
    double t0 = now ();
    for (long i = 0; i < ops; i++) {
      uint64_t off = next () % blocks * 4096;
      int r;
      if (lib)
        r = w ? vhdkit_disk_pwrite (d, buf, 4096, off, 0) : vhdkit_disk_pread (d, buf, 4096, off, 0);
      else
        r = (w ? pwrite (fd, buf, 4096, (off_t) off) : pread (fd, buf, 4096, (off_t) off)) == 4096 ? 0 : -1;
      if (r == 0 && w && flush_every > 0 && (i + 1) % flush_every == 0)
        r = lib ? vhdkit_disk_flush (d) : fdatasync (fd);
      if (r) { fprintf (stderr, "randio: I/O failed at %llu: %s\n", (unsigned long long) off, lib ? vhdkit_get_error () : "short"); return 1; }
    }
    t[w] = now () - t0;
  }
  printf ("read_iops=%.0f write_iops=%.0f\n", ops / t[0], ops / t[1]);
  if (lib) return vhdkit_disk_close (d) == 0 ? 0 : 1;
  return fsync (fd) == 0 && close (fd) == 0 ? 0 : 1;
}
