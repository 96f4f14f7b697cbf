/* io-sim: the simulation backend, for tests only (docs/IO-SIM.md).
 * Test programs link this file with the static library; a constructor
 * installs it as the io backend (io_set_backend), and with VHDKIT_SIM
 * unset it hands out plain POSIX files.  The shipped library neither
 * contains it nor reads VHDKIT_SIM.
 *
 * What it owns: the configuration parsed from VHDKIT_SIM (once, on first
 * use), the operation counters, and in crash mode the writes and truncates
 * that the process has made but not yet synced ("pending ops").  Every sim
 * file wraps a POSIX io from io_posix_open: the real descriptor does the
 * I/O; this file only decides when, and whether, it happens.
 *
 * Modes:
 *   count  - pass everything through, count writes, syncs and truncates,
 *            report the counts at exit.
 *   fault  - pass through, but fail the Nth write/sync/truncate (and, unless
 *            "once", every later one of that kind) with EIO or ENOSPC.
 *   crash  - keep writes and truncates pending in memory until the file is
 *            synced; at the Nth sync apply a random part of what is pending
 *            in every open file and _exit (SIM_EXIT_CRASH): a power loss.
 *
 * Pending ops are kept per inode, not per handle, as the page cache keeps
 * them: two handles on one file see each other's writes, and a sync through
 * either makes both durable.
 *
 * Locking: one mutex (sim_lock) protects the counters, the lists of open
 * files and inodes, and every pending list.  In count and fault modes it is
 * held only while counting; in crash mode it is held for the whole of each
 * call, so a read sees a consistent overlay and a crash sees a frozen state.
 *
 * Crash behaviour: this file *is* the crash.  Unsynced data of a file that
 * is closed, or still open at a normal exit, is applied then (the OS would
 * write it back eventually), so only a simulated power loss loses data.  If
 * the simulator itself cannot apply or report its state it says so on
 * stderr and exits SIM_EXIT_BROKEN, so that a test cannot mistake a broken
 * simulation for a pass.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "io/io.h"
#include "io-sim.h"

#define SIM_EXIT_CRASH  99      /* a simulated power loss */
#define SIM_EXIT_BROKEN 98      /* the simulator could not do its job */
#define SIM_SECTOR      512     /* unit of a torn write */

enum sim_mode { MODE_OFF, MODE_COUNT, MODE_FAULT, MODE_CRASH, MODE_INVALID };

/* Kinds of counted operation; KIND_ANY only names a fault target. */
enum sim_kind { KIND_WRITE, KIND_SYNC, KIND_TRUNCATE, KIND_ANY };

/* Written once by sim_init (under pthread_once), read-only afterwards. */
static struct {
  enum sim_mode mode;
  enum sim_kind fault_kind;
  uint64_t n;                   /* fault: Nth op of fault_kind; crash: Nth sync */
  int once;
  int fault_errno;
  uint64_t seed;
  enum sim_kind crash_fail_kind;  /* crash mode: also fail ... */
  uint64_t crash_fail_at;         /* ... this op of that kind, once (0: none) */
  char count_file[4096];        /* "" = stderr (count) or no report (crash) */
  pid_t owner;                  /* the process that parsed VHDKIT_SIM */
} cfg;

static pthread_once_t cfg_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t sim_lock = PTHREAD_MUTEX_INITIALIZER;

/* Under sim_lock from here on. */
static uint64_t counts[KIND_ANY];       /* indexed by KIND_WRITE..TRUNCATE */

struct pending {
  int is_truncate;
  uint64_t off;                 /* write: offset; truncate: the new size */
  size_t len;                   /* write only */
  unsigned char *data;          /* write only: our copy; NULL: zeros */
};

struct sim_inode {
  uint64_t dev;
  uint64_t ino;
  unsigned refs;                /* open sim files on this inode */
  struct pending *ops;          /* in the order they were made */
  size_t nr_ops, cap_ops;
  struct sim_inode *next;
};

struct sim_file {
  struct io io;                 /* first, so a struct io * is a sim_file * */
  struct io *real;              /* the POSIX io doing the real I/O */
  struct sim_inode *inode;      /* crash mode only */
  struct sim_file *next;        /* crash mode only: list of open files */
};

