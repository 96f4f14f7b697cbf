/* Jobs (vhdkitd.h): Msvm_ConcreteJob.
 *
 * A job is Running (JobState 4) from the moment it is returned until it
 * ends as Completed (7), Terminated (8, cancelled with RequestStateChange
 * 4), Killed (9, RequestStateChange 5) or Exception (10, failed); it is
 * never seen as New or Starting.  A bounded pool of workers runs them in
 * order of submission.  Each job is written to STATE/jobs/<id>.json when
 * it starts and when it ends (write to a temporary name, fsync, rename),
 * so that it survives a restart; a job found Running at start was cut
 * short by the daemon's death and becomes Exception with ErrorCode 32771
 * (Status is unknown).  A finished job is removed TimeBeforeRemoval
 * (5 minutes) after it ended, at once if DeleteOnCompletion is set and
 * it completed.
 *
 * Locking: jobs_lock guards the list, the queue and every job's fields
 * except in/out while the job runs (only its worker touches them), and
 * is never held across file I/O.  A state change takes a snapshot of
 * the job under jobs_lock (with the next version number, and a pin that
 * keeps the job from being freed); the snapshot is written afterwards
 * under save_lock, which skips a snapshot older than one already
 * written, so the file always ends up with the newest state.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include <sys/stat.h>

#include "vhdkitd.h"
#include "guid.h"
#include "cimtime.h"

#define REMOVE_AFTER 300

struct job {
  char id[40];
  const struct method *m;
  json_t *in, *out;
  unsigned state;                /* 4, 7, 8, 9, 10 */
  unsigned pct;
  uint32_t rc;
  char error[1024];
  struct timespec submitted, started, finished;
  int cancel;                    /* atomic: 0, or the RequestedState (4 or 5) */
  bool delete_on_completion;
  bool running;
  bool hidden;                   /* a deadline call not (yet) a job */
  bool done;
  unsigned version;              /* of its state, for snapshots */
  unsigned saved_version;        /* under save_lock: the newest written */
  unsigned pins;                 /* snapshots not yet written */
  struct job *next, *qnext;
};

/* A job's state to write (or, REMOVE, its file to delete). */
struct snap {
  struct job *j;
  json_t *v;
  unsigned version;
  bool remove;
};

static pthread_mutex_t jobs_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t save_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t jobs_cv = PTHREAD_COND_INITIALIZER;
static struct job *jobs, *qhead, *qtail;
static char *jobs_dir;
static pthread_t *workers;
static unsigned nworkers, nrunning;
static bool stopping;

bool jobs_stopping (void) { return __atomic_load_n (&stopping, __ATOMIC_ACQUIRE); }

/* ---- CIM datetime ---- */

/* A job's time, or "" when it has not happened (tv_sec 0). */
static void
cim_time (const struct timespec *t, char *buf, size_t n)
{
  if (t->tv_sec == 0) { snprintf (buf, n, "%s", ""); return; }
  cim_datetime_format ((int64_t) t->tv_sec * 1000000000 + t->tv_nsec, buf, n);
}

static void
cim_interval (double secs, char *buf, size_t n)
{
  if (secs < 0) secs = 0;
  uint64_t us = (uint64_t) (secs * 1e6), s = us / 1000000;
  snprintf (buf, n, "%08" PRIu64 "%02" PRIu64 "%02" PRIu64 "%02" PRIu64 ".%06" PRIu64 ":000",
            s / 86400, s / 3600 % 24, s / 60 % 60, s % 60, us % 1000000);
}

static double
since (const struct timespec *a, const struct timespec *b)
{
  return (double) (b->tv_sec - a->tv_sec) + (double) (b->tv_nsec - a->tv_nsec) / 1e9;
}

static const char *
state_text (unsigned s)
{
  switch (s) {
  case 4: return "Running";
  case 7: return "Completed";
  case 8: return "Terminated";
  case 9: return "Killed";
  default: return "Exception";
  }
}

