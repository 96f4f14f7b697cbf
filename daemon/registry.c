/* The open disks (vhdkitd.h): one handle per image, keyed by its real
 * path, shared by every request and every door.
 *
 * Locking: reg_lock guards the list, each entry's state, reference
 * count and idle time; it is never held across a library call that does
 * I/O.  An entry is first OPENING (its opener works without the lock;
 * others asking for the same image wait on reg_cv), then OPEN, and
 * CLOSING while a closer flushes and closes it without the lock (anyone
 * asking for it waits until it is gone, then opens it again).  A handle
 * is closed only with no reference, so a close never races with a call
 * on it.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vhdkitd.h"

enum state { OPENING, OPEN, CLOSING };

struct entry {
  struct reg_disk rd;
  enum state state;
  unsigned refs;
  uint64_t last_used;            /* reg_now_ms () of the last release */
  struct entry *next;
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t reg_cv = PTHREAD_COND_INITIALIZER;
static struct entry *entries;
static unsigned idle_seconds = 300;

void reg_set_idle_seconds (unsigned s) { idle_seconds = s; }
unsigned reg_idle_seconds (void) { return idle_seconds; }

/* Milliseconds on the monotonic clock: idle times do not jump with the
 * wall clock. */
uint64_t
reg_now_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

static struct entry *
find_locked (const char *real)
{
  for (struct entry *e = entries; e; e = e->next)
    if (strcmp (e->rd.path, real) == 0) return e;
  return NULL;
}

static void
unlink_locked (struct entry *e)
{
  for (struct entry **pp = &entries; *pp; pp = &(*pp)->next)
    if (*pp == e) { *pp = e->next; break; }
}

static void
free_entry (struct entry *e)
{
  free (e->rd.path);
  free (e);
}

/* Open REAL for the new entry E (no lock held). */
static uint32_t
open_disk (struct call *c, struct entry *e, const char *real)
{
  struct vhdkit_disk *d = vhdkit_disk_open (real, VHDKIT_OPEN_RDWR);
  if (!d && (vhdkit_get_errno () == EACCES || vhdkit_get_errno () == EROFS || vhdkit_get_errno () == EPERM))
    d = vhdkit_disk_open (real, VHDKIT_OPEN_RDONLY);
  if (!d) return call_lib_fail (c);
  /* The path must still name itself: no folder on it became a symlink
   * since it was resolved (roots.c). */
  char again[PATH_MAX];
  if (!realpath (real, again) || strcmp (again, real) != 0) {
    vhdkit_disk_close (d);
    return call_fail (c, VHDKIT_RC_ACCESS_DENIED, "%s changed while it was opened (a symlink appeared on its path)", real);
  }
  e->rd.d = d;
  return 0;
}

uint32_t
reg_get (struct call *c, const char *real, struct reg_disk **out)
{
  pthread_mutex_lock (&reg_lock);
  struct entry *e;
  while ((e = find_locked (real)) && e->state != OPEN)
    pthread_cond_wait (&reg_cv, &reg_lock);
  if (e) {
    e->refs++;
    e->last_used = reg_now_ms ();
    pthread_mutex_unlock (&reg_lock);
    *out = &e->rd;
    return 0;
  }
  e = calloc (1, sizeof *e);
  if (!e || !(e->rd.path = strdup (real))) {
    free (e);
    pthread_mutex_unlock (&reg_lock);
    return call_fail (c, VHDKIT_RC_OUT_OF_MEMORY, "out of memory opening %s", real);
  }
  e->state = OPENING;
  e->refs = 1;
  e->next = entries;
  entries = e;
  pthread_mutex_unlock (&reg_lock);

  uint32_t rc = open_disk (c, e, real);

  pthread_mutex_lock (&reg_lock);
  if (rc) {
    unlink_locked (e);
    free_entry (e);
  }
  else {
    e->state = OPEN;
    e->last_used = reg_now_ms ();
    *out = &e->rd;
  }
  pthread_cond_broadcast (&reg_cv);
  pthread_mutex_unlock (&reg_lock);
  return rc;
}

void
reg_put (struct reg_disk *rd)
{
  struct entry *e = (struct entry *) rd;
  pthread_mutex_lock (&reg_lock);
  e->refs--;
  e->last_used = reg_now_ms ();
  pthread_mutex_unlock (&reg_lock);
}

/* Close E, which is CLOSING with no reference; called and returns with
 * reg_lock held, dropping it across the close. */
static int
close_entry_locked (struct entry *e)
{
  pthread_mutex_unlock (&reg_lock);
  int r = vhdkit_disk_close (e->rd.d);
  if (r == -1) vlog ("closing %s: %s", e->rd.path, vhdkit_get_error ());
  pthread_mutex_lock (&reg_lock);
  unlink_locked (e);
  free_entry (e);
  pthread_cond_broadcast (&reg_cv);
  return r;
}

uint32_t
reg_evict (struct call *c, const char *real)
{
  pthread_mutex_lock (&reg_lock);
  struct entry *e;
  while ((e = find_locked (real)) && e->state != OPEN)
    pthread_cond_wait (&reg_cv, &reg_lock);
  if (e && e->refs > 0) {
    pthread_mutex_unlock (&reg_lock);
    return call_fail (c, VHDKIT_RC_IN_USE, "%s is in use by another call of this service", real);
  }
  int r = 0;
  if (e) {
    e->state = CLOSING;
    r = close_entry_locked (e);
  }
  pthread_mutex_unlock (&reg_lock);
  return r == -1 ? call_lib_fail (c) : 0;
}

/* Close, one at a time, the open entries with no reference that WANT
 * says to close. */
static int
close_matching (bool (*want) (const struct entry *e, uint64_t now))
{
  int r = 0;
  pthread_mutex_lock (&reg_lock);
  for (;;) {
    uint64_t now = reg_now_ms ();
    struct entry *e;
    for (e = entries; e; e = e->next)
      if (e->state == OPEN && e->refs == 0 && want (e, now)) break;
    if (!e) break;
    e->state = CLOSING;
    if (close_entry_locked (e) == -1) r = -1;
  }
  pthread_mutex_unlock (&reg_lock);
  return r;
}

static bool
idle (const struct entry *e, uint64_t now)
{
  return now - e->last_used >= (uint64_t) idle_seconds * 1000;
}

static bool
any (const struct entry *e, uint64_t now)
{
  (void) e; (void) now;
  return true;
}

void
reg_close_idle (void)
{
  close_matching (idle);
}

/* At shutdown no request runs and every job has ended, so nothing holds
 * a reference: every disk is flushed and closed. */
int
reg_close_all (void)
{
  int r = close_matching (any);
  pthread_mutex_lock (&reg_lock);
  for (struct entry *e = entries; e; e = e->next) {
    vlog ("%s is still in use by %u call(s) at shutdown; not closed", e->rd.path, e->refs);
    r = -1;
  }
  pthread_mutex_unlock (&reg_lock);
  return r;
}

json_t *
reg_paths (void)
{
  json_t *a = json_array ();
  pthread_mutex_lock (&reg_lock);
  for (struct entry *e = entries; a && e; e = e->next)
    if (e->state == OPEN) json_array_append_new (a, json_text (e->rd.path));
  pthread_mutex_unlock (&reg_lock);
  return a;
}

size_t
reg_count (void)
{
  size_t n = 0;
  pthread_mutex_lock (&reg_lock);
  for (struct entry *e = entries; e; e = e->next) n++;
  pthread_mutex_unlock (&reg_lock);
  return n;
}
