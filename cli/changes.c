/* vhdkit changes: GetVirtualDiskChanges (DESIGN.md §3) from the command
 * line.  One call answers one page of ranges; --all pages through the
 * whole window with offset += ProcessedByteLength.
 *
 * Output is streamed through a buffer of our own written with write(2)
 * (as `vhdkit read` does), so that a failed write is seen, with its
 * errno, at the range that hit it: text lines go out range by range; with
 * --all --json the ranges are spooled to an unlinked temporary file and
 * printed as the three arrays once every page has succeeded, so that a
 * failure on a later page still prints nothing but the error object, and
 * memory stays bounded however many millions of ranges there are.
 *
 * Ranges that touch across a page boundary are merged so the
 * concatenated answer stays coalesced (§3.4), as the library coalesces
 * within a page.  A merged range is "zero" only if both parts were.
 *
 * Every page is checked against the contract before any of it is used
 * (progress made, ranges sorted, non-empty and inside what was
 * processed): a backup must never act on a wrong answer, so a violation
 * fails the command with 32768 instead of being printed.
 *
 * Through vhdkitd (--connect) the pages come from GetVirtualDiskChanges,
 * which answers for the whole window in one reply (up to the library's
 * cap of ranges): the reply is kept and served page by page with the
 * library's paging rule (a page of --max-ranges ranges ends where its
 * last range ends, and the next range starts after a gap), so that
 * every option prints what it prints locally.  The service does not
 * say how a range was last changed: --kinds is refused there.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vhdkit.h"
#include "cli.h"
#include "remote.h"

struct range {
  uint64_t offset, length;
  uint64_t kind;                /* VHDKIT_CHANGE_* */
};

struct output {
  bool kinds;                   /* --kinds */
  FILE *spool;                  /* --all --json: the ranges, else NULL */
  const char *spool_path;       /* for messages */
  bool pending;                 /* a range held back for merging */
  struct range last;
};

/* ---- Standard output ---- */

#define OUT_SIZE (64 * 1024)
#define OUT_ITEM 128            /* longer than any one printed item */

static char out_buf[OUT_SIZE];
static size_t out_len;
static bool out_started;        /* some output has been written */

static int
out_flush (void)
{
  size_t done = 0;

  while (done < out_len) {
    ssize_t r = write (STDOUT_FILENO, out_buf + done, out_len - done);

    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1) {
      out_len = 0;
      return cli_stdout_error ();
    }
    done += (size_t) r;
    out_started = true;
  }
  out_len = 0;
  return 0;
}

/* Append one short item to stdout; 0, or the exit status after
 * reporting. */
static int __attribute__ ((format (printf, 1, 2)))
out (const char *fmt, ...)
{
  va_list ap;
  int n, st;

  if (OUT_SIZE - out_len < OUT_ITEM && (st = out_flush ()) != 0)
    return st;
  va_start (ap, fmt);
  n = vsnprintf (out_buf + out_len, OUT_SIZE - out_len, fmt, ap);
  va_end (ap);
  if (n < 0 || (size_t) n >= OUT_SIZE - out_len)
    abort ();                   /* an item longer than OUT_ITEM */
  out_len += (size_t) n;
  return 0;
}

/* Append the decimal digits of V; room for them is the caller's. */
static void
out_u64 (uint64_t v)
{
  char t[20];
  size_t n = 0;

  do {
    t[n++] = (char) ('0' + v % 10);
    v /= 10;
  } while (v);
  while (n)
    out_buf[out_len++] = t[--n];
}

/* Append the text line of a range, "OFFSET LENGTH[ KIND]": the line a
 * query prints most, so it is formatted without printf.  0, or the
 * exit status after reporting. */
static int
out_range (uint64_t offset, uint64_t length, const char *kind)
{
  int st;

  if (OUT_SIZE - out_len < OUT_ITEM && (st = out_flush ()) != 0)
    return st;
  out_u64 (offset);
  out_buf[out_len++] = ' ';
  out_u64 (length);
  if (kind) {
    size_t n = strlen (kind);

    out_buf[out_len++] = ' ';
    memcpy (out_buf + out_len, kind, n);
    out_len += n;
  }
  out_buf[out_len++] = '\n';
  return 0;
}