/* The instance's properties; jobs_lock held. */
static json_t *
view_locked (const struct job *j)
{
  char t1[32], t2[32], el[32], rm[32];
  struct timespec now;
  clock_gettime (CLOCK_REALTIME, &now);
  cim_time (&j->submitted, t1, sizeof t1);
  cim_time (&j->started, t2, sizeof t2);
  cim_interval (j->started.tv_sec ? since (&j->started, j->state == 4 ? &now : &j->finished) : 0, el, sizeof el);
  cim_interval (REMOVE_AFTER, rm, sizeof rm);
  json_t *v = json_object ();
  json_object_set_new (v, "__CLASS", json_string ("Msvm_ConcreteJob"));
  json_object_set_new (v, "InstanceID", json_string (j->id));
  json_object_set_new (v, "Name", json_string (j->m ? j->m->name : "unknown"));
  json_object_set_new (v, "Caption", json_string (j->m ? j->m->name : "unknown"));
  json_object_set_new (v, "Description", json_string (j->m ? j->m->doc : ""));
  json_object_set_new (v, "ElementName", json_string (j->m ? j->m->name : "unknown"));
  json_object_set_new (v, "JobType", json_integer (0));
  json_object_set_new (v, "JobState", json_integer (j->state));
  json_object_set_new (v, "JobStatus", json_string (state_text (j->state)));
  json_object_set_new (v, "PercentComplete", json_integer (j->state == 7 ? 100 : j->pct));
  json_object_set_new (v, "ErrorCode", json_integer (j->state == 7 ? 0 : j->rc));
  json_object_set_new (v, "ErrorDescription", json_text (j->state == 7 ? "" : j->error));
  json_object_set_new (v, "ErrorSummaryDescription", json_string (j->state == 7 ? "" : rc_description (j->rc)));
  json_object_set_new (v, "TimeSubmitted", json_string (t1));
  json_object_set_new (v, "StartTime", json_string (t2));
  json_object_set_new (v, "ElapsedTime", json_string (el));
  json_object_set_new (v, "TimeBeforeRemoval", json_string (rm));
  json_object_set_new (v, "DeleteOnCompletion", json_boolean (j->delete_on_completion));
  json_object_set_new (v, "Cancellable", json_true ());
  json_object_set_new (v, "OperationalStatus", json_pack ("[i]", j->state == 4 || j->state == 7 ? 2 : 6));
  json_object_set_new (v, "StatusDescriptions", json_pack ("[s]", j->state == 4 || j->state == 7 ? "OK" : "Error"));
  json_object_set_new (v, "HealthState", json_integer (5));
  json_object_set_new (v, "JobRunTimes", json_integer (1));
  json_object_set_new (v, "LocalOrUtcTime", json_integer (2));
  json_object_set_new (v, "Priority", json_integer (0));
  if (j->out && j->state == 7)
    json_object_set (v, "OutParameters", j->out);
  return v;
}

/* ---- persistence ---- */

static void
job_file (const struct job *j, char *path, size_t n)
{
  snprintf (path, n, "%s/%s.json", jobs_dir, j->id);
}

/* The job's state to write; jobs_lock held (or the job not yet shared). */
static struct snap *
snapshot_locked (struct job *j, bool remove)
{
  if (!jobs_dir) return NULL;
  struct snap *sn = calloc (1, sizeof *sn);
  if (!sn) {
    vlog ("job %s: out of memory saving its state", j->id);
    return NULL;
  }
  sn->j = j;
  sn->version = ++j->version;
  sn->remove = remove;
  if (!remove) {
    sn->v = view_locked (j);
    json_object_set_new (sn->v, "SubmittedEpoch", json_integer (j->submitted.tv_sec));
    json_object_set_new (sn->v, "StartedEpoch", json_integer (j->started.tv_sec));
    json_object_set_new (sn->v, "FinishedEpoch", json_integer (j->finished.tv_sec));
  }
  j->pins++;
  return sn;
}

