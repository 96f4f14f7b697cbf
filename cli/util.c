/* vhdkit CLI: helpers shared by the verbs — option parsing from a table,
 * number and size parsing, error and usage messages, JSON strings, the
 * progress bar.  Everything here runs on the main thread only.
 */
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vhdkit.h"
#include "cli.h"
#include "remote.h"

const char *cli_verb_name;
int cli_json;
char **cli_operands;
int cli_noperands;

const struct cli_choice cli_format_choices[] = {
  { "vhdx", VHDKIT_FORMAT_VHDX }, { "raw", VHDKIT_FORMAT_RAW }, { NULL, 0 },
};
const struct cli_choice cli_create_type_choices[] = {
  { "fixed", VHDKIT_TYPE_FIXED }, { "dynamic", VHDKIT_TYPE_DYNAMIC },
  { "differencing", VHDKIT_TYPE_DIFFERENCING }, { NULL, 0 },
};
const struct cli_choice cli_convert_type_choices[] = {
  { "fixed", VHDKIT_TYPE_FIXED }, { "dynamic", VHDKIT_TYPE_DYNAMIC },
  { NULL, 0 },
};

/* ---- Numbers ---- */

int
cli_parse_number (const char *s, uint64_t max, uint64_t *out)
{
  static const char units[] = "KMGTPE";
  bool hex = s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
  unsigned long long v;
  unsigned shift = 0;
  char *end;

  /* strtoull would accept leading spaces, signs and a second "0x". */
  if (!isdigit ((unsigned char) s[0]) ||
      (hex && !isxdigit ((unsigned char) s[2])))
    goto invalid;
  errno = 0;
  v = strtoull (s, &end, hex ? 16 : 10);
  if (errno == ERANGE)
    goto range;
  if (*end != '\0') {
    const char *u = strchr (units, toupper ((unsigned char) *end));
    if (hex)
      goto invalid;
    if (u != NULL) {
      shift = 10 * (unsigned) (u - units + 1);
      end++;
    }
    if (shift && end[0] == 'i' && end[1] == 'B')
      end += 2;
    else if (end[0] == 'B')
      end++;
    if (*end != '\0')
      goto invalid;
  }
  if (v > (max >> shift))
    goto range;
  *out = (uint64_t) v << shift;
  return 0;

 invalid:
  errno = EINVAL;
  return -1;
 range:
  errno = ERANGE;
  return -1;
}

/* ---- Options ---- */

#define MAX_OPTS 32
#define OPT_BASE 256            /* getopt values: OPT_BASE + table index */
#define OPT_CONNECT 'C'         /* --connect, taken by every verb */
#define HELP_COLUMN 24

static void
print_help (const struct cli_verb *verb, const struct cli_opt *opts)
{
  const struct cli_opt *o;
  char left[64];

  printf ("Usage: vhdkit %s %s %s\n%s.\n\nOptions:\n",
          verb->name, verb->operands, verb->synopsis, verb->summary);
  for (o = opts; o->name; o++) {
    if (o->metavar)
      snprintf (left, sizeof left, "--%s=%s", o->name, o->metavar);
    else
      snprintf (left, sizeof left, "--%s", o->name);
    if (strlen (left) > HELP_COLUMN)      /* help on a line of its own */
      printf ("  %s\n  %-*s %s\n", left, HELP_COLUMN, "", o->help);
    else
      printf ("  %-*s %s\n", HELP_COLUMN, left, o->help);
  }
  printf ("  %-*s %s\n", HELP_COLUMN, "--connect=SOCKET",
          "call vhdkitd on SOCKET instead of opening files");
  printf ("  %-*s %s\n", HELP_COLUMN, "-h, --help", "show this help and exit");
}

static int
store (struct cli_opt *o, const char *arg)
{
  const struct cli_choice *c;
  uint64_t v;

  switch (o->kind) {
  case CLI_OPT_SET:
    *(int *) o->target = o->value;
    return 0;
  case CLI_OPT_STRING:
    *(const char **) o->target = arg;
    return 0;
  case CLI_OPT_U64:
  case CLI_OPT_U32:
    if (cli_parse_number (arg, o->kind == CLI_OPT_U32 ? UINT32_MAX
                          : UINT64_MAX, &v) == -1)
      return cli_usage ("--%s: %s: '%s'", o->name,
                        errno == ERANGE ? "value too large" : "invalid number",
                        arg);
    if (o->kind == CLI_OPT_U32)
      *(uint32_t *) o->target = (uint32_t) v;
    else
      *(uint64_t *) o->target = v;
    return 0;
  case CLI_OPT_CHOICE:
    for (c = o->choices; c->name; c++) {
      if (strcmp (c->name, arg) == 0) {
        *(int *) o->target = c->value;
        return 0;
      }
    }
    return cli_usage ("--%s: invalid value '%s' (expected %s)",
                      o->name, arg, o->metavar);
  }
  abort ();
}