/* ---- Ranges ---- */

static const char *
kind_name (uint64_t kind)
{
  return kind == VHDKIT_CHANGE_ZERO ? "zero" : "data";
}

/* An unlinked temporary file in $TMPDIR (or /tmp), or NULL after
 * reporting. */
static FILE *
open_spool (const char **dir_out)
{
  const char *dir = getenv ("TMPDIR");
  char *tmpl;
  FILE *fp;
  int fd;

  if (dir == NULL || *dir == '\0')
    dir = "/tmp";
  *dir_out = dir;
  if (asprintf (&tmpl, "%s/vhdkit-changes.XXXXXX", dir) == -1) {
    cli_error (VHDKIT_RC_OUT_OF_MEMORY, "out of memory");
    return NULL;
  }
  fd = mkstemp (tmpl);
  if (fd == -1) {
    cli_error (VHDKIT_RC_FAILED, "cannot create a temporary file in %s: %s",
               dir, strerror (errno));
    free (tmpl);
    return NULL;
  }
  unlink (tmpl);
  free (tmpl);
  fp = fdopen (fd, "w+");
  if (fp == NULL) {
    cli_error (VHDKIT_RC_FAILED, "temporary file in %s: %s", dir,
               strerror (errno));
    close (fd);
  }
  return fp;
}

static int
spool_error (const struct output *o)
{
  if (out_started)              /* too late for a JSON error object */
    cli_json = 0;
  return cli_error (VHDKIT_RC_FAILED, "temporary file in %s: %s",
                    o->spool_path, errno ? strerror (errno) : "I/O error");
}

/* Print or spool R; 0, or the exit status after reporting. */
static int
put (struct output *o, const struct range *r)
{
  if (o->spool) {
    errno = 0;
    if (fwrite (r, sizeof *r, 1, o->spool) != 1)
      return spool_error (o);
    return 0;
  }
  return out_range (r->offset, r->length, o->kinds ? kind_name (r->kind) : NULL);
}

/* Take the next range in order, merging it into the one held back if
 * they touch. */
static int
emit (struct output *o, const struct range *r)
{
  int st;

  if (o->pending && o->last.offset + o->last.length == r->offset) {
    o->last.length += r->length;
    if (r->kind != VHDKIT_CHANGE_ZERO)
      o->last.kind = VHDKIT_CHANGE_DATA;
    return 0;
  }
  if (o->pending && (st = put (o, &o->last)) != 0)
    return st;
  o->last = *r;
  o->pending = true;
  return 0;
}

static int
emit_last (struct output *o)
{
  int st = o->pending ? put (o, &o->last) : 0;

  o->pending = false;
  return st;
}

/* Check one page for the window [OFFSET, OFFSET+LENGTH) against the
 * contract; 0, or the exit status after reporting. */
static int
check_page (const char *path, const struct vhdkit_changes *c,
            uint64_t offset, uint64_t length, size_t max_ranges, bool kinds)
{
  const char *what = NULL;
  uint64_t end = offset, limit;
  size_t i;

  if (c->processed > length || (length > 0 && c->processed == 0))
    what = "a processed length outside the window";
  else if (c->count > (max_ranges ? max_ranges : VHDKIT_CHANGES_DEFAULT_MAX))
    what = "more ranges than --max-ranges";
  else if (c->count > 0 && (c->offsets == NULL || c->lengths == NULL ||
                            (kinds && c->kinds == NULL)))
    what = "missing range arrays";
  limit = offset + c->processed;
  for (i = 0; what == NULL && i < c->count; i++) {
    if (c->lengths[i] == 0 || c->offsets[i] < end ||
        c->lengths[i] > limit - c->offsets[i] || c->offsets[i] > limit)
      what = "ranges that are empty, unsorted, overlapping or outside the "
        "processed window";
    else if (kinds && c->kinds[i] != VHDKIT_CHANGE_DATA &&
             c->kinds[i] != VHDKIT_CHANGE_ZERO)
      what = "an unknown change kind";
    else
      end = c->offsets[i] + c->lengths[i];
  }
  if (what == NULL)
    return 0;
  return cli_error (VHDKIT_RC_FAILED, "%s: internal error: the library "
                    "answered with %s (offset %" PRIu64 ", length %" PRIu64
                    ", processed %" PRIu64 ", %zu ranges)", path, what,
                    offset, length, c->processed, c->count);
}