/* Write SN (jobs_lock not held): to a temporary name, fsync, rename. */
static void
write_snapshot (struct snap *sn)
{
  if (!sn) return;
  struct job *j = sn->j;
  char path[4200], tmp[4210];
  job_file (j, path, sizeof path);
  pthread_mutex_lock (&save_lock);
  if (sn->version > j->saved_version) {
    j->saved_version = sn->version;
    if (sn->remove) {
      if (unlink (path) == -1 && errno != ENOENT)
        vlog ("removing job file %s: %s", path, strerror (errno));
    }
    else {
      snprintf (tmp, sizeof tmp, "%s.tmp", path);
      int fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      int ok = fd != -1 && json_dumpfd (sn->v, fd, JSON_COMPACT) == 0 && fsync (fd) == 0;
      if (fd != -1 && close (fd) == -1) ok = 0;
      if (!ok || rename (tmp, path) == -1) {
        vlog ("saving job %s to %s: %s", j->id, path, strerror (errno));
        unlink (tmp);
      }
    }
  }
  pthread_mutex_unlock (&save_lock);
  json_decref (sn->v);
  free (sn);
  pthread_mutex_lock (&jobs_lock);
  j->pins--;
  pthread_mutex_unlock (&jobs_lock);
}

static void
free_job (struct job *j)
{
  json_decref (j->in);
  json_decref (j->out);
  free (j);
}

static void
load_saved (void)
{
  DIR *dir = opendir (jobs_dir);
  struct dirent *de;
  if (!dir) return;
  while ((de = readdir (dir))) {
    size_t l = strlen (de->d_name);
    if (l < 6 || strcmp (de->d_name + l - 5, ".json") != 0 || l - 5 >= 40) continue;
    char path[4200];
    snprintf (path, sizeof path, "%s/%s", jobs_dir, de->d_name);
    json_t *v = json_load_file (path, JSON_REJECT_DUPLICATES, NULL);
    struct job *j = v ? calloc (1, sizeof *j) : NULL;
    if (!j) { json_decref (v); continue; }
    snprintf (j->id, sizeof j->id, "%.*s", (int) (l - 5), de->d_name);
    const char *name = json_string_value (json_object_get (v, "Name"));
    for (size_t i = 0; name && i < vhdkitd_nmethods; i++)
      if (strcmp (vhdkitd_methods[i].name, name) == 0) j->m = &vhdkitd_methods[i];
    j->state = (unsigned) json_integer_value (json_object_get (v, "JobState"));
    j->pct = (unsigned) json_integer_value (json_object_get (v, "PercentComplete"));
    j->rc = (uint32_t) json_integer_value (json_object_get (v, "ErrorCode"));
    snprintf (j->error, sizeof j->error, "%s", json_string_value (json_object_get (v, "ErrorDescription")) ?: "");
    j->submitted.tv_sec = json_integer_value (json_object_get (v, "SubmittedEpoch"));
    j->started.tv_sec = json_integer_value (json_object_get (v, "StartedEpoch"));
    j->finished.tv_sec = json_integer_value (json_object_get (v, "FinishedEpoch"));
    j->delete_on_completion = json_is_true (json_object_get (v, "DeleteOnCompletion"));
    json_t *o = json_object_get (v, "OutParameters");
    if (o) j->out = json_incref (o);
    json_decref (v);
    if (j->state == 4) {
      /* It was running when the daemon stopped without finishing it. */
      j->state = 10;
      j->rc = VHDKIT_RC_STATUS_UNKNOWN;
      snprintf (j->error, sizeof j->error, "vhdkitd stopped while the job was running; "
                "its result is unknown (check the disk before using it)");
      clock_gettime (CLOCK_REALTIME, &j->finished);
      write_snapshot (snapshot_locked (j, false));   /* alone: before the workers */
    }
    j->next = jobs;
    jobs = j;
  }
  closedir (dir);
}

/* ---- running ---- */

/* The job ended with RC; returns the snapshot to write. */
static struct snap *
finish_locked (struct job *j, uint32_t rc, const char *err)
{
  j->rc = rc;
  snprintf (j->error, sizeof j->error, "%s", err);
  clock_gettime (CLOCK_REALTIME, &j->finished);
  if (rc == 0) j->state = 7;
  else if (j->cancel == 5) j->state = 9;
  else if (j->cancel) j->state = 8;
  else j->state = 10;
  return snapshot_locked (j, j->state == 7 && j->delete_on_completion);
}