int
cli_parse_args (const struct cli_verb *verb, struct cli_opt *opts,
                int argc, char **argv, char ***operands)
{
  struct option longopts[MAX_OPTS + 3];
  size_t n;
  int c, nops;

  for (n = 0; opts[n].name; n++) {
    assert (n < MAX_OPTS);
    longopts[n] = (struct option) {
      opts[n].name,
      opts[n].kind == CLI_OPT_SET ? no_argument : required_argument,
      NULL, OPT_BASE + (int) n
    };
  }
  longopts[n++] = (struct option) { "help", no_argument, NULL, 'h' };
  longopts[n++] = (struct option) { "connect", required_argument, NULL,
                                    OPT_CONNECT };
  longopts[n] = (struct option) { NULL, 0, NULL, 0 };

  opterr = 0;                   /* our messages, not getopt's */
  optind = 1;
  while ((c = getopt_long (argc, argv, ":h", longopts, NULL)) != -1) {
    if (c == 'h') {
      print_help (verb, opts);
      return CLI_EXIT_OK;
    }
    if (c == ':')
      return cli_usage ("option '%s' requires an argument", argv[optind - 1]);
    if (c == OPT_CONNECT) {
      if (*optarg == '\0')
        return cli_usage ("--connect needs the path of vhdkitd's socket");
      remote_set_socket (optarg);
      continue;
    }
    if (c == '?') {
      if (optopt >= OPT_BASE)
        return cli_usage ("option '--%s' does not take an argument",
                          opts[optopt - OPT_BASE].name);
      if (optopt != 0)
        return cli_usage ("invalid option -- '%c'", optopt);
      return cli_usage ("unrecognized option '%s'", argv[optind - 1]);
    }
    if (store (&opts[c - OPT_BASE], optarg) != 0)
      return CLI_EXIT_USAGE;
    opts[c - OPT_BASE].given = true;
  }

  nops = argc - optind;
  if (nops < verb->noperands)
    return cli_usage ("missing operand (expected %s)", verb->operands);
  if (nops > verb->noperands)
    return cli_usage ("unexpected operand '%s'",
                      argv[optind + verb->noperands]);
  *operands = &argv[optind];
  cli_operands = *operands;
  cli_noperands = verb->noperands;
  return CLI_CONTINUE;
}

bool
cli_given (const struct cli_opt *opts, const char *name)
{
  for (; opts->name; opts++) {
    if (strcmp (opts->name, name) == 0)
      return opts->given;
  }
  abort ();                     /* a typo in a verb */
}

/* ---- Messages ---- */

/* "vhdkit: VERB: " on stderr (no VERB outside one). */
static void
begin_message (void)
{
  fprintf (stderr, "vhdkit: ");
  if (cli_verb_name)
    fprintf (stderr, "%s: ", cli_verb_name);
}

static void
vmessage (const char *prefix, const char *fmt, va_list ap)
{
  begin_message ();
  fputs (prefix, stderr);
  vfprintf (stderr, fmt, ap);
  fputc ('\n', stderr);
}

int
cli_usage (const char *fmt, ...)
{
  va_list ap;

  va_start (ap, fmt);
  vmessage ("", fmt, ap);
  va_end (ap);
  if (cli_verb_name)
    fprintf (stderr, "Try 'vhdkit %s --help'.\n", cli_verb_name);
  else
    fprintf (stderr, "Try 'vhdkit --help'.\n");
  return CLI_EXIT_USAGE;
}

void
cli_warning (const char *fmt, ...)
{
  va_list ap;

  va_start (ap, fmt);
  vmessage ("warning: ", fmt, ap);
  va_end (ap);
}

static int
report (uint32_t code, const char *sentence)
{
  const char *name = vhdkit_rc_name (code);

  begin_message ();
  fprintf (stderr, "%s (%" PRIu32 "): %s\n",
           name ? name : "Unknown error", code, sentence);
  if (cli_json) {
    printf ("{\"ReturnValue\":%" PRIu32 ",\"ErrorDescription\":", code);
    cli_json_string (stdout, sentence);
    printf ("}\n");
  }
  return CLI_EXIT_FAILURE;
}