static int
emit_page (struct output *o, const struct vhdkit_changes *c)
{
  size_t i;
  int st;

  for (i = 0; i < c->count; i++) {
    struct range r = {
      c->offsets[i], c->lengths[i],
      c->kinds ? c->kinds[i] : VHDKIT_CHANGE_DATA,
    };

    if ((st = emit (o, &r)) != 0)
      return st;
  }
  return 0;
}

/* ---- JSON ---- */

/* Where the ranges of a JSON answer come from: one page's arrays, or
 * the spool. */
struct source {
  const struct vhdkit_changes *page;
  struct output *o;
};

enum column { OFFSETS, LENGTHS, KINDS };

static const char *const column_key[] = {
  "ChangedByteOffsets", "ChangedByteLengths", "ChangeKinds",
};

static int
print_item (enum column col, const struct range *r, bool first)
{
  if (col == KINDS)
    return out ("%s\"%s\"", first ? "" : ",", kind_name (r->kind));
  return out ("%s%" PRIu64, first ? "" : ",",
              col == OFFSETS ? r->offset : r->length);
}

static int
print_column (struct source *s, enum column col)
{
  struct range r;
  size_t i;
  int st;

  if ((st = out (",\"%s\":[", column_key[col])) != 0)
    return st;
  if (s->page) {
    for (i = 0; i < s->page->count; i++) {
      r.offset = s->page->offsets[i];
      r.length = s->page->lengths[i];
      r.kind = s->page->kinds ? s->page->kinds[i] : VHDKIT_CHANGE_DATA;
      if ((st = print_item (col, &r, i == 0)) != 0)
        return st;
    }
  }
  else {
    errno = 0;
    if (fseek (s->o->spool, 0, SEEK_SET) == -1)
      return spool_error (s->o);
    for (i = 0; fread (&r, sizeof r, 1, s->o->spool) == 1; i++) {
      if ((st = print_item (col, &r, i == 0)) != 0)
        return st;
    }
    if (ferror (s->o->spool))
      return spool_error (s->o);
  }
  return out ("]");
}

static int
print_json (struct source *s, uint64_t processed, bool kinds)
{
  int st;

  if ((st = out ("{\"ReturnValue\":0,\"ProcessedByteLength\":%" PRIu64,
                 processed)) != 0)
    return st;
  if ((st = print_column (s, OFFSETS)) != 0 ||
      (st = print_column (s, LENGTHS)) != 0 ||
      (kinds && (st = print_column (s, KINDS)) != 0))
    return st;
  return out ("}\n");
}

/* ---- The verb ---- */

/* Through vhdkitd: the last reply, for [offset, offset + processed). */
struct reply {
  json_t *path;                 /* the image, as sent */
  bool valid;                   /* a reply is held */
  uint64_t offset, processed;
  uint64_t *offsets, *lengths;
  size_t count, next;           /* ranges; the first not yet served */
};

struct query {
  struct vhdkit_disk *d;        /* locally */
  struct reply *remote;         /* through vhdkitd */
  const char *path, *limit_id, *target;
  uint64_t offset, length;
  size_t max_ranges;
  bool all;
};

static void
reply_clear (struct reply *r)
{
  free (r->offsets);
  free (r->lengths);
  r->offsets = r->lengths = NULL;
  r->count = r->next = 0;
  r->processed = 0;
  r->valid = false;
}