static struct sim_file *files;
static struct sim_inode *inodes;

static struct sim_file *
sim (struct io *io)
{
  return (struct sim_file *) io;
}

/* ---- Parsing VHDKIT_SIM ---- */

static int
word_is (const char *w, size_t len, const char *s)
{
  return strlen (s) == len && memcmp (w, s, len) == 0;
}

/* Decimal digits only: no sign, no blanks, no overflow. */
static int
parse_u64 (const char *s, size_t len, uint64_t *ret)
{
  uint64_t v = 0;
  size_t i;

  if (len == 0)
    return -1;
  for (i = 0; i < len; i++) {
    unsigned d;
    if (s[i] < '0' || s[i] > '9')
      return -1;
    d = (unsigned) (s[i] - '0');
    if (v > (UINT64_MAX - d) / 10)
      return -1;
    v = v * 10 + d;
  }
  *ret = v;
  return 0;
}

/* KIND in V: write, sync, truncate, or (if ANY_OK) any. */
static int
parse_kind (const char *v, size_t vlen, bool any_ok, enum sim_kind *kind)
{
  if (word_is (v, vlen, "write")) *kind = KIND_WRITE;
  else if (word_is (v, vlen, "sync")) *kind = KIND_SYNC;
  else if (word_is (v, vlen, "truncate")) *kind = KIND_TRUNCATE;
  else if (any_ok && word_is (v, vlen, "any")) *kind = KIND_ANY;
  else return -1;
  return 0;
}

/* Fill cfg from SPEC ("mode:key=value:flag...").  Every word must be known
 * to the mode and given at most once; anything else is malformed. */
static int
parse (const char *spec)
{
  const char *w = spec;
  size_t len = strcspn (w, ":");
  int have_n = 0, have_op = 0, have_once = 0, have_errno = 0, have_seed = 0;
  int have_fail = 0, have_at = 0;

  if (word_is (w, len, "count"))
    cfg.mode = MODE_COUNT;
  else if (word_is (w, len, "fault"))
    cfg.mode = MODE_FAULT;
  else if (word_is (w, len, "crash"))
    cfg.mode = MODE_CRASH;
  else
    return -1;
  cfg.fault_errno = EIO;
  cfg.seed = 1;

  while (w[len] == ':') {
    const char *eq, *v;
    size_t klen, vlen;

    w += len + 1;
    len = strcspn (w, ":");
    eq = memchr (w, '=', len);
    klen = eq ? (size_t) (eq - w) : len;
    v = eq ? eq + 1 : NULL;
    vlen = eq ? len - klen - 1 : 0;

    if (cfg.mode != MODE_COUNT && v && !have_n && word_is (w, klen, "n")) {
      have_n = 1;
      if (parse_u64 (v, vlen, &cfg.n) == -1 || cfg.n == 0)
        return -1;
    }
    else if (cfg.mode == MODE_FAULT && v && !have_op &&
             word_is (w, klen, "op")) {
      have_op = 1;
      if (parse_kind (v, vlen, true, &cfg.fault_kind) == -1)
        return -1;
    }
    else if (cfg.mode == MODE_FAULT && v && !have_errno &&
             word_is (w, klen, "errno")) {
      have_errno = 1;
      if (word_is (v, vlen, "EIO")) cfg.fault_errno = EIO;
      else if (word_is (v, vlen, "ENOSPC")) cfg.fault_errno = ENOSPC;
      else return -1;
    }
    else if (cfg.mode == MODE_FAULT && !v && !have_once &&
             word_is (w, len, "once"))
      have_once = cfg.once = 1;
    else if (cfg.mode == MODE_CRASH && v && !have_seed &&
             word_is (w, klen, "seed")) {
      have_seed = 1;
      if (parse_u64 (v, vlen, &cfg.seed) == -1)
        return -1;
    }
    else if (cfg.mode == MODE_CRASH && v && !have_fail &&
             word_is (w, klen, "fail")) {
      have_fail = 1;
      if (parse_kind (v, vlen, false, &cfg.crash_fail_kind) == -1)
        return -1;
    }
    else if (cfg.mode == MODE_CRASH && v && !have_at &&
             word_is (w, klen, "at")) {
      have_at = 1;
      if (parse_u64 (v, vlen, &cfg.crash_fail_at) == -1 || cfg.crash_fail_at == 0)
        return -1;
    }
    else
      return -1;
  }

  if (cfg.mode == MODE_FAULT && !(have_op && have_n))
    return -1;
  if (cfg.mode == MODE_CRASH && (!have_n || have_fail != have_at))
    return -1;
  return 0;
}