static void *
worker (void *arg)
{
  (void) arg;
  pthread_mutex_lock (&jobs_lock);
  for (;;) {
    while (!qhead && !stopping)
      pthread_cond_wait (&jobs_cv, &jobs_lock);
    if (!qhead) break;
    struct job *j = qhead;
    qhead = j->qnext;
    if (!qhead) qtail = NULL;
    struct snap *sn;
    if (j->cancel || stopping) {
      sn = finish_locked (j, VHDKIT_RC_FAILED, stopping ? "vhdkitd stopped before the job started"
                          : "cancelled before it started");
      pthread_mutex_unlock (&jobs_lock);
      write_snapshot (sn);
      pthread_mutex_lock (&jobs_lock);
      continue;
    }
    clock_gettime (CLOCK_REALTIME, &j->started);
    j->running = true;
    nrunning++;
    sn = snapshot_locked (j, false);
    pthread_mutex_unlock (&jobs_lock);
    write_snapshot (sn);

    struct call c = { .m = j->m, .job = j, .cancel = &j->cancel };
    uint32_t rc = j->m->fn (&c, j->in, j->out);
    if (rc && __atomic_load_n (&j->cancel, __ATOMIC_ACQUIRE) && !c.error[0])
      snprintf (c.error, sizeof c.error, "cancelled");

    pthread_mutex_lock (&jobs_lock);
    j->running = false;
    sn = finish_locked (j, rc, rc ? c.error : "");
    pthread_mutex_unlock (&jobs_lock);
    write_snapshot (sn);
    pthread_mutex_lock (&jobs_lock);
    nrunning--;
    pthread_cond_broadcast (&jobs_cv);
  }
  pthread_mutex_unlock (&jobs_lock);
  return NULL;
}

int
jobs_init (const char *state_dir, unsigned n)
{
  if (state_dir) {
    if (asprintf (&jobs_dir, "%s/jobs", state_dir) < 0) return -1;
    if (mkdir (jobs_dir, 0700) == -1 && errno != EEXIST) {
      vlog ("state folder %s: %s", jobs_dir, strerror (errno));
      return -1;
    }
    load_saved ();
  }
  nworkers = n ? n : 2;
  workers = calloc (nworkers, sizeof *workers);
  for (unsigned i = 0; i < nworkers; i++)
    if (pthread_create (&workers[i], NULL, worker, NULL) != 0) return -1;
  return 0;
}

void
jobs_set_percent (struct job *j, unsigned pct)
{
  pthread_mutex_lock (&jobs_lock);
  if (pct > 99) pct = 99;        /* 100 only when it completed */
  if (pct > j->pct) j->pct = pct;
  pthread_mutex_unlock (&jobs_lock);
}

/* Unlink the jobs due for removal from the list (jobs_lock held) and
 * return them, chained by next, for free_expired. */
static struct job *
expire_locked (void)
{
  struct timespec now;
  struct job *gone = NULL;
  clock_gettime (CLOCK_REALTIME, &now);
  for (struct job **pp = &jobs; *pp; ) {
    struct job *j = *pp;
    bool done = j->state != 4 && !j->running && j->pins == 0;
    if (done && ((j->state == 7 && j->delete_on_completion) || now.tv_sec - j->finished.tv_sec >= REMOVE_AFTER)) {
      *pp = j->next;
      j->next = gone;
      gone = j;
    }
    else pp = &j->next;
  }
  return gone;
}

/* Delete the files of expired jobs and free them (jobs_lock not held). */
static void
free_expired (struct job *gone)
{
  while (gone) {
    struct job *j = gone;
    gone = j->next;
    if (jobs_dir) {
      char path[4200];
      job_file (j, path, sizeof path);
      pthread_mutex_lock (&save_lock);
      unlink (path);
      pthread_mutex_unlock (&save_lock);
    }
    free_job (j);
  }
}

/* A new job for C's method with IN: Running (4), not yet in the list. */
static struct job *
job_new (struct call *c, json_t *in)
{
  struct job *j = calloc (1, sizeof *j);
  struct guid g;
  if (!j || guid_generate (&g) == -1 || !(j->out = json_object ())) {
    free (j);
    call_fail (c, VHDKIT_RC_OUT_OF_MEMORY, "cannot start a job for %s", c->m->name);
    return NULL;
  }
  guid_to_text (&g, j->id);
  j->m = c->m;
  j->in = json_incref (in);
  j->state = 4;
  clock_gettime (CLOCK_REALTIME, &j->submitted);
  return j;
}

