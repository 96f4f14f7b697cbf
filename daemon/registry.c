/* The open disks (vhdkitd.h): one handle per image, keyed by its real
 * path, shared by every request and every door.
 *
 * Locking: reg_lock guards the list, the reference counts and the idle
 * times; it is never held across a library call that does I/O, except
 * vhdkit_disk_open itself (so that two requests for one image do not
 * open it twice; opens are rare and short).  A handle is closed only
 * with no reference (reg_close_idle, reg_evict, reg_close_all), so a
 * close never races with a call on it.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vhdkitd.h"

struct entry {
  struct reg_disk rd;
  unsigned refs;
  time_t last_used;
  struct entry *next;
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct entry *entries;
static unsigned idle_seconds = 300;

void reg_set_idle_seconds (unsigned s) { idle_seconds = s; }

static struct entry *
find_locked (const char *real)
{
  for (struct entry *e = entries; e; e = e->next)
    if (strcmp (e->rd.path, real) == 0) return e;
  return NULL;
}

uint32_t
reg_get (struct call *c, const char *real, struct reg_disk **out)
{
  pthread_mutex_lock (&reg_lock);
  struct entry *e = find_locked (real);
  if (e) {
    e->refs++;
    e->last_used = time (NULL);
    pthread_mutex_unlock (&reg_lock);
    *out = &e->rd;
    return 0;
  }
  struct vhdkit_disk *d = vhdkit_disk_open (real, VHDKIT_OPEN_RDWR);
  if (!d && (vhdkit_get_errno () == EACCES || vhdkit_get_errno () == EROFS || vhdkit_get_errno () == EPERM))
    d = vhdkit_disk_open (real, VHDKIT_OPEN_RDONLY);
  if (!d) {
    uint32_t rc = call_lib_fail (c);
    pthread_mutex_unlock (&reg_lock);
    return rc;
  }
  /* The path must still name itself: no folder on it became a symlink
   * since it was resolved (roots.c). */
  char again[PATH_MAX];
  if (!realpath (real, again) || strcmp (again, real) != 0) {
    vhdkit_disk_close (d);
    pthread_mutex_unlock (&reg_lock);
    return call_fail (c, VHDKIT_RC_ACCESS_DENIED, "%s changed while it was opened (a symlink appeared on its path)", real);
  }
  e = calloc (1, sizeof *e);
  if (!e || !(e->rd.path = strdup (real))) {
    free (e);
    vhdkit_disk_close (d);
    pthread_mutex_unlock (&reg_lock);
    return call_fail (c, VHDKIT_RC_OUT_OF_MEMORY, "out of memory opening %s", real);
  }
  e->rd.d = d;
  e->refs = 1;
  e->last_used = time (NULL);
  e->next = entries;
  entries = e;
  pthread_mutex_unlock (&reg_lock);
  *out = &e->rd;
  return 0;
}

void
reg_put (struct reg_disk *rd)
{
  struct entry *e = (struct entry *) rd;
  pthread_mutex_lock (&reg_lock);
  e->refs--;
  e->last_used = time (NULL);
  pthread_mutex_unlock (&reg_lock);
}

/* Unlink E (reg_lock held, no references) and close it. */
static int
close_locked (struct entry *e)
{
  for (struct entry **pp = &entries; *pp; pp = &(*pp)->next)
    if (*pp == e) { *pp = e->next; break; }
  int r = vhdkit_disk_close (e->rd.d);
  if (r == -1) vlog ("closing %s: %s", e->rd.path, vhdkit_get_error ());
  free (e->rd.path);
  free (e);
  return r;
}

uint32_t
reg_evict (struct call *c, const char *real)
{
  pthread_mutex_lock (&reg_lock);
  struct entry *e = find_locked (real);
  if (e && e->refs > 0) {
    pthread_mutex_unlock (&reg_lock);
    return call_fail (c, VHDKIT_RC_IN_USE, "%s is in use by another call of this service", real);
  }
  int r = e ? close_locked (e) : 0;
  pthread_mutex_unlock (&reg_lock);
  if (r == -1)
    return call_lib_fail (c);
  return 0;
}

void
reg_close_idle (void)
{
  time_t now = time (NULL);
  pthread_mutex_lock (&reg_lock);
  for (struct entry *e = entries, *next; e; e = next) {
    next = e->next;
    if (e->refs == 0 && (unsigned) (now - e->last_used) >= idle_seconds)
      close_locked (e);
  }
  pthread_mutex_unlock (&reg_lock);
}

int
reg_close_all (void)
{
  int r = 0;
  pthread_mutex_lock (&reg_lock);
  while (entries) {
    if (entries->refs)
      vlog ("closing %s with %u call(s) still using it", entries->rd.path, entries->refs);
    if (close_locked (entries) == -1) r = -1;
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
    json_array_append_new (a, json_text (e->rd.path));
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