static void at_exit (void);
static void before_fork (void);
static void after_fork_parent (void);
static void after_fork_child (void);

static void
sim_init (void)
{
  const char *spec = getenv ("VHDKIT_SIM");
  const char *cf = getenv ("VHDKIT_SIM_COUNT_FILE");

  if (spec == NULL || *spec == '\0') {
    cfg.mode = MODE_OFF;
    return;
  }
  if (parse (spec) == -1)
    goto invalid;
  if (cf && strlen (cf) >= sizeof cfg.count_file)
    goto invalid;
  if (cf)
    strcpy (cfg.count_file, cf);
  cfg.owner = getpid ();
  /* Without these the simulation would be silently wrong (pending data
   * never applied, a child replaying its parent's writes), so refuse. */
  if (atexit (at_exit) != 0 ||
      pthread_atfork (before_fork, after_fork_parent, after_fork_child) != 0)
    goto invalid;
  return;

 invalid:
  memset (&cfg, 0, sizeof cfg);
  cfg.mode = MODE_INVALID;
}

int
io_sim_enabled (void)
{
  pthread_once (&cfg_once, sim_init);
  return cfg.mode != MODE_OFF;
}

static struct io *io_sim_open (const char *path, int flags, mode_t mode);

const struct io_backend io_sim_backend = {
  .name = "sim",
  .open = io_sim_open,
};

/* Every program this file is linked into does its I/O through it. */
__attribute__ ((constructor))
static void
install (void)
{
  io_set_backend (&io_sim_backend);
}

/* ---- Counting and faults ---- */

/* Count one operation of KIND; return the errno it must fail with, or 0. */
static int
count_locked (enum sim_kind kind)
{
  uint64_t nth;

  counts[kind]++;
  if (cfg.mode == MODE_CRASH)
    return cfg.crash_fail_at && kind == cfg.crash_fail_kind &&
      counts[kind] == cfg.crash_fail_at ? EIO : 0;
  if (cfg.mode != MODE_FAULT)
    return 0;
  if (cfg.fault_kind == KIND_ANY)
    nth = counts[KIND_WRITE] + counts[KIND_SYNC] + counts[KIND_TRUNCATE];
  else if (cfg.fault_kind == kind)
    nth = counts[kind];
  else
    return 0;
  if (cfg.once ? nth == cfg.n : nth >= cfg.n)
    return cfg.fault_errno;
  return 0;
}

static int
count_op (enum sim_kind kind)
{
  int err;

  pthread_mutex_lock (&sim_lock);
  err = count_locked (kind);
  pthread_mutex_unlock (&sim_lock);
  return err;
}

/* ---- The simulator's own failures ---- */

static _Noreturn void
broken (const char *what, const char *path)
{
  dprintf (STDERR_FILENO, "vhdkit io-sim: %s%s%s: %s (exit %d)\n",
           what, path ? " " : "", path ? path : "", strerror (errno),
           SIM_EXIT_BROKEN);
  _exit (SIM_EXIT_BROKEN);
}

static int
write_all (int fd, const char *buf, size_t n)
{
  while (n > 0) {
    ssize_t r = write (fd, buf, n);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    buf += r;
    n -= (size_t) r;
  }
  return 0;
}