static void
job_path (const struct job *j, char *jobpath, size_t n)
{
  snprintf (jobpath, n, "%s:Msvm_ConcreteJob.InstanceID=\"%s\"", VHDKITD_NAMESPACE, j->id);
}

uint32_t
jobs_start (struct call *c, json_t *in, char *jobpath, size_t n)
{
  struct job *j = job_new (c, in);
  if (!j) return VHDKIT_RC_OUT_OF_MEMORY;
  if (jobs_stopping ()) {
    free_job (j);
    return call_fail (c, VHDKIT_RC_NOT_AVAILABLE, "vhdkitd is stopping");
  }
  /* Saved before anyone can see it, so the worker's later states win. */
  write_snapshot (snapshot_locked (j, false));
  pthread_mutex_lock (&jobs_lock);
  if (stopping) {
    /* Stopping began meanwhile: the job never runs. */
    struct snap *sn = finish_locked (j, VHDKIT_RC_NOT_AVAILABLE, "vhdkitd stopped before the job started");
    j->next = jobs;
    jobs = j;
    pthread_mutex_unlock (&jobs_lock);
    write_snapshot (sn);
    return call_fail (c, VHDKIT_RC_NOT_AVAILABLE, "vhdkitd is stopping");
  }
  struct job *gone = expire_locked ();
  j->next = jobs;
  jobs = j;
  if (qtail) qtail->qnext = j; else qhead = j;
  qtail = j;
  pthread_cond_signal (&jobs_cv);
  pthread_mutex_unlock (&jobs_lock);
  free_expired (gone);
  job_path (j, jobpath, n);
  return VHDKIT_RC_JOB_STARTED;
}

/* ---- calls that become jobs only when slow ---- */

static void *
deadline_thread (void *arg)
{
  struct job *j = arg;
  struct call c = { .m = j->m, .job = j, .cancel = &j->cancel };
  uint32_t rc = j->m->fn (&c, j->in, j->out);
  struct snap *sn = NULL;
  pthread_mutex_lock (&jobs_lock);
  j->running = false;
  if (j->hidden) {
    /* The caller still waits: it takes the result and frees the job. */
    j->rc = rc;
    snprintf (j->error, sizeof j->error, "%s", rc ? c.error : "");
    j->done = true;
  }
  else
    sn = finish_locked (j, rc, rc ? c.error : "");
  pthread_mutex_unlock (&jobs_lock);
  write_snapshot (sn);
  pthread_mutex_lock (&jobs_lock);
  nrunning--;
  pthread_cond_broadcast (&jobs_cv);
  pthread_mutex_unlock (&jobs_lock);
  return NULL;
}

uint32_t
jobs_run_deadline (struct call *c, json_t *in, json_t *out, unsigned ms, char *jobpath, size_t n)
{
  struct job *j = job_new (c, in);
  pthread_t t;
  pthread_attr_t at;
  if (!j) return VHDKIT_RC_OUT_OF_MEMORY;
  j->hidden = true;
  j->running = true;
  j->started = j->submitted;
  pthread_mutex_lock (&jobs_lock);
  nrunning++;
  pthread_mutex_unlock (&jobs_lock);
  pthread_attr_init (&at);
  pthread_attr_setdetachstate (&at, PTHREAD_CREATE_DETACHED);
  if (pthread_create (&t, &at, deadline_thread, j) != 0) {
    pthread_attr_destroy (&at);
    pthread_mutex_lock (&jobs_lock);
    nrunning--;
    pthread_mutex_unlock (&jobs_lock);
    free_job (j);
    return call_fail (c, VHDKIT_RC_OUT_OF_MEMORY, "cannot start a thread for %s", c->m->name);
  }
  pthread_attr_destroy (&at);
  struct timespec end;
  clock_gettime (CLOCK_REALTIME, &end);
  end.tv_sec += ms / 1000;
  end.tv_nsec += (long) (ms % 1000) * 1000000;
  if (end.tv_nsec >= 1000000000) { end.tv_sec++; end.tv_nsec -= 1000000000; }
  pthread_mutex_lock (&jobs_lock);
  while (!j->done && pthread_cond_timedwait (&jobs_cv, &jobs_lock, &end) != ETIMEDOUT)
    ;
  if (j->done) {
    pthread_mutex_unlock (&jobs_lock);
    uint32_t rc = j->rc;
    if (rc == 0) json_object_update (out, j->out);
    else snprintf (c->error, sizeof c->error, "%s", j->error);
    free_job (j);
    return rc;
  }
  /* Too slow for an answer: from now on it is a job, which carries the
   * out-parameters when it completes. */
  j->hidden = false;
  j->next = jobs;
  jobs = j;
  struct snap *sn = snapshot_locked (j, false);
  pthread_mutex_unlock (&jobs_lock);
  write_snapshot (sn);
  job_path (j, jobpath, n);
  return VHDKIT_RC_JOB_STARTED;
}

