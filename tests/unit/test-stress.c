/* Many threads on ONE disk handle, checked against a model.
 *
 * 8 worker threads write, zero, discard and read random ranges of a
 * tracked dynamic VHDX through one handle; a checkpoint thread takes
 * reference points, a flusher flushes, a mapper maps and a querier asks
 * for changes, all at once.  Each 4 KiB unit is owned by a worker
 * (unit % WORKERS), so the model of its content is exact: after every
 * write the owner reads it back.  Each change takes a sequence number
 * before it starts; each reference point records the sequence reached
 * when its call returned.  At the end, for every reference point, every
 * unit whose last change started after that must be inside a reported
 * range (INV-1; a change in flight during the call may be reported or
 * not, vhdkit.h).  Runs for
 * VHDKIT_STRESS_SECONDS (default 4); under ThreadSanitizer in make test.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vhdkit.h"

#define WORKERS 8
#define UNIT 4096u
#define SIZE (64u << 20)
#define NUNITS (SIZE / UNIT)
#define MAXIDS 64

static struct vhdkit_disk *d;
static atomic_int failed, stop;
static atomic_uint_fast64_t clock_;            /* change sequence */
static uint64_t last_change[NUNITS];           /* atomic: seq of the last completed change */
static struct { char id[VHDKIT_RCT_ID_MAX]; uint64_t seq; } ids[MAXIDS];
static atomic_int nids;

#define FAIL(...) do { fprintf (stderr, __VA_ARGS__); fputc ('\n', stderr); atomic_store (&failed, 1); } while (0)

static void
fill (uint8_t *b, uint64_t unit, uint32_t v)
{
  for (size_t i = 0; i < UNIT; i += 4) {
    uint32_t x = v ^ (uint32_t) (unit * 2654435761u) ^ (uint32_t) i;
    memcpy (b + i, &x, 4);
  }
}

static void *
worker (void *arg)
{
  unsigned t = (unsigned) (uintptr_t) arg, seed = t * 7919u + 17;
  uint32_t *ver = calloc (NUNITS, 4);   /* 0: zeros, else the fill value */
  uint8_t *buf = malloc (8 * UNIT), *back = malloc (8 * UNIT), *want = malloc (8 * UNIT);
  while (!atomic_load (&stop) && !atomic_load (&failed)) {
    unsigned k = 1 + (unsigned) rand_r (&seed) % 4;        /* own units: t, t+W, ... */
    uint64_t u0 = (uint64_t) (rand_r (&seed) % (NUNITS / WORKERS - k)) * WORKERS + t;
    unsigned op = (unsigned) rand_r (&seed) % 10;
    /* Change k of our units one by one (they are WORKERS apart). */
    for (unsigned i = 0; i < k; i++) {
      uint64_t u = u0 + (uint64_t) i * WORKERS;
      int r;
      uint32_t v = op < 7 ? (uint32_t) rand_r (&seed) | 1 : 0;
      __atomic_store_n (&last_change[u], atomic_fetch_add (&clock_, 1) + 1, __ATOMIC_RELEASE);
      if (op < 7) {
        fill (buf, u, v);
        r = vhdkit_disk_pwrite (d, buf, UNIT, u * UNIT, op == 0 ? VHDKIT_IO_FUA : 0);
      }
      else if (op < 9)
        r = vhdkit_disk_zero (d, UNIT, u * UNIT, op == 8 ? VHDKIT_IO_NO_HOLE : 0);
      else
        r = vhdkit_disk_discard (d, UNIT, u * UNIT, 0);
      if (r == -1) { FAIL ("thread %u: change of unit %" PRIu64 ": %s", t, u, vhdkit_get_error ()); break; }
      ver[u] = v;
      if (vhdkit_disk_pread (d, back, UNIT, u * UNIT, 0) == -1) { FAIL ("read: %s", vhdkit_get_error ()); break; }
      if (v) fill (want, u, v); else memset (want, 0, UNIT);
      if (memcmp (back, want, UNIT) != 0) { FAIL ("thread %u: unit %" PRIu64 " reads other data than was written", t, u); break; }
    }
  }
  /* Every unit we own holds what we last wrote. */
  for (uint64_t u = t; u < NUNITS && !atomic_load (&failed); u += WORKERS) {
    if (vhdkit_disk_pread (d, back, UNIT, u * UNIT, 0) == -1) { FAIL ("read: %s", vhdkit_get_error ()); break; }
    if (ver[u]) fill (want, u, ver[u]); else memset (want, 0, UNIT);
    if (memcmp (back, want, UNIT) != 0) FAIL ("thread %u: unit %" PRIu64 " is wrong at the end", t, u);
  }
  free (ver); free (buf); free (back); free (want);
  return NULL;
}

static void *
checkpointer (void *arg)
{
  while (!atomic_load (&stop) && !atomic_load (&failed) && atomic_load (&nids) < MAXIDS) {
    int i = atomic_load (&nids);
    if (vhdkit_rct_checkpoint (d, ids[i].id) == -1) { FAIL ("checkpoint: %s", vhdkit_get_error ()); break; }
    /* Changes that start from now on must be reported since the ID. */
    ids[i].seq = atomic_load (&clock_);
    atomic_store (&nids, i + 1);
    usleep (50000);
  }
  return NULL;
}