int
cli_error (uint32_t code, const char *fmt, ...)
{
  va_list ap;
  char *s;
  int r;

  va_start (ap, fmt);
  r = vasprintf (&s, fmt, ap);
  va_end (ap);
  if (r == -1)
    return report (code, fmt);
  report (code, s);
  free (s);
  return CLI_EXIT_FAILURE;
}

int
cli_lib_error (void)
{
  const char *s = vhdkit_get_error ();
  uint32_t code = vhdkit_get_error_code ();
  char *copy, *socket;
  int r;

  if (code != VHDKIT_RC_IN_USE)
    /* A failure never reads "Completed with No Error". */
    return report (code != VHDKIT_RC_OK ? code : VHDKIT_RC_FAILED,
                   s && *s ? s : "unknown error");

  /* In use: perhaps by the service, which the user can go through.
   * Copy the sentence first: asking the service may replace it. */
  copy = strdup (s && *s ? s : "the image is in use");
  if (copy == NULL)
    return report (code, "the image is in use");
  socket = remote_holder (cli_operands, cli_noperands);
  if (socket)
    r = cli_error (code, "%s; it is held by vhdkitd: use --connect %s",
                   copy, socket);
  else
    r = report (code, copy);
  free (socket);
  free (copy);
  return r;
}

int
cli_stdout_error (void)
{
  cli_json = 0;                 /* stdout is no place for the report */
  if (errno == EPIPE)           /* the reader went away: not worth a word */
    return CLI_EXIT_FAILURE;
  return cli_error (VHDKIT_RC_FAILED, "write error on standard output%s%s",
                    errno ? ": " : "", errno ? strerror (errno) : "");
}

int
cli_finish_stdout (void)
{
  errno = 0;
  if (fflush (stdout) == EOF || ferror (stdout)) {
    int e = errno;
    fclose (stdout);
    errno = e;
    return cli_stdout_error ();
  }
  if (fclose (stdout) == EOF)
    return cli_stdout_error ();
  return 0;
}