/* Ask the service for [OFFSET, OFFSET+LENGTH) into R. */
static int
reply_fetch (const struct query *q, struct reply *r, uint64_t offset,
             uint64_t length)
{
  static const char method[] = "GetVirtualDiskChanges";
  json_t *out, *offs, *lens, *o, *l;
  json_int_t processed;
  size_t i, n;
  int st;

  reply_clear (r);
  st = remote_run (REMOTE_IMS, method,
                   json_pack ("{s:O, s:s, s:s?, s:I, s:I}", "Path", r->path,
                              "LimitId", q->limit_id, "TargetSnapshotId",
                              q->target, "ByteOffset", (json_int_t) offset,
                              "ByteLength", (json_int_t) length), 0, &out);
  if (st != 0)
    return st;
  st = remote_unpack (out, method, "{s:I, s:o, s:o}",
                      "ProcessedByteLength", &processed,
                      "ChangedByteOffsets", &offs,
                      "ChangedByteLengths", &lens);
  n = json_array_size (offs);
  if (st == 0 && (!json_is_array (offs) || !json_is_array (lens) ||
                  json_array_size (lens) != n || processed < 0))
    st = cli_error (VHDKIT_RC_FAILED, "%s: vhdkitd answered %s with "
                    "arrays of different lengths or a negative length",
                    q->path, method);
  if (st == 0 && n > 0 &&
      ((r->offsets = malloc (n * sizeof *r->offsets)) == NULL ||
       (r->lengths = malloc (n * sizeof *r->lengths)) == NULL))
    st = cli_error (VHDKIT_RC_OUT_OF_MEMORY, "out of memory");
  for (i = 0; st == 0 && i < n; i++) {
    o = json_array_get (offs, i);
    l = json_array_get (lens, i);
    if (!json_is_integer (o) || !json_is_integer (l) ||
        json_integer_value (o) < 0 || json_integer_value (l) < 0)
      st = cli_error (VHDKIT_RC_FAILED, "%s: vhdkitd answered %s with a "
                      "range that is not two non-negative integers",
                      q->path, method);
    else {
      r->offsets[i] = (uint64_t) json_integer_value (o);
      r->lengths[i] = (uint64_t) json_integer_value (l);
    }
  }
  json_decref (out);
  if (st != 0) {
    reply_clear (r);
    return st;
  }
  r->offset = offset;
  r->processed = (uint64_t) processed;
  r->count = n;
  r->valid = true;
  return 0;
}

/* One page of [OFFSET, OFFSET+LENGTH) from the service's reply, cut as
 * the library cuts pages.  The ranges stay R's. */
static int
reply_page (const struct query *q, struct reply *r, uint64_t offset,
            uint64_t length, struct vhdkit_changes *c)
{
  size_t cap = q->max_ranges ? q->max_ranges : VHDKIT_CHANGES_DEFAULT_MAX;
  bool fetched = false;
  int st;

  for (;;) {
    bool inside = r->valid && offset >= r->offset &&
      offset - r->offset <= r->processed;
    size_t avail = r->count - r->next;
    bool complete = inside &&
      r->offset + r->processed == offset + length;

    /* Ranges before OFFSET were served already; anything else means the
     * reply is not for this page. */
    if (inside && avail > 0 && r->offsets[r->next] < offset)
      inside = false;
    /* The library's page is full when one more range than CAP would
     * open: more than CAP are left, or CAP and the service stopped at
     * its own cap (it found more). */
    bool full = inside && (avail > cap || (avail == cap && !complete));
    if (full || (inside && complete)) {
      c->count = full ? cap : avail;
      c->offsets = r->offsets + r->next;
      c->lengths = r->lengths + r->next;
      c->kinds = NULL;
      /* A full page ends where its last range ends (§3.5). */
      c->processed = full
        ? c->offsets[cap - 1] + c->lengths[cap - 1] - offset : length;
      r->next += c->count;
      return 0;
    }
    if (fetched)                /* a fresh reply that covers too little */
      return cli_error (VHDKIT_RC_FAILED, "%s: vhdkitd answered "
                        "GetVirtualDiskChanges for less than the window "
                        "without filling a page", q->path);
    if ((st = reply_fetch (q, r, offset, length)) != 0)
      return st;
    fetched = true;
  }
}

