/* bench/threadio, for bench/threads.sh: random 4 KiB reads or writes by
 * T threads on ONE handle (vhdkit) or one descriptor (posix), for a
 * fixed number of operations in all.
 *
 *   threadio vhdkit|posix PATH read|write THREADS OPS
 *
 * Prints "iops=N". */
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "vhdkit.h"

static struct vhdkit_disk *d;
static int fd, writing;
static uint64_t size, per;

static void *
run (void *arg)
{
  uint64_t r = (uintptr_t) arg * 0x9E3779B97F4A7C15u + 1;
  char *buf = aligned_alloc (4096, 4096);
  memset (buf, 0x5a, 4096);
  for (uint64_t i = 0; i < per; i++) {
    r ^= r << 13; r ^= r >> 7; r ^= r << 17;
    uint64_t off = r % (size / 4096) * 4096;
    int e = d ? (writing ? vhdkit_disk_pwrite (d, buf, 4096, off, 0) : vhdkit_disk_pread (d, buf, 4096, off, 0))
              : (writing ? (pwrite (fd, buf, 4096, (off_t) off) == 4096 ? 0 : -1)
                         : (pread (fd, buf, 4096, (off_t) off) == 4096 ? 0 : -1));
    if (e) { fprintf (stderr, "I/O failed: %s\n", d ? vhdkit_get_error () : "pread/pwrite"); exit (1); }
  }
  free (buf);
  return NULL;
}

int
main (int argc, char **argv)
{
  if (argc != 6) { fprintf (stderr, "usage: threadio vhdkit|posix PATH read|write THREADS OPS\n"); return 2; }
  writing = strcmp (argv[3], "write") == 0;
  int nt = atoi (argv[4]);
  per = strtoull (argv[5], NULL, 10) / (uint64_t) nt;
  if (strcmp (argv[1], "vhdkit") == 0) {
    if (!(d = vhdkit_disk_open (argv[2], writing ? VHDKIT_OPEN_RDWR : VHDKIT_OPEN_RDONLY))) {
      fprintf (stderr, "%s\n", vhdkit_get_error ());
      return 1;
    }
    vhdkit_disk_get_size (d, &size, NULL);
  }
  else {
    struct stat st;
    if ((fd = open (argv[2], writing ? O_RDWR : O_RDONLY)) == -1 || fstat (fd, &st) == -1) { perror (argv[2]); return 1; }
    size = (uint64_t) st.st_size;
  }
  pthread_t th[64];
  struct timespec a, b;
  clock_gettime (CLOCK_MONOTONIC, &a);
  for (int i = 0; i < nt; i++) pthread_create (&th[i], NULL, run, (void *) (uintptr_t) (i + 1));
  for (int i = 0; i < nt; i++) pthread_join (th[i], NULL);
  clock_gettime (CLOCK_MONOTONIC, &b);
  double s = (double) (b.tv_sec - a.tv_sec) + (double) (b.tv_nsec - a.tv_nsec) / 1e9;
  printf ("iops=%.0f\n", (double) (per * (uint64_t) nt) / s);
  if (d && vhdkit_disk_close (d) == -1) { fprintf (stderr, "%s\n", vhdkit_get_error ()); return 1; }
  return 0;
}