static void *
flusher (void *arg)
{
  while (!atomic_load (&stop) && !atomic_load (&failed)) {
    if (vhdkit_disk_flush (d) == -1) FAIL ("flush: %s", vhdkit_get_error ());
    usleep (20000);
  }
  return NULL;
}

static int
count_extent (void *opaque, uint64_t off, uint64_t len, unsigned flags)
{
  uint64_t *total = opaque;
  *total += len;
  return 0;
}

static void *
mapper (void *arg)
{
  while (!atomic_load (&stop) && !atomic_load (&failed)) {
    uint64_t total = 0;
    if (vhdkit_disk_map (d, 0, SIZE, count_extent, &total) == -1) FAIL ("map: %s", vhdkit_get_error ());
    else if (total != SIZE) FAIL ("map covers %" PRIu64 " bytes of %u", total, SIZE);
    usleep (10000);
  }
  return NULL;
}

static void *
querier (void *arg)
{
  while (!atomic_load (&stop) && !atomic_load (&failed)) {
    int n = atomic_load (&nids);
    if (n) {
      struct vhdkit_changes c = VHDKIT_CHANGES_INIT;
      if (vhdkit_disk_get_changes (d, ids[n - 1].id, NULL, 0, SIZE, 0, &c) == -1)
        FAIL ("changes: %s", vhdkit_get_error ());
      vhdkit_changes_free (&c);
    }
    usleep (10000);
  }
  return NULL;
}

int
main (void)
{
  char dir[] = "/tmp/vhdkit-stress.XXXXXX", path[64];
  const char *secs = getenv ("VHDKIT_STRESS_SECONDS");
  int seconds = secs ? atoi (secs) : 4;
  if (!mkdtemp (dir)) { perror ("mkdtemp"); return 1; }
  snprintf (path, sizeof path, "%s/d.vhdx", dir);
  struct vhdkit_create_params p = VHDKIT_CREATE_PARAMS_INIT;
  p.size = SIZE;
  p.block_size = 1u << 20;
  if (vhdkit_disk_create (path, &p) == -1 || !(d = vhdkit_disk_open (path, VHDKIT_OPEN_RDWR)) ||
      vhdkit_rct_enable (d, 4096) == -1) {
    fprintf (stderr, "setup: %s\n", vhdkit_get_error ());
    return 1;
  }
  pthread_t th[WORKERS + 4];
  for (int i = 0; i < WORKERS; i++) pthread_create (&th[i], NULL, worker, (void *) (uintptr_t) i);
  pthread_create (&th[WORKERS], NULL, checkpointer, NULL);
  pthread_create (&th[WORKERS + 1], NULL, flusher, NULL);
  pthread_create (&th[WORKERS + 2], NULL, mapper, NULL);
  pthread_create (&th[WORKERS + 3], NULL, querier, NULL);
  sleep ((unsigned) seconds);
  atomic_store (&stop, 1);
  for (int i = 0; i < WORKERS + 4; i++) pthread_join (th[i], NULL);
  /* INV-1 for every ID, on the handle and after a reopen. */
  for (int pass = 0; pass < 2 && !atomic_load (&failed); pass++) {
    if (pass == 1) {
      if (vhdkit_disk_close (d) == -1 || !(d = vhdkit_disk_open (path, VHDKIT_OPEN_RDONLY))) {
        fprintf (stderr, "reopen: %s\n", vhdkit_get_error ());
        return 1;
      }
    }
    for (int i = 0; i < atomic_load (&nids); i++) {
      struct vhdkit_changes c = VHDKIT_CHANGES_INIT;
      if (vhdkit_disk_get_changes (d, ids[i].id, NULL, 0, SIZE, 0, &c) == -1) {
        FAIL ("changes since %s: %s", ids[i].id, vhdkit_get_error ());
        break;
      }
      size_t k = 0, missed = 0;
      for (uint64_t u = 0; u < NUNITS; u++) {
        if (__atomic_load_n (&last_change[u], __ATOMIC_ACQUIRE) <= ids[i].seq) continue;
        while (k < c.count && c.offsets[k] + c.lengths[k] <= u * UNIT) k++;
        if (k == c.count || c.offsets[k] > u * UNIT) missed++;
      }
      if (missed) FAIL ("FALSE NEGATIVE: %zu units changed after %s are not reported (pass %d)", missed, ids[i].id, pass);
      vhdkit_changes_free (&c);
    }
  }
  int n = atomic_load (&nids);
  vhdkit_disk_close (d);
  char cmd[128];
  snprintf (cmd, sizeof cmd, "rm -rf %s", dir);
  if (system (cmd) != 0) fprintf (stderr, "could not remove %s\n", dir);
  if (n < 3) { fprintf (stderr, "only %d reference points were taken: the test checked little\n", n); return 1; }
  printf ("test-stress: %s, %d reference points, %" PRIu64 " changes\n",
          atomic_load (&failed) ? "FAILED" : "ok", n, (uint64_t) atomic_load (&clock_));
  return atomic_load (&failed);
}