/* One page, from the library or the service. */
static int
get_page (const struct query *q, uint64_t offset, uint64_t length,
          struct vhdkit_changes *c)
{
  if (q->remote)
    return reply_page (q, q->remote, offset, length, c);
  if (vhdkit_disk_get_changes (q->d, q->limit_id, q->target, offset, length,
                               q->max_ranges, c) == -1)
    return cli_lib_error ();
  return 0;
}

static void
release_page (const struct query *q, struct vhdkit_changes *c)
{
  if (q->remote)                /* its ranges are the reply's */
    memset (c, 0, sizeof *c);
  else
    vhdkit_changes_free (c);
}

/* Ask for the window page by page (one page unless --all), feeding the
 * ranges to O.  *PROCESSED is the total processed. */
static int
page_through (const struct query *q, struct output *o, uint64_t *processed,
              struct vhdkit_changes *first)
{
  uint64_t done = 0;
  int st;

  do {
    struct vhdkit_changes c = VHDKIT_CHANGES_INIT;

    if ((st = get_page (q, q->offset + done, q->length - done, &c)) != 0)
      return st;
    st = check_page (q->path, &c, q->offset + done, q->length - done,
                     q->max_ranges, o->kinds);
    if (st == 0 && first) {     /* one page, printed from its arrays */
      *first = c;
      *processed = c.processed;
      return 0;
    }
    if (st == 0)
      st = emit_page (o, &c);
    done += c.processed;
    release_page (q, &c);
    if (st != 0)
      return st;
  } while (q->all && done < q->length);
  *processed = done;
  return emit_last (o);
}

static int
query (const struct query *q, bool json, bool kinds)
{
  struct output o = { .kinds = kinds };
  struct vhdkit_changes page = VHDKIT_CHANGES_INIT;
  uint64_t processed = 0;
  int st;

  memset (&page, 0, sizeof page);
  if (json && q->all && (o.spool = open_spool (&o.spool_path)) == NULL)
    return CLI_EXIT_FAILURE;
  st = page_through (q, &o, &processed, json && !q->all ? &page : NULL);
  if (st == 0 && json) {
    struct source s = { q->all ? NULL : &page, &o };

    st = print_json (&s, processed, kinds);
  }
  if (st == 0)
    st = out_flush ();
  else
    out_len = 0;                /* an incomplete answer: drop what is left */
  if (st == 0 && !json && !q->all && processed < q->length) {
    fprintf (stderr, "vhdkit: %s: processed %" PRIu64 " of %" PRIu64
             " bytes; continue at offset %" PRIu64 "\n", cli_verb_name,
             processed, q->length, q->offset + processed);
  }
  release_page (q, &page);
  if (o.spool)
    fclose (o.spool);
  return st;
}

/* Check the window against the disk's SIZE, default its length, and
 * answer. */
static int
window_query (struct query *q, const struct cli_opt *opts, uint64_t size,
              bool kinds)
{
  if (!cli_given (opts, "length") && q->offset > size)
    return cli_error (VHDKIT_RC_INVALID_PARAMETER,
                      "%s: offset %" PRIu64 " is beyond the end of the disk "
                      "(%" PRIu64 " bytes)", q->path, q->offset, size);
  if (!cli_given (opts, "length"))
    q->length = size - q->offset;
  return query (q, cli_json, kinds);
}

