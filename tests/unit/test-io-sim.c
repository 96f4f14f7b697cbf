/* Unit test of the simulation io backend (lib/io/io-sim.c).
 *
 * VHDKIT_SIM is parsed once per process, so each case runs in a fork()ed
 * child that sets it before its first io_open; the parent never opens a
 * file through io and checks the real files afterwards with plain POSIX
 * calls.  Exit status: 0 = pass, 1 = fail (each failed check is printed).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "io/io.h"
#include "io-sim.h"

#define SIM_EXIT_CRASH 99

static int failed;              /* of this process (parent or child) */
static char dir[256];

#define CHECK(cond)                                                     \
  do {                                                                  \
    if (!(cond)) {                                                      \
      fprintf (stderr, "%s:%d: [pid %d] check failed: %s\n",           \
               __FILE__, __LINE__, (int) getpid (), #cond);             \
      failed = 1;                                                       \
    }                                                                   \
  } while (0)

/* ---- Helpers on real files (plain POSIX, never through io) ---- */

static const char *
path_of (const char *name)
{
  static char bufs[4][512];
  static int i;
  char *p = bufs[i++ % 4];

  snprintf (p, sizeof bufs[0], "%s/%s", dir, name);
  return p;
}

static void
put_file (const char *name, const unsigned char *buf, size_t n)
{
  int fd = open (path_of (name), O_WRONLY | O_CREAT | O_TRUNC, 0644);

  if (fd == -1 || write (fd, buf, n) != (ssize_t) n || close (fd) == -1) {
    perror (path_of (name));
    exit (1);
  }
}

/* Read the whole of NAME into BUF (capacity CAP); return its size, or -1. */
static ssize_t
get_file (const char *name, unsigned char *buf, size_t cap)
{
  int fd = open (path_of (name), O_RDONLY);
  ssize_t r;

  if (fd == -1)
    return -1;
  r = read (fd, buf, cap);
  close (fd);
  return r;
}

static int
file_exists (const char *name)
{
  return access (path_of (name), F_OK) == 0;
}

/* The content a file starts with: every byte < 0x80, varying per byte. */
static unsigned char
old_byte (size_t i)
{
  return (unsigned char) ((i * 7 + i / 512) & 0x7f);
}

/* New content: every byte >= 0x80, so it differs from old_byte everywhere. */
static void
fill_new (unsigned char *buf, size_t n, unsigned tag)
{
  size_t i;

  for (i = 0; i < n; i++)
    buf[i] = (unsigned char) (0x80 | ((i * 13 + tag * 29) & 0x7f));
}

static void
put_old_file (const char *name, size_t n)
{
  unsigned char *buf = malloc (n);
  size_t i;

  if (buf == NULL)
    exit (1);
  for (i = 0; i < n; i++)
    buf[i] = old_byte (i);
  put_file (name, buf, n);
  free (buf);
}

/* Run FN in a child whose environment has VHDKIT_SIM=SPEC (and
 * VHDKIT_SIM_COUNT_FILE=COUNT_FILE in dir, unless NULL); return its wait
 * status, or -1. */
static int
in_child (const char *spec, const char *count_file, int (*fn) (void))
{
  pid_t pid;
  int status;

  fflush (stdout);
  fflush (stderr);
  pid = fork ();
  if (pid == -1) {
    perror ("fork");
    return -1;
  }
  if (pid == 0) {
    failed = 0;                 /* the parent's failures are not ours */
    alarm (30);                 /* a hung child fails the test, not CI */
    if (setenv ("VHDKIT_SIM", spec, 1) == -1 ||
        (count_file ?
         setenv ("VHDKIT_SIM_COUNT_FILE", path_of (count_file), 1) :
         unsetenv ("VHDKIT_SIM_COUNT_FILE")) == -1)
      _exit (2);
    exit (fn () == 0 && !failed ? 0 : 1);   /* exit: atexit handlers run */
  }
  while (waitpid (pid, &status, 0) == -1)
    if (errno != EINTR) {
      perror ("waitpid");
      return -1;
    }
  return status;
}

static int
exited_with (int status, int code)
{
  return status != -1 && WIFEXITED (status) && WEXITSTATUS (status) == code;
}

/* Check that the count file NAME holds exactly EXPECTED. */
static void
check_counts (const char *name, const char *expected)
{
  char buf[256];
  ssize_t r = get_file (name, (unsigned char *) buf, sizeof buf - 1);

  CHECK (r >= 0);
  if (r < 0)
    return;
  buf[r] = '\0';
  if (strcmp (buf, expected) != 0) {
    fprintf (stderr, "count file: got \"%s\", expected \"%s\"\n", buf,
             expected);
    failed = 1;
  }
}

/* ---- Crash mode, without a crash: overlay, sync, close, exit ---- */

#define OV_OLD 8192
#define OV_CAP 16384

static unsigned char model[OV_CAP];
static uint64_t model_size;

/* Write N bytes of new content at OFF through IO, and to the model. */
static void
ov_write (struct io *io, uint64_t off, size_t n, unsigned tag)
{
  unsigned char buf[1024];

  fill_new (buf, n, tag);
  CHECK (io_pwrite (io, buf, n, off) == 0);
  memcpy (model + off, buf, n);
  if (off + n > model_size)
    model_size = off + n;
}

static void
ov_truncate (struct io *io, uint64_t size)
{
  CHECK (io_truncate (io, size) == 0);
  if (size < model_size)
    memset (model + size, 0, model_size - size);
  model_size = size;
}

/* IO must show exactly the model: size, whole content, and a few windows
 * that start or end inside a pending write. */
static void
ov_check (struct io *io)
{
  static const struct { uint64_t off; size_t n; } windows[] = {
    { 0, OV_CAP }, { 150, 100 }, { 90, 20 }, { 7990, 700 }, { 8250, 1000 },
    { 9050, 8000 }, { 20000, 10 },
  };
  unsigned char buf[OV_CAP];
  uint64_t size;
  size_t i;

  CHECK (io_get_size (io, &size) == 0 && size == model_size);
  for (i = 0; i < sizeof windows / sizeof windows[0]; i++) {
    uint64_t off = windows[i].off;
    size_t n = windows[i].n < OV_CAP ? windows[i].n : OV_CAP;
    size_t want = off >= model_size ? 0 :
      model_size - off < n ? (size_t) (model_size - off) : n;
    ssize_t r;

    memset (buf, 0xee, sizeof buf);
    r = io_pread (io, buf, n, off);
    CHECK (r == (ssize_t) want);
    CHECK (r <= 0 || memcmp (buf, model + off, want) == 0);
  }
}

/* The real file must hold exactly the model. */
static void
ov_check_real (const char *name)
{
  static unsigned char buf[OV_CAP + 1];
  ssize_t r = get_file (name, buf, sizeof buf);

  CHECK (r == (ssize_t) model_size);
  CHECK (r < 0 || memcmp (buf, model, model_size) == 0);
}

static int
child_overlay (void)
{
  struct io *io, *ro;
  unsigned char old[OV_OLD];
  char c = 0;
  size_t i;

  for (i = 0; i < OV_OLD; i++)
    model[i] = old_byte (i);
  model_size = OV_OLD;
  memcpy (old, model, OV_OLD);

  CHECK (io_sim_enabled ());
  io = io_open (path_of ("overlay.img"), O_RDWR, 0);
  CHECK (io != NULL);
  if (io == NULL)
    return 1;
  ro = io_open (path_of ("overlay.img"), O_RDONLY, 0);
  CHECK (ro != NULL);
  if (ro == NULL)
    return 1;

  ov_write (io, 100, 300, 1);
  ov_check (io);
  ov_write (io, 200, 50, 2);          /* overlaps: the later write wins */
  ov_check (io);
  ov_write (io, 8000, 500, 3);        /* extends the file */
  ov_check (io);
  ov_truncate (io, 8300);             /* cuts that write */
  ov_check (io);
  ov_write (io, 9000, 100, 4);        /* a hole 8300..9000 reads as zeros */
  ov_check (io);
  ov_truncate (io, 9500);             /* grows with zeros */
  ov_check (io);
  ov_check (ro);                      /* another handle sees the same */

  /* Nothing reached the real file yet. */
  {
    unsigned char buf[OV_OLD + 1];
    CHECK (get_file ("overlay.img", buf, sizeof buf) == OV_OLD &&
           memcmp (buf, old, OV_OLD) == 0);
  }

  /* A read-only handle cannot write, even though writes are only queued. */
  errno = 0;
  CHECK (io_pwrite (ro, &c, 1, 0) == -1 && errno == EBADF);

  CHECK (io_sync (io) == 0);
  ov_check_real ("overlay.img");
  ov_check (io);

  ov_write (io, 0, 10, 5);            /* unsynced, then closed: applied */
  CHECK (io_close (ro) == 0);
  CHECK (io_close (io) == 0);
  ov_check_real ("overlay.img");

  /* Left open and unsynced at exit: the parent checks it was applied. */
  io = io_open (path_of ("overlay.img"), O_RDWR, 0);
  CHECK (io != NULL);
  if (io == NULL)
    return 1;
  ov_write (io, 20, 10, 6);
  put_file ("overlay.expected", model, model_size);
  return 0;
}

static void
test_overlay (void)
{
  unsigned char a[OV_CAP], b[OV_CAP];
  ssize_t na, nb;

  put_old_file ("overlay.img", OV_OLD);
  CHECK (exited_with (in_child ("crash:n=1000000", "overlay.count",
                                child_overlay), 0));
  na = get_file ("overlay.img", a, sizeof a);
  nb = get_file ("overlay.expected", b, sizeof b);
  CHECK (nb > 0 && na == nb && memcmp (a, b, (size_t) na) == 0);
  check_counts ("overlay.count", "writes=7 syncs=1 truncates=2\n");
}

/* ---- Count mode ---- */

static int
child_count (void)
{
  struct io *io = io_open (path_of ("count.img"), O_RDWR, 0);
  unsigned char buf[4] = "abcd", got[8];

  CHECK (io != NULL);
  if (io == NULL)
    return 1;
  CHECK (io_pwrite (io, buf, 4, 0) == 0);
  CHECK (io_pwrite (io, buf, 4, 4) == 0);
  CHECK (io_sync (io) == 0);
  CHECK (io_truncate (io, 6) == 0);
  /* Count mode changes nothing: the writes are in the real file at once. */
  CHECK (get_file ("count.img", got, sizeof got) == 6 &&
         memcmp (got, "abcdab", 6) == 0);
  CHECK (io_close (io) == 0);
  return 0;
}

static void
test_count (void)
{
  put_old_file ("count.img", 1024);
  CHECK (exited_with (in_child ("count", "count.count", child_count), 0));
  check_counts ("count.count", "writes=2 syncs=1 truncates=1\n");
}

/* ---- Fault mode ---- */

/* Write one byte, TAG, at offset TAG through IO; return io_pwrite's result
 * with errno, or 0. */
static int
write_tag (struct io *io, unsigned char tag, int *err)
{
  int r;

  errno = 0;
  r = io_pwrite (io, &tag, 1, tag);
  *err = errno;
  return r;
}

/* FAULT_FILE's bytes 1..5 must be those of MASK (1 = written). */
static void
check_tags (const char *name, const char *mask)
{
  unsigned char buf[64];
  size_t i;

  CHECK (get_file (name, buf, sizeof buf) == 64);
  for (i = 1; i <= 5; i++) {
    int written = buf[i] == i;
    if (written != (mask[i - 1] == '1')) {
      fprintf (stderr, "%s: byte %zu %s\n", name, i,
               written ? "written, should not be" : "not written");
      failed = 1;
    }
  }
}

static int
child_fault_write (void)
{
  struct io *io = io_open (path_of ("fault.img"), O_RDWR, 0);
  unsigned char buf[64];
  int e;

  CHECK (io != NULL);
  if (io == NULL)
    return 1;
  CHECK (write_tag (io, 1, &e) == 0);
  CHECK (write_tag (io, 2, &e) == 0);
  CHECK (write_tag (io, 3, &e) == -1 && e == EIO);
  CHECK (write_tag (io, 4, &e) == -1 && e == EIO);  /* a dying disk */
  CHECK (io_sync (io) == 0);                         /* other kinds work */
  CHECK (io_truncate (io, 64) == 0);
  CHECK (io_pread (io, buf, 64, 0) == 64);           /* reads never fail */
  CHECK (write_tag (io, 5, &e) == -1 && e == EIO);
  CHECK (io_close (io) == 0);
  check_tags ("fault.img", "11000");
  return 0;
}

static int
child_fault_once (void)
{
  struct io *io = io_open (path_of ("fault.img"), O_RDWR, 0);
  int e;

  CHECK (io != NULL);
  if (io == NULL)
    return 1;
  CHECK (write_tag (io, 1, &e) == 0);
  CHECK (write_tag (io, 2, &e) == 0);
  CHECK (write_tag (io, 3, &e) == -1 && e == ENOSPC);
  CHECK (write_tag (io, 4, &e) == 0);
  CHECK (write_tag (io, 5, &e) == 0);
  CHECK (io_close (io) == 0);
  check_tags ("fault.img", "11011");
  return 0;
}

static int
child_fault_sync (void)
{
  struct io *io = io_open (path_of ("fault.img"), O_RDWR, 0);
  int e;

  CHECK (io != NULL);
  if (io == NULL)
    return 1;
  CHECK (io_sync (io) == 0);
  CHECK (write_tag (io, 1, &e) == 0);
  errno = 0;
  CHECK (io_sync (io) == -1 && errno == EIO);
  errno = 0;
  CHECK (io_sync (io) == -1 && errno == EIO);
  CHECK (io_truncate (io, 64) == 0);
  CHECK (write_tag (io, 2, &e) == 0);
  CHECK (io_close (io) == 0);
  return 0;
}

/* op=any counts every kind, across files. */
static int
child_fault_any (void)
{
  struct io *a = io_open (path_of ("fault.img"), O_RDWR, 0);
  struct io *b = io_open (path_of ("fault2.img"), O_RDWR, 0);
  int e;

  CHECK (a != NULL && b != NULL);
  if (a == NULL || b == NULL)
    return 1;
  CHECK (write_tag (a, 1, &e) == 0);             /* 1 */
  CHECK (io_truncate (b, 64) == 0);              /* 2 */
  CHECK (io_sync (a) == 0);                      /* 3 */
  CHECK (write_tag (b, 2, &e) == -1 && e == EIO);  /* 4: fails, once */
  CHECK (io_sync (b) == 0);                      /* 5 */
  CHECK (write_tag (b, 3, &e) == 0);             /* 6 */
  CHECK (io_close (a) == 0);
  CHECK (io_close (b) == 0);
  check_tags ("fault2.img", "00100");
  return 0;
}

static void
test_fault (void)
{
  put_old_file ("fault.img", 64);
  CHECK (exited_with (in_child ("fault:op=write:n=3", NULL,
                                child_fault_write), 0));
  put_old_file ("fault.img", 64);
  CHECK (exited_with (in_child ("fault:op=write:n=3:once:errno=ENOSPC",
                                NULL, child_fault_once), 0));
  put_old_file ("fault.img", 64);
  CHECK (exited_with (in_child ("fault:op=sync:n=2", NULL,
                                child_fault_sync), 0));
  put_old_file ("fault.img", 64);
  put_old_file ("fault2.img", 64);
  CHECK (exited_with (in_child ("fault:once:n=4:op=any", NULL,
                                child_fault_any), 0));
}

/* ---- Threads: one handle, concurrent writers and readers ---- */

#define TH_NR 4
#define TH_REGION 4096
#define TH_ROUNDS 50

static struct io *th_io;

/* Rewrite our own region again and again; every read of it must show a
 * whole round, since each round is one pwrite. */
static void *
th_worker (void *arg)
{
  const unsigned t = (unsigned) (uintptr_t) arg;
  unsigned char buf[TH_REGION], got[TH_REGION];
  unsigned round;

  for (round = 0; round < TH_ROUNDS; round++) {
    fill_new (buf, TH_REGION, t * 1000 + round);
    CHECK (io_pwrite (th_io, buf, TH_REGION, (uint64_t) t * TH_REGION) == 0);
    CHECK (io_pread (th_io, got, TH_REGION, (uint64_t) t * TH_REGION) ==
           TH_REGION && memcmp (got, buf, TH_REGION) == 0);
    if (round % 10 == 9)
      CHECK (io_sync (th_io) == 0);
  }
  return NULL;
}

static int
child_threads (void)
{
  pthread_t th[TH_NR];
  unsigned t;

  th_io = io_open (path_of ("threads.img"), O_RDWR, 0);
  CHECK (th_io != NULL);
  if (th_io == NULL)
    return 1;
  for (t = 0; t < TH_NR; t++)
    CHECK (pthread_create (&th[t], NULL, th_worker,
                           (void *) (uintptr_t) t) == 0);
  for (t = 0; t < TH_NR; t++)
    CHECK (pthread_join (th[t], NULL) == 0);
  CHECK (io_close (th_io) == 0);
  return 0;
}

static void
test_threads (void)
{
  static unsigned char got[TH_NR * TH_REGION + 1];
  unsigned char want[TH_REGION];
  unsigned t;

  put_old_file ("threads.img", 1024);
  CHECK (exited_with (in_child ("crash:n=1000000", "threads.count",
                                child_threads), 0));
  CHECK (get_file ("threads.img", got, sizeof got) == TH_NR * TH_REGION);
  for (t = 0; t < TH_NR; t++) {
    fill_new (want, TH_REGION, t * 1000 + TH_ROUNDS - 1);
    CHECK (memcmp (got + t * TH_REGION, want, TH_REGION) == 0);
  }
  check_counts ("threads.count", "writes=200 syncs=20 truncates=0\n");
}

/* ---- fork() after the simulator started ---- */

/* A child forked by a simulated process inherits copies of the pending
 * writes; it must neither apply them at its exit (they are the parent's,
 * and may be stale by then) nor overwrite the parent's count file. */
static int
child_fork (void)
{
  struct io *io = io_open (path_of ("fork.img"), O_RDWR, 0);
  unsigned char x = 0xff, got[64];
  pid_t pid;
  int status;

  CHECK (io != NULL);
  if (io == NULL)
    return 1;
  CHECK (io_pwrite (io, &x, 1, 0) == 0);
  pid = fork ();
  CHECK (pid != -1);
  if (pid == 0)
    exit (0);
  CHECK (waitpid (pid, &status, 0) == pid && exited_with (status, 0));
  CHECK (get_file ("fork.img", got, sizeof got) == 64 && got[0] == 0);
  CHECK (!file_exists ("fork.count"));
  CHECK (io_close (io) == 0);
  CHECK (get_file ("fork.img", got, sizeof got) == 64 && got[0] == 0xff);
  return 0;
}

static void
test_fork (void)
{
  put_old_file ("fork.img", 64);
  CHECK (exited_with (in_child ("crash:n=1000000", "fork.count", child_fork),
                      0));
  check_counts ("fork.count", "writes=1 syncs=0 truncates=0\n");
}

/* ---- Parsing ---- */

static int
child_invalid (void)
{
  struct io *io;

  CHECK (io_sim_enabled ());
  errno = 0;
  io = io_open (path_of ("fault.img"), O_RDWR, 0);
  CHECK (io == NULL && errno == EINVAL);
  if (io)
    io_close (io);
  return 0;
}

static int
child_valid (void)
{
  struct io *io = io_open (path_of ("fault.img"), O_RDWR, 0);

  CHECK (io != NULL);
  if (io)
    CHECK (io_close (io) == 0);
  return 0;
}

static int
child_disabled (void)
{
  CHECK (!io_sim_enabled ());
  return child_valid ();
}

static void
test_parse (void)
{
  static const char *const bad[] = {
    "bogus", "count:n=1", "count:", "fault", "fault:op=write", "fault:n=1",
    "fault:op=read:n=1", "fault:op=write:n=0", "fault:op=write:n=-1",
    "fault:op=write:n=+1", "fault:op=write:n= 1", "fault:op=write:n=1x",
    "fault:op=write:n=18446744073709551617", "fault:op=write:n=1:errno=EPERM",
    "fault:op=write:n=1:once:once", "fault:op=write:n=1:once=1",
    "fault::op=write:n=1", "fault:op=write:n=1:", "fault:op=write:op=sync:n=1",
    "crash", "crash:n=", "crash:n=1:seed=x", "crash:n=1:once",
    "crash:n=2:n=3", "crash:n=1:errno=EIO", "Crash:n=1", "crash:N=1",
    "crash:n=1:fail=write", "crash:n=1:at=2", "crash:n=1:fail=any:at=1",
    "crash:n=1:fail=write:at=0", "crash:n=1:fail=write:at=1:at=2",
    "fault:op=write:n=1:fail=sync:at=1",
  };
  static const char *const good[] = {
    "count", "crash:n=5", "crash:seed=0:n=5", "crash:n=1:seed=18446744073709551615",
    "fault:op=truncate:n=1", "fault:errno=EIO:n=7:op=any:once",
    "crash:n=5:fail=write:at=2", "crash:at=1:fail=sync:n=3:seed=4",
  };
  size_t i;

  put_old_file ("fault.img", 64);
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (!exited_with (in_child (bad[i], NULL, child_invalid), 0)) {
      fprintf (stderr, "VHDKIT_SIM=\"%s\" was not refused\n", bad[i]);
      failed = 1;
    }
  for (i = 0; i < sizeof good / sizeof good[0]; i++)
    if (!exited_with (in_child (good[i], "parse.count", child_valid), 0)) {
      fprintf (stderr, "VHDKIT_SIM=\"%s\" was refused\n", good[i]);
      failed = 1;
    }
  CHECK (exited_with (in_child ("", NULL, child_disabled), 0));
}

/* ---- Crash mode: the power loss ---- */

#define CR_SIZE 16384
#define CR_SYNCED 4096

/* The unsynced writes to crash.img: unaligned, several sectors each. */
static const struct { uint64_t off; size_t len; } cr_writes[] = {
  { 4096 + 100, 3000 }, { 9000, 2048 }, { 12288, 1024 }, { 14000, 1500 },
};
#define CR_NR_WRITES (sizeof cr_writes / sizeof cr_writes[0])

static void
marker (void)
{
  put_file ("atexit-ran", (const unsigned char *) "x", 1);
}

static int
child_crash (void)
{
  unsigned char buf[4096];
  struct io *io, *io2, *io3;
  size_t i;

  if (atexit (marker) != 0)
    return 1;
  io = io_open (path_of ("crash.img"), O_RDWR, 0);
  io2 = io_open (path_of ("crash2.img"), O_RDWR, 0);
  io3 = io_open (path_of ("closed.img"), O_RDWR, 0);
  CHECK (io && io2 && io3);
  if (!(io && io2 && io3))
    return 1;

  fill_new (buf, CR_SYNCED, 100);
  CHECK (io_pwrite (io, buf, CR_SYNCED, 0) == 0);
  CHECK (io_sync (io) == 0);                   /* sync 1: durable */

  for (i = 0; i < CR_NR_WRITES; i++) {
    fill_new (buf, cr_writes[i].len, (unsigned) i);
    CHECK (io_pwrite (io, buf, cr_writes[i].len, cr_writes[i].off) == 0);
  }
  CHECK (io_truncate (io2, 4096) == 0);
  fill_new (buf, 4096, 200);
  CHECK (io_pwrite (io3, buf, 4096, 0) == 0);
  CHECK (io_close (io3) == 0);                 /* closed: applied */

  io_sync (io2);                               /* sync 2: power loss */
  fprintf (stderr, "child survived the crash sync\n");
  return 1;
}

/* What one write of crash.img was found to be after the crash. */
enum outcome { LOST, WHOLE, TORN };

static void
test_crash (void)
{
  static unsigned char got[CR_SIZE + 1], old[CR_SIZE], new[CR_SIZE];
  unsigned char buf[4096];
  int seen[3] = { 0, 0, 0 }, trunc_seen[2] = { 0, 0 };
  unsigned seed;
  size_t i, s;

  for (i = 0; i < CR_SIZE; i++)
    old[i] = new[i] = old_byte (i);
  fill_new (new, CR_SYNCED, 100);
  for (i = 0; i < CR_NR_WRITES; i++) {
    fill_new (buf, cr_writes[i].len, (unsigned) i);
    memcpy (new + cr_writes[i].off, buf, cr_writes[i].len);
  }

  for (seed = 1; seed <= 24; seed++) {
    char spec[64];
    int status;
    ssize_t r;

    put_old_file ("crash.img", CR_SIZE);
    put_old_file ("crash2.img", 8192);
    put_old_file ("closed.img", 4096);
    unlink (path_of ("atexit-ran"));
    unlink (path_of ("crash.count"));
    snprintf (spec, sizeof spec, "crash:n=2:seed=%u", seed);
    status = in_child (spec, "crash.count", child_crash);
    if (!exited_with (status, SIM_EXIT_CRASH)) {
      fprintf (stderr, "seed %u: status %#x, not exit %d\n", seed, status,
               SIM_EXIT_CRASH);
      failed = 1;
      break;                    /* the other seeds would say the same */
    }
    /* _exit: no atexit handler ran, neither ours nor the simulator's. */
    CHECK (!file_exists ("atexit-ran"));
    CHECK (!file_exists ("crash.count"));

    /* The synced write is there for sure; every other sector is wholly
     * old or wholly new. */
    r = get_file ("crash.img", got, sizeof got);
    CHECK (r == CR_SIZE);
    if (r != CR_SIZE)
      continue;
    CHECK (memcmp (got, new, CR_SYNCED) == 0);
    for (s = CR_SYNCED; s < CR_SIZE; s += 512)
      if (memcmp (got + s, old + s, 512) != 0 &&
          memcmp (got + s, new + s, 512) != 0) {
        fprintf (stderr, "seed %u: sector %zu is neither old nor new\n",
                 seed, s / 512);
        failed = 1;
      }
    for (i = 0; i < CR_NR_WRITES; i++) {
      size_t first = cr_writes[i].off / 512;
      size_t last = (cr_writes[i].off + cr_writes[i].len - 1) / 512;
      size_t nr_new = 0;
      for (s = first; s <= last; s++)
        nr_new += memcmp (got + s * 512, new + s * 512, 512) == 0;
      seen[nr_new == 0 ? LOST : nr_new == last - first + 1 ? WHOLE : TORN]++;
    }

    /* The pending truncate of the other open file: applied or not. */
    r = get_file ("crash2.img", got, sizeof got);
    CHECK (r == 4096 || r == 8192);
    if (r == 4096 || r == 8192) {
      trunc_seen[r == 4096]++;
      for (i = 0; i < (size_t) r; i++)
        if (got[i] != old_byte (i))
          break;
      CHECK (i == (size_t) r);
    }

    /* Written, unsynced, but closed before the crash: kept. */
    fill_new (buf, 4096, 200);
    CHECK (get_file ("closed.img", got, sizeof got) == 4096 &&
           memcmp (got, buf, 4096) == 0);
  }

  /* The seeds are fixed, so these are deterministic; they show that the
   * crash really chose, rather than always keeping or always dropping. */
  CHECK (seen[LOST] > 0);
  CHECK (seen[WHOLE] > 0);
  CHECK (seen[TORN] > 0);
  CHECK (trunc_seen[0] > 0 && trunc_seen[1] > 0);
}

/* ---- main ---- */

static void
remove_dir (void)
{
  DIR *d = opendir (dir);
  struct dirent *e;

  if (d == NULL)
    return;
  while ((e = readdir (d)) != NULL)
    if (strcmp (e->d_name, ".") != 0 && strcmp (e->d_name, "..") != 0)
      unlink (path_of (e->d_name));
  closedir (d);
  rmdir (dir);
}

/* ---- Crash mode with a fault first (fail=KIND:at=M) ---- */

/* crash:n=3:fail=write:at=2 - write 1 + sync 1 durable; write 2 fails
 * and leaves nothing; write 3 + sync 2 durable; sync 3 is the crash. */
static int
child_crash_fail_write (void)
{
  unsigned char buf[512];
  struct io *io = io_open (path_of ("cf.img"), O_RDWR, 0);
  CHECK (io != NULL);
  if (!io) return 1;
  fill_new (buf, 512, 1);
  CHECK (io_pwrite (io, buf, 512, 0) == 0);
  CHECK (io_sync (io) == 0);
  fill_new (buf, 512, 2);
  errno = 0;
  CHECK (io_pwrite (io, buf, 512, 512) == -1 && errno == EIO);
  fill_new (buf, 512, 3);
  CHECK (io_pwrite (io, buf, 512, 1024) == 0);
  CHECK (io_sync (io) == 0);
  if (failed) return 1;
  io_sync (io);
  fprintf (stderr, "child survived the crash sync\n");
  return 1;
}

/* crash:n=3:fail=sync:at=2 - write 1 + sync 1 durable; write 2, then
 * sync 2 fails; sync 3 is the crash, which may or may not keep write 2. */
static int
child_crash_fail_sync (void)
{
  unsigned char buf[512];
  struct io *io = io_open (path_of ("cf.img"), O_RDWR, 0);
  CHECK (io != NULL);
  if (!io) return 1;
  fill_new (buf, 512, 1);
  CHECK (io_pwrite (io, buf, 512, 0) == 0);
  CHECK (io_sync (io) == 0);
  fill_new (buf, 512, 2);
  CHECK (io_pwrite (io, buf, 512, 512) == 0);
  errno = 0;
  CHECK (io_sync (io) == -1 && errno == EIO);
  if (failed) return 1;
  io_sync (io);
  fprintf (stderr, "child survived the crash sync\n");
  return 1;
}

static void
test_crash_fail (void)
{
  unsigned char got[2048], want[512], old[512];
  int kept = 0, lost = 0;

  put_old_file ("cf.img", 2048);
  CHECK (exited_with (in_child ("crash:n=3:fail=write:at=2", NULL, child_crash_fail_write),
                      SIM_EXIT_CRASH));
  CHECK (get_file ("cf.img", got, sizeof got) == 2048);
  fill_new (want, 512, 1);
  CHECK (memcmp (got, want, 512) == 0);
  for (size_t i = 0; i < 512; i++) old[i] = old_byte (512 + i);
  CHECK (memcmp (got + 512, old, 512) == 0);      /* the failed write left nothing */
  fill_new (want, 512, 3);
  CHECK (memcmp (got + 1024, want, 512) == 0);

  for (unsigned seed = 1; seed <= 8; seed++) {
    char spec[64];
    snprintf (spec, sizeof spec, "crash:n=3:fail=sync:at=2:seed=%u", seed);
    put_old_file ("cf.img", 2048);
    CHECK (exited_with (in_child (spec, NULL, child_crash_fail_sync), SIM_EXIT_CRASH));
    CHECK (get_file ("cf.img", got, sizeof got) == 2048);
    fill_new (want, 512, 2);
    if (memcmp (got + 512, want, 512) == 0) kept++;
    else if (memcmp (got + 512, old, 512) == 0) lost++;
    else CHECK (!"sector 1 is neither old nor new after a failed sync");
  }
  /* The write after the failed sync was still pending at the crash. */
  CHECK (lost > 0);
  (void) kept;
}

int
main (void)
{
  const char *tmp = getenv ("TMPDIR");

  snprintf (dir, sizeof dir, "%s/test-io-sim.XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (mkdtemp (dir) == NULL) {
    perror ("mkdtemp");
    return 1;
  }
  /* The parent must not parse VHDKIT_SIM itself: each child sets its own. */
  unsetenv ("VHDKIT_SIM");

  test_overlay ();
  test_count ();
  test_fault ();
  test_threads ();
  test_fork ();
  test_parse ();
  test_crash ();
  test_crash_fail ();

  remove_dir ();
  if (failed) {
    fprintf (stderr, "test-io-sim: FAILED\n");
    return 1;
  }
  printf ("test-io-sim: ok\n");
  return 0;
}