static void
report_counts (void)
{
  char line[128];
  int len, fd;

  len = snprintf (line, sizeof line,
                  "writes=%" PRIu64 " syncs=%" PRIu64 " truncates=%" PRIu64
                  "\n", counts[KIND_WRITE], counts[KIND_SYNC],
                  counts[KIND_TRUNCATE]);
  if (cfg.count_file[0] == '\0') {
    if (write_all (STDERR_FILENO, line, (size_t) len) == -1)
      broken ("cannot write the counts to stderr", NULL);
    return;
  }
  fd = open (cfg.count_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd == -1)
    broken ("cannot create", cfg.count_file);
  if (write_all (fd, line, (size_t) len) == -1)
    broken ("cannot write", cfg.count_file);
  if (close (fd) == -1)
    broken ("cannot close", cfg.count_file);
}

/* ---- Pending ops (crash mode) ---- */

static int
add_pending (struct sim_inode *ino, const struct pending *p)
{
  if (ino->nr_ops == ino->cap_ops) {
    size_t cap = ino->cap_ops ? ino->cap_ops * 2 : 16;
    struct pending *ops;

    if (cap > SIZE_MAX / sizeof *ops) {
      errno = ENOMEM;
      return -1;
    }
    ops = realloc (ino->ops, cap * sizeof *ops);
    if (ops == NULL)
      return -1;
    ino->ops = ops;
    ino->cap_ops = cap;
  }
  ino->ops[ino->nr_ops++] = *p;
  return 0;
}

static void
discard_pending (struct sim_inode *ino)
{
  size_t i;

  for (i = 0; i < ino->nr_ops; i++)
    free (ino->ops[i].data);
  ino->nr_ops = 0;
}

/* Replay the pending ops of INO over a window BUF[0..N) of the file at OFF
 * and return the file size they leave.  SIZE is the real size, or anything
 * >= OFF+N when the real file fills the window; BUF must hold the real
 * bytes with zeros past the real end.  Invariant kept: window bytes at or
 * past the current size are zero, which is what a later extension shows.
 * With N == 0 this only computes the size. */
static uint64_t
overlay (const struct sim_inode *ino, unsigned char *buf, size_t n,
         uint64_t off, uint64_t size)
{
  const uint64_t end = off + n;
  size_t i;

  for (i = 0; i < ino->nr_ops; i++) {
    const struct pending *p = &ino->ops[i];

    if (p->is_truncate) {
      if (p->off < end) {
        uint64_t from = p->off > off ? p->off : off;
        memset (buf + (from - off), 0, end - from);
      }
      size = p->off;
    }
    else {
      uint64_t wend = p->off + p->len;
      uint64_t lo = p->off > off ? p->off : off;
      uint64_t hi = wend < end ? wend : end;

      if (lo < hi) {
        if (p->data)
          memcpy (buf + (lo - off), p->data + (lo - p->off), hi - lo);
        else
          memset (buf + (lo - off), 0, hi - lo);
      }
      if (wend > size)
        size = wend;
    }
  }
  return size;
}

/* A writable real io on INO, through which its pending ops can be applied.
 * One exists whenever ops are pending: only writable handles add them, and
 * a close applies them all before the handle goes. */
static struct io *
inode_writer (const struct sim_inode *ino)
{
  struct sim_file *f;

  for (f = files; f; f = f->next)
    if (f->inode == ino && f->io.writable)
      return f->real;
  return NULL;
}

/* Write LEN zeros at OFF through W. */
static int
write_zeros (struct io *w, uint64_t off, size_t len)
{
  static const unsigned char z[65536];
  while (len > 0) {
    size_t n = len < sizeof z ? len : sizeof z;
    if (w->ops->pwrite (w, z, n, off) == -1)
      return -1;
    off += n;
    len -= n;
  }
  return 0;
}

/* Write part [S, E) of write P through W. */
static int
apply_part (struct io *w, const struct pending *p, uint64_t s, uint64_t e)
{
  if (p->data == NULL)
    return write_zeros (w, s, e - s);
  return w->ops->pwrite (w, p->data + (s - p->off), e - s, s);
}

static int
apply_op (struct io *w, const struct pending *p)
{
  if (p->is_truncate)
    return w->ops->truncate (w, p->off);
  return apply_part (w, p, p->off, p->off + p->len);
}