static int
run_remote (struct query *q, const struct cli_opt *opts, bool kinds)
{
  struct reply r = { .path = NULL };
  json_int_t size;
  json_t *sd;
  int st;

  if (kinds)
    return remote_unsupported ("--kinds", "the service does not say how "
                               "each range was last changed");
  /* What the library refuses before it looks at the disk. */
  if (q->max_ranges > VHDKIT_CHANGES_MAX_CAP)
    return cli_error (VHDKIT_RC_OUT_OF_MEMORY, "%s: a cap of %zu ranges "
                      "would exceed the memory cap of %u ranges per call; "
                      "page with a smaller cap", q->path, q->max_ranges,
                      VHDKIT_CHANGES_MAX_CAP);
  if ((r.path = remote_path (q->path)) == NULL)
    return CLI_EXIT_FAILURE;
  st = remote_run (REMOTE_IMS, "GetVirtualHardDiskSettingData",
                   json_pack ("{s:O}", "Path", r.path), 0, &sd);
  if (st == 0) {
    st = remote_unpack (sd, "GetVirtualHardDiskSettingData", "{s:{s:I}}",
                        "SettingData", "MaxInternalSize", &size);
    json_decref (sd);
  }
  if (st == 0) {
    q->remote = &r;
    st = window_query (q, opts, (uint64_t) size, false);
  }
  reply_clear (&r);
  json_decref (r.path);
  return st;
}

static int
run (int argc, char **argv)
{
  struct vhdkit_disk_info info = VHDKIT_DISK_INFO_INIT;
  struct query q = { .limit_id = NULL };
  uint64_t max_ranges = 0;
  int all = 0, kinds = 0, r;
  char **ops;
  struct cli_opt opts[] = {
    CLI_ARG ("limit-id", CLI_OPT_STRING, &q.limit_id, "ID",
             "the RCT ID to compare with (required)"),
    CLI_ARG ("target-snapshot-id", CLI_OPT_STRING, &q.target, "ID",
             "compare with this snapshot instead of the current state "
             "(VHD Sets only)"),
    CLI_ARG ("offset", CLI_OPT_U64, &q.offset, "N",
             "start of the window (default 0)"),
    CLI_ARG ("length", CLI_OPT_U64, &q.length, "N",
             "length of the window (default: to the end of the disk)"),
    CLI_ARG ("max-ranges", CLI_OPT_U64, &max_ranges, "N",
             "at most N ranges per call (default and 0: 65536)"),
    CLI_FLAG ("all", &all, 1,
              "page through the whole window and print every range"),
    CLI_FLAG ("json", &cli_json, 1,
              "print the method's out-parameters as one JSON object"),
    CLI_FLAG ("kinds", &kinds, 1,
              "also say whether each range was last written with data "
              "or zeroed"),
    CLI_END,
  };

  r = cli_parse_args (&cli_verb_changes, opts, argc, argv, &ops);
  if (r != CLI_CONTINUE)
    return r;
  if (q.limit_id == NULL)
    return cli_usage ("--limit-id is required");
  if (max_ranges > SIZE_MAX)
    return cli_usage ("--max-ranges: value too large: '%" PRIu64 "'",
                      max_ranges);
  q.max_ranges = (size_t) max_ranges;
  q.all = all;
  q.path = ops[0];
  if (remote_socket ())
    return run_remote (&q, opts, kinds);

  q.d = vhdkit_disk_open (q.path, VHDKIT_OPEN_RDONLY);
  if (q.d == NULL)
    return cli_lib_error ();
  if (vhdkit_disk_get_size (q.d, &info.virtual_size, &info.logical_sector_size) == -1)
    r = cli_lib_error ();
  else
    r = window_query (&q, opts, info.virtual_size, kinds);
  if (vhdkit_disk_close (q.d) == -1 && r == CLI_EXIT_OK)
    r = cli_lib_error ();
  return r;
}

const struct cli_verb cli_verb_changes = {
  "changes", "PATH", 1,
  "--limit-id ID [--target-snapshot-id ID] [--offset N] [--length N] "
  "[--max-ranges N] [--all] [--json] [--kinds]",
  "List the byte ranges changed since a reference point", run,
};