static struct job *
find_locked (const char *id)
{
  for (struct job *j = jobs; id && j; j = j->next)
    if (strcasecmp (j->id, id) == 0) return j;
  return NULL;
}

json_t *
jobs_get (const char *id)
{
  pthread_mutex_lock (&jobs_lock);
  struct job *gone = expire_locked ();
  struct job *j = find_locked (id);
  json_t *v = j ? view_locked (j) : NULL;
  pthread_mutex_unlock (&jobs_lock);
  free_expired (gone);
  return v;
}

json_t *
jobs_list (void)
{
  json_t *a = json_array ();
  pthread_mutex_lock (&jobs_lock);
  struct job *gone = expire_locked ();
  for (struct job *j = jobs; j; j = j->next)
    json_array_append_new (a, view_locked (j));
  pthread_mutex_unlock (&jobs_lock);
  free_expired (gone);
  return a;
}

uint32_t
jobs_request_state (const char *id, unsigned state, char *err, size_t n)
{
  pthread_mutex_lock (&jobs_lock);
  struct job *j = find_locked (id);
  uint32_t rc = 0;
  if (!j) {
    snprintf (err, n, "InstanceID: no job %s", id ? id : "(null)");
    rc = VHDKIT_RC_INVALID_PARAMETER;
  }
  else if (state != 4 && state != 5) {
    snprintf (err, n, "RequestedState %u: a job can only be terminated (4) or killed (5)", state);
    rc = VHDKIT_RC_INVALID_PARAMETER;
  }
  else if (j->state != 4) {
    snprintf (err, n, "job %s has already ended (%s)", j->id, state_text (j->state));
    rc = 4097;                   /* Invalid State Transition */
  }
  else
    __atomic_store_n (&j->cancel, (int) state, __ATOMIC_RELEASE);
  pthread_mutex_unlock (&jobs_lock);
  return rc;
}

void
jobs_shutdown (unsigned deadline)
{
  struct timespec end;
  clock_gettime (CLOCK_REALTIME, &end);
  end.tv_sec += deadline;
  pthread_mutex_lock (&jobs_lock);
  __atomic_store_n (&stopping, true, __ATOMIC_RELEASE);
  pthread_cond_broadcast (&jobs_cv);
  /* Let running jobs finish until the deadline, then cancel them. */
  while (nrunning > 0 && pthread_cond_timedwait (&jobs_cv, &jobs_lock, &end) != ETIMEDOUT)
    ;
  if (nrunning > 0) {
    vlog ("cancelling %u running job(s) at the shutdown deadline", nrunning);
    for (struct job *j = jobs; j; j = j->next)
      if (j->running) __atomic_store_n (&j->cancel, 4, __ATOMIC_RELEASE);
    /* A cancelled job stops at its next progress point; a query made a
     * job (it has none) runs to its end.  Then no disk is in use. */
    while (nrunning > 0)
      pthread_cond_wait (&jobs_cv, &jobs_lock);
  }
  pthread_mutex_unlock (&jobs_lock);
  for (unsigned i = 0; i < nworkers; i++)
    pthread_join (workers[i], NULL);
}