/* Apply INO's pending ops to the real file, in order.  On failure the ops
 * not yet applied stay pending. */
static int
apply_pending (struct sim_inode *ino)
{
  struct io *w;
  size_t i;
  int r = 0, e = 0;

  if (ino->nr_ops == 0)
    return 0;
  w = inode_writer (ino);
  if (w == NULL) {
    errno = EBADF;
    return -1;
  }
  for (i = 0; i < ino->nr_ops; i++) {
    if (apply_op (w, &ino->ops[i]) == -1) {
      r = -1;
      e = errno;
      break;
    }
    free (ino->ops[i].data);
  }
  memmove (ino->ops, ino->ops + i, (ino->nr_ops - i) * sizeof *ino->ops);
  ino->nr_ops -= i;
  errno = e;
  return r;
}

/* splitmix64: small, and the same sequence on every platform, so a seed
 * names one crash everywhere. */
static uint64_t
next_random (uint64_t *state)
{
  uint64_t z = (*state += UINT64_C (0x9e3779b97f4a7c15));

  z = (z ^ (z >> 30)) * UINT64_C (0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C (0x94d049bb133111eb);
  return z ^ (z >> 31);
}

/* The power loss.  Called with sim_lock held; never returns. */
static _Noreturn void
crash (void)
{
  uint64_t rng = cfg.seed;
  struct sim_inode *ino;
  size_t i;

  for (ino = inodes; ino; ino = ino->next) {
    struct io *w = inode_writer (ino);

    if (ino->nr_ops > 0 && w == NULL) {
      errno = EBADF;
      broken ("pending ops without a writable handle", NULL);
    }
    for (i = 0; i < ino->nr_ops; i++) {
      const struct pending *p = &ino->ops[i];
      uint64_t r = next_random (&rng);
      uint64_t s, next, end;

      if (p->is_truncate) {
        if ((r & 1) && w->ops->truncate (w, p->off) == -1)
          broken ("crash: cannot truncate", w->path);
        continue;
      }
      switch (r % 3) {
      case 0:                   /* lost */
        break;
      case 1:                   /* reached the disk whole */
        if (apply_op (w, p) == -1)
          broken ("crash: cannot write", w->path);
        break;
      default:                  /* torn: each sector made it, or not */
        end = p->off + p->len;
        for (s = p->off; s < end; s = next) {
          next = (s / SIM_SECTOR + 1) * SIM_SECTOR;
          if (next > end)
            next = end;
          if ((next_random (&rng) & 1) && apply_part (w, p, s, next) == -1)
            broken ("crash: cannot write", w->path);
        }
      }
    }
  }
  _exit (SIM_EXIT_CRASH);
}

/* ---- Exit and fork ---- */

static void
at_exit (void)
{
  struct sim_inode *ino;

  pthread_mutex_lock (&sim_lock);
  for (ino = inodes; ino; ino = ino->next) {
    if (apply_pending (ino) == -1) {
      struct io *w = inode_writer (ino);
      broken ("at exit: cannot apply unsynced writes to",
              w ? w->path : "a file");
    }
  }
  /* A forked child must not overwrite its parent's report. */
  if (getpid () == cfg.owner &&
      (cfg.mode == MODE_COUNT ||
       (cfg.mode == MODE_CRASH && cfg.count_file[0] != '\0')))
    report_counts ();
  pthread_mutex_unlock (&sim_lock);
}

static void
before_fork (void)
{
  pthread_mutex_lock (&sim_lock);
}

static void
after_fork_parent (void)
{
  pthread_mutex_unlock (&sim_lock);
}

/* The pending ops the child inherited are the parent's: if the child
 * applied them at its exit, it could write stale data over what the parent
 * synced since. */
static void
after_fork_child (void)
{
  struct sim_inode *ino;

  pthread_mutex_unlock (&sim_lock);
  for (ino = inodes; ino; ino = ino->next)
    discard_pending (ino);
}

/* ---- Pass-through operations (count and fault modes) ---- */

static ssize_t
sim_pread (struct io *io, void *buf, size_t n, uint64_t off)
{
  struct io *real = sim (io)->real;

  return real->ops->pread (real, buf, n, off);
}

static int
pass_pwrite (struct io *io, const void *buf, size_t n, uint64_t off)
{
  struct io *real = sim (io)->real;
  int err = count_op (KIND_WRITE);

  if (err) {
    errno = err;
    return -1;
  }
  return real->ops->pwrite (real, buf, n, off);
}

static int
pass_sync (struct io *io)
{
  struct io *real = sim (io)->real;
  int err = count_op (KIND_SYNC);

  if (err) {
    errno = err;
    return -1;
  }
  return real->ops->sync (real);
}

static int
pass_truncate (struct io *io, uint64_t size)
{
  struct io *real = sim (io)->real;
  int err = count_op (KIND_TRUNCATE);

  if (err) {
    errno = err;
    return -1;
  }
  return real->ops->truncate (real, size);
}

static int
pass_zero_range (struct io *io, uint64_t off, uint64_t n, int how)
{
  struct io *real = sim (io)->real;
  int err = count_op (KIND_WRITE);

  if (err) {
    errno = err;
    return -1;
  }
  return real->ops->zero_range (real, off, n, how);
}

static int
sim_stat_real (struct io *io, struct io_stat *st)
{
  struct io *real = sim (io)->real;

  return real->ops->stat (real, st);
}

static int
sim_next_data_real (struct io *io, uint64_t off, uint64_t *data, uint64_t *hole)
{
  struct io *real = sim (io)->real;

  return real->ops->next_data (real, off, data, hole);
}

static void
sim_hint_writeback_real (struct io *io)
{
  struct io *real = sim (io)->real;

  real->ops->hint_writeback (real);
}

static int
sim_lock_file (struct io *io, int exclusive)
{
  struct io *real = sim (io)->real;

  return real->ops->lock (real, exclusive);
}

static int
sim_lock_record (struct io *io, int how)
{
  struct io *real = sim (io)->real;

  return real->ops->lock_record (real, how);
}

static int
pass_close (struct io *io)
{
  struct io *real = sim (io)->real;

  free (io);
  return real->ops->close (real);
}

static const struct io_ops pass_ops = {
  .pread = sim_pread,
  .pwrite = pass_pwrite,
  .sync = pass_sync,
  .truncate = pass_truncate,
  .zero_range = pass_zero_range,
  .stat = sim_stat_real,
  .next_data = sim_next_data_real,
  .hint_writeback = sim_hint_writeback_real,
  .lock = sim_lock_file,
  .lock_record = sim_lock_record,
  .close = pass_close,
};

/* ---- Crash-mode operations ---- */

static int get_size_locked (struct sim_file *f, uint64_t *size);

static ssize_t
crash_pread (struct io *io, void *buf, size_t n, uint64_t off)
{
  struct sim_file *f = sim (io);
  ssize_t r;
  uint64_t size;

  if (off > INT64_MAX) {
    errno = EINVAL;
    return -1;
  }
  if (n > SSIZE_MAX)
    n = SSIZE_MAX;
  pthread_mutex_lock (&sim_lock);
  r = f->real->ops->pread (f->real, buf, n, off);
  if (r >= 0 && f->inode->nr_ops > 0) {
    /* A short read ends at the real end of file; a full one only tells
     * that the file reaches OFF+N, which is all the overlay needs. */
    memset ((char *) buf + r, 0, n - (size_t) r);
    size = overlay (f->inode, buf, n, off, off + (uint64_t) r);
    r = size <= off ? 0 : size - off < n ? (ssize_t) (size - off) : (ssize_t) n;
  }
  pthread_mutex_unlock (&sim_lock);
  return r;
}

/* Keep a write of N bytes at OFF pending: BUF's bytes, or zeros when
 * BUF is NULL. */
static int
crash_write (struct io *io, const void *buf, size_t n, uint64_t off)
{
  struct sim_file *f = sim (io);
  struct pending p = { .off = off, .len = n };
  int r = 0, err;

  pthread_mutex_lock (&sim_lock);
  /* Every call counts, as in the other modes; a failed one leaves
   * nothing pending. */
  if ((err = count_locked (KIND_WRITE)) != 0) {
    errno = err;
    r = -1;
  }
  else if (!io->writable) {
    errno = EBADF;
    r = -1;
  }
  else if (n > INT64_MAX || off > INT64_MAX - n) {
    errno = EFBIG;
    r = -1;
  }
  else if (n > 0) {
    if (buf) {
      p.data = malloc (n);
      if (p.data)
        memcpy (p.data, buf, n);
    }
    if (buf && p.data == NULL)
      r = -1;
    else {
      r = add_pending (f->inode, &p);
      if (r == -1)
        free (p.data);
    }
  }
  pthread_mutex_unlock (&sim_lock);
  return r;
}

static int
crash_pwrite (struct io *io, const void *buf, size_t n, uint64_t off)
{
  return crash_write (io, buf, n, off);
}

/* Zeroing is a pending write of zeros (within the current size, as
 * fallocate with KEEP_SIZE leaves it). */
static int
crash_zero_range (struct io *io, uint64_t off, uint64_t n, int how)
{
  struct sim_file *f = sim (io);
  uint64_t size, real_size;

  /* Allocating space that reads as zeros changes no content. */
  if (how == IO_ZERO_PREALLOC) {
    int err;
    pthread_mutex_lock (&sim_lock);
    err = count_locked (KIND_WRITE);
    pthread_mutex_unlock (&sim_lock);
    if (err) {
      errno = err;
      return -1;
    }
    return 0;
  }

  pthread_mutex_lock (&sim_lock);
  if (get_size_locked (f, &real_size) == -1) {
    pthread_mutex_unlock (&sim_lock);
    return -1;
  }
  size = real_size;
  pthread_mutex_unlock (&sim_lock);
  if (off >= size)
    return 0;
  if (n > size - off)
    n = size - off;
  if (n > SIZE_MAX) {
    errno = EFBIG;
    return -1;
  }
  return crash_write (io, NULL, (size_t) n, off);
}

static int
crash_truncate (struct io *io, uint64_t size)
{
  struct sim_file *f = sim (io);
  struct pending p = { .is_truncate = 1, .off = size };
  int r, err;

  pthread_mutex_lock (&sim_lock);
  if ((err = count_locked (KIND_TRUNCATE)) != 0) {
    errno = err;
    r = -1;
  }
  else if (!io->writable || size > INT64_MAX) {
    errno = EINVAL;             /* what ftruncate says to both */
    r = -1;
  }
  else
    r = add_pending (f->inode, &p);
  pthread_mutex_unlock (&sim_lock);
  return r;
}

/* Makes the file's pending ops real, but does not fdatasync: the host does
 * not lose power, only the simulated disk does. */
static int
crash_sync (struct io *io)
{
  struct sim_file *f = sim (io);
  int r, err;

  pthread_mutex_lock (&sim_lock);
  err = count_locked (KIND_SYNC);
  if (counts[KIND_SYNC] == cfg.n)
    crash ();
  /* A failed sync makes nothing durable: what is pending stays pending,
   * and a later crash may still lose it. */
  if (err) {
    errno = err;
    r = -1;
  }
  else
    r = apply_pending (f->inode);
  pthread_mutex_unlock (&sim_lock);
  return r;
}

/* The size the file has with its pending ops applied; sim_lock held. */
static int
get_size_locked (struct sim_file *f, uint64_t *size)
{
  struct io_stat st;

  if (f->real->ops->stat (f->real, &st) == -1)
    return -1;
  *size = overlay (f->inode, NULL, 0, 0, st.size);
  return 0;
}

static int
crash_stat (struct io *io, struct io_stat *st)
{
  struct sim_file *f = sim (io);
  int r;

  pthread_mutex_lock (&sim_lock);
  r = f->real->ops->stat (f->real, st);
  if (r == 0)
    st->size = overlay (f->inode, NULL, 0, 0, st->size);
  pthread_mutex_unlock (&sim_lock);
  return r;
}

/* Pending writes are not in the real file's extents: say everything up
 * to the size is data (a safe answer for SEEK_DATA users). */
static int
crash_next_data (struct io *io, uint64_t off, uint64_t *data, uint64_t *hole)
{
  struct sim_file *f = sim (io);
  uint64_t size;
  int r;

  pthread_mutex_lock (&sim_lock);
  r = get_size_locked (f, &size);
  pthread_mutex_unlock (&sim_lock);
  if (r == -1)
    return -1;
  if (off >= size) {
    errno = ENXIO;
    return -1;
  }
  *data = off;
  *hole = size;
  return 0;
}

static void
crash_hint_writeback (struct io *io)
{
}

static int
crash_close (struct io *io)
{
  struct sim_file *f = sim (io), **fp;
  struct sim_inode *ino = f->inode, **ip;
  struct io *real = f->real;
  int r, e = 0;

  pthread_mutex_lock (&sim_lock);
  r = apply_pending (ino);
  if (r == -1)
    e = errno;
  for (fp = &files; *fp != f; fp = &(*fp)->next)
    ;
  *fp = f->next;
  /* After a failed write-back with no writer left, nothing can ever apply
   * the rest: it is lost, as the kernel would lose it. */
  if (inode_writer (ino) == NULL)
    discard_pending (ino);
  if (--ino->refs == 0) {
    for (ip = &inodes; *ip != ino; ip = &(*ip)->next)
      ;
    *ip = ino->next;
    free (ino->ops);
    free (ino);
  }
  pthread_mutex_unlock (&sim_lock);
  free (f);

  if (real->ops->close (real) == -1 && r == 0) {
    r = -1;
    e = errno;
  }
  errno = e;
  return r;
}

static const struct io_ops crash_ops = {
  .pread = crash_pread,
  .pwrite = crash_pwrite,
  .sync = crash_sync,
  .truncate = crash_truncate,
  .zero_range = crash_zero_range,
  .stat = crash_stat,
  .next_data = crash_next_data,
  .hint_writeback = crash_hint_writeback,
  .lock = sim_lock_file,
  .lock_record = sim_lock_record,
  .close = crash_close,
};

/* ---- Opening ---- */

/* Join F to the inode it opened, creating the inode's record if F is its
 * first handle. */
static int
attach_inode (struct sim_file *f)
{
  struct io_stat st;
  struct sim_inode *ino;

  if (f->real->ops->stat (f->real, &st) == -1)
    return -1;
  pthread_mutex_lock (&sim_lock);
  for (ino = inodes; ino; ino = ino->next)
    if (ino->dev == st.dev && ino->ino == st.ino)
      break;
  if (ino == NULL) {
    ino = calloc (1, sizeof *ino);
    if (ino == NULL) {
      pthread_mutex_unlock (&sim_lock);
      return -1;
    }
    ino->dev = st.dev;
    ino->ino = st.ino;
    ino->next = inodes;
    inodes = ino;
  }
  ino->refs++;
  f->inode = ino;
  f->next = files;
  files = f;
  pthread_mutex_unlock (&sim_lock);
  return 0;
}

static struct io *
io_sim_open (const char *path, int flags, mode_t mode)
{
  struct sim_file *f;
  struct io *real;
  int e;

  pthread_once (&cfg_once, sim_init);
  if (cfg.mode == MODE_INVALID) {
    errno = EINVAL;
    return NULL;
  }
  if (cfg.mode == MODE_OFF)
    return io_posix_backend.open (path, flags, mode);
  f = calloc (1, sizeof *f);
  if (f == NULL)
    return NULL;
  real = io_posix_backend.open (path, flags, mode);
  if (real == NULL) {
    e = errno;
    free (f);
    errno = e;
    return NULL;
  }
  f->real = real;
  f->io.ops = cfg.mode == MODE_CRASH ? &crash_ops : &pass_ops;
  f->io.writable = real->writable;
  f->io.path = real->path;      /* shared: freed when real is closed */
  if (cfg.mode == MODE_CRASH && attach_inode (f) == -1) {
    e = errno;
    real->ops->close (real);    /* nothing was written through it */
    free (f);
    errno = e;
    return NULL;
  }
  return &f->io;
}
