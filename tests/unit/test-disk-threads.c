/* Several threads sharing one disk handle (the service's situation):
 * each thread writes and reads back its own stripes of a tracked
 * dynamic VHDX while the others do the same, one thread takes reference
 * points meanwhile; afterwards the contents are exact and the changes
 * since the first reference point cover every stripe written. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vhdkit.h"

#define THREADS 4
#define ROUNDS 200
#define STRIPE (64 * 1024)
#define SIZE (64u << 20)

static struct vhdkit_disk *d;
static int failed;

static void *
worker (void *arg)
{
  long t = (long) arg;
  uint8_t *buf = malloc (STRIPE), *back = malloc (STRIPE);
  unsigned seed = (unsigned) t * 7919u + 1;
  for (int i = 0; i < ROUNDS && !failed; i++) {
    /* Stripes of thread T: those whose index % THREADS == T. */
    uint64_t idx = (uint64_t) (rand_r (&seed) % (SIZE / STRIPE / THREADS)) * THREADS + (uint64_t) t;
    memset (buf, (int) (t * 16 + i % 16 + 1), STRIPE);
    if (vhdkit_disk_pwrite (d, buf, STRIPE, idx * STRIPE, 0) == -1 ||
        vhdkit_disk_pread (d, back, STRIPE, idx * STRIPE, 0) == -1 ||
        memcmp (buf, back, STRIPE) != 0) {
      fprintf (stderr, "thread %ld round %d: %s\n", t, i, vhdkit_get_error ());
      failed = 1;
    }
  }
  free (buf);
  free (back);
  return NULL;
}

static int
check_changes (const char *id)
{
  /* Every stripe that is non-zero now must be inside a reported range. */
  struct vhdkit_changes c = VHDKIT_CHANGES_INIT;
  if (vhdkit_disk_get_changes (d, id, NULL, 0, SIZE, 0, &c) == -1) {
    fprintf (stderr, "get_changes: %s\n", vhdkit_get_error ());
    return -1;
  }
  uint8_t *buf = malloc (STRIPE);
  int bad = 0;
  for (uint64_t s = 0; s < SIZE / STRIPE; s++) {
    if (vhdkit_disk_pread (d, buf, STRIPE, s * STRIPE, 0) == -1) { bad = 1; break; }
    bool written = buf[0] != 0;
    bool reported = false;
    for (size_t k = 0; k < c.count; k++)
      if (c.offsets[k] <= s * STRIPE && s * STRIPE + STRIPE <= c.offsets[k] + c.lengths[k])
        reported = true;
    if (written && !reported) {
      fprintf (stderr, "stripe %llu written but not reported\n", (unsigned long long) s);
      bad = 1;
    }
  }
  free (buf);
  vhdkit_changes_free (&c);
  return bad ? -1 : 0;
}

int
main (void)
{
  char dir[] = "/tmp/vhdkit-threads-XXXXXX", path[64], id[VHDKIT_RCT_ID_MAX], id2[VHDKIT_RCT_ID_MAX];
  if (!mkdtemp (dir)) return 1;
  snprintf (path, sizeof path, "%s/t.vhdx", dir);
  struct vhdkit_create_params p = { .struct_size = sizeof (struct vhdkit_create_params), .size = SIZE, .block_size = 1 << 20 };
  if (vhdkit_disk_create (path, &p) == -1 ||
      !(d = vhdkit_disk_open (path, VHDKIT_OPEN_RDWR)) ||
      vhdkit_rct_enable (d, 0) == -1 || vhdkit_rct_checkpoint (d, id) == -1) {
    fprintf (stderr, "setup: %s\n", vhdkit_get_error ());
    return 1;
  }
  pthread_t th[THREADS];
  for (long t = 0; t < THREADS; t++)
    pthread_create (&th[t], NULL, worker, (void *) t);
  for (int i = 0; i < 5; i++) {
    usleep (2000);
    if (vhdkit_rct_checkpoint (d, id2) == -1) { fprintf (stderr, "checkpoint: %s\n", vhdkit_get_error ()); failed = 1; }
  }
  for (int t = 0; t < THREADS; t++)
    pthread_join (th[t], NULL);
  if (!failed && check_changes (id) == -1) failed = 1;
  if (vhdkit_disk_close (d) == -1) { fprintf (stderr, "close: %s\n", vhdkit_get_error ()); failed = 1; }
  /* Reopen: the same answer from the files. */
  if (!failed) {
    d = vhdkit_disk_open (path, VHDKIT_OPEN_RDONLY);
    if (!d || check_changes (id) == -1) failed = 1;
    if (d) vhdkit_disk_close (d);
  }
  char cmd[128];
  snprintf (cmd, sizeof cmd, "rm -rf %s", dir);
  if (system (cmd) != 0) fprintf (stderr, "cleanup failed\n");
  return failed;
}