/* Length of the valid UTF-8 sequence at P (1 to 4), or 0 if invalid. */
static size_t
utf8_len (const unsigned char *p)
{
  uint32_t cp;
  size_t n, i;

  if (p[0] < 0x80)
    return 1;
  if (p[0] >= 0xc2 && p[0] <= 0xdf)
    n = 2, cp = p[0] & 0x1f;
  else if (p[0] >= 0xe0 && p[0] <= 0xef)
    n = 3, cp = p[0] & 0x0f;
  else if (p[0] >= 0xf0 && p[0] <= 0xf4)
    n = 4, cp = p[0] & 0x07;
  else
    return 0;
  for (i = 1; i < n; i++) {     /* stops at the NUL: it is no continuation */
    if ((p[i] & 0xc0) != 0x80)
      return 0;
    cp = cp << 6 | (p[i] & 0x3f);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
      (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return n;
}

void
cli_json_string (FILE *fp, const char *s)
{
  const unsigned char *p = (const unsigned char *) s;
  size_t n;

  fputc ('"', fp);
  while (*p) {
    n = utf8_len (p);
    if (n == 0) {
      fputs ("\\ufffd", fp);
      n = 1;
    }
    else if (n > 1)
      fwrite (p, 1, n, fp);
    else if (*p == '"' || *p == '\\')
      fprintf (fp, "\\%c", *p);
    else if (*p == '\n')
      fputs ("\\n", fp);
    else if (*p == '\t')
      fputs ("\\t", fp);
    else if (*p < 0x20 || *p == 0x7f)
      fprintf (fp, "\\u%04x", *p);
    else
      fputc (*p, fp);
    p += n;
  }
  fputc ('"', fp);
}

/* ---- Bulk I/O ---- */

size_t
cli_chunk_len (uint64_t offset, uint64_t remaining)
{
  uint64_t n = CLI_CHUNK - offset % CLI_CHUNK;

  return (size_t) (n < remaining ? n : remaining);
}

/* ---- Progress ---- */

#define BAR_WIDTH 30
#define REDRAW_NS 100000000     /* 0.1 s */

static volatile sig_atomic_t interrupted;

static void
on_signal (int sig)
{
  (void) sig;
  interrupted = 1;
}

static double
seconds (const struct timespec *a, const struct timespec *b)
{
  return (double) (b->tv_sec - a->tv_sec) + (b->tv_nsec - a->tv_nsec) / 1e9;
}

/* Catch SIG unless it is ignored (nohup, background jobs); keep the old
 * action in *OLD. */
static void
catch (int sig, struct sigaction *old)
{
  struct sigaction sa;

  memset (&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset (&sa.sa_mask);
  sa.sa_flags = SA_RESETHAND | SA_RESTART;   /* a second signal kills */
  sigaction (sig, &sa, old);
  if (old->sa_handler == SIG_IGN)
    sigaction (sig, old, NULL);
}

void
cli_progress_begin (struct cli_progress *p, int mode)
{
  memset (p, 0, sizeof *p);
  p->draw = mode == -1 ? isatty (STDERR_FILENO) : mode;
  clock_gettime (CLOCK_MONOTONIC, &p->start);
  interrupted = 0;
  catch (SIGINT, &p->old_int);
  catch (SIGTERM, &p->old_term);
}

/* Draw PCT (0 to 100) and, unless BYTES is negative, the rate of
 * BYTES done so far; at most ten times a second unless FINAL. */
static void
draw (struct cli_progress *p, double pct, double bytes, bool final)
{
  static const char hashes[BAR_WIDTH + 1] = "##############################";
  struct timespec now;
  double secs;
  int fill;

  clock_gettime (CLOCK_MONOTONIC, &now);
  if (p->drawn && !final && seconds (&p->last, &now) < REDRAW_NS / 1e9)
    return;
  p->last = now;
  p->drawn = true;
  if (pct > 100.0)
    pct = 100.0;
  fill = (int) (pct * BAR_WIDTH / 100.0);
  fprintf (stderr, "\r[%.*s%*s] %3d%%", fill, hashes, BAR_WIDTH - fill, "",
           (int) pct);
  if (bytes >= 0) {
    secs = seconds (&p->start, &now);
    fprintf (stderr, " %8.1f MiB/s",
             secs > 0 ? bytes / 1048576.0 / secs : 0.0);
  }
}

int
cli_progress_update (void *opaque, uint64_t done, uint64_t total)
{
  struct cli_progress *p = opaque;

  if (interrupted)
    return 1;
  if (p->draw)
    draw (p, total ? 100.0 * (double) done / (double) total : 0.0,
          (double) done, done >= total);
  return 0;
}

int
cli_progress_percent (struct cli_progress *p, unsigned pct)
{
  if (p->draw)
    draw (p, pct, -1, pct >= 100);
  return interrupted != 0;
}

void
cli_progress_end (struct cli_progress *p)
{
  if (p->drawn)
    fputs ("\r\033[K", stderr);
  sigaction (SIGINT, &p->old_int, NULL);
  sigaction (SIGTERM, &p->old_term, NULL);
}

void
cli_print_fields (const struct cli_field *f, size_t n, bool json)
{
  size_t width = 0;
  const char *sep = "{\n";
  int want = json ? CLI_JSON : CLI_TEXT;

  for (size_t i = 0; i < n; i++)
    if ((f[i].where & want) && strlen (f[i].name) > width)
      width = strlen (f[i].name);
  for (size_t i = 0; i < n; i++) {
    if (!(f[i].where & want))
      continue;
    if (json) {
      printf ("%s  ", sep);
      cli_json_string (stdout, f[i].name);
      printf (": ");
      if (f[i].kind == CLI_STR && f[i].str == NULL)
        printf ("null");
      else if (f[i].kind == CLI_STR)
        cli_json_string (stdout, f[i].str);
      else if (f[i].kind == CLI_NUM)
        printf ("%" PRIu64, f[i].num);
      else
        printf ("%s", f[i].num ? "true" : "false");
      sep = ",\n";
      continue;
    }
    int pad = (int) (width - strlen (f[i].name)) + 1;
    if (f[i].kind == CLI_STR && (f[i].str == NULL || *f[i].str == '\0'))
      printf ("%s:\n", f[i].name);
    else if (f[i].kind == CLI_STR)
      printf ("%s:%*s%s\n", f[i].name, pad, "", f[i].str);
    else if (f[i].kind == CLI_NUM)
      printf ("%s:%*s%" PRIu64 "\n", f[i].name, pad, "", f[i].num);
    else
      printf ("%s:%*s%s\n", f[i].name, pad, "", f[i].num ? "true" : "false");
  }
  if (json)
    printf ("\n}\n");
}
