/* vhdkit CLI: what the verb files share.
 *
 * Each verb lives in its own file and exports one struct cli_verb; main.c
 * dispatches on argv[1].  A verb declares its options as a table of
 * struct cli_opt (name, kind, where the value goes, help text) and
 * cli_parse_args turns argv into values, so that option syntax, number
 * parsing, --help and usage errors behave the same in every verb.
 *
 * Exit statuses: 0 success, 1 failure, 2 usage error.
 */
#ifndef VHDKIT_CLI_H
#define VHDKIT_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <signal.h>

#define CLI_EXIT_OK       0
#define CLI_EXIT_FAILURE  1
#define CLI_EXIT_USAGE    2
#define CLI_CONTINUE    (-1)   /* cli_parse_args: run the verb */

/* Bulk data moves in chunks of this size, aligned to it on the disk. */
#define CLI_CHUNK (UINT32_C(4) << 20)

struct cli_verb {
  const char *name;
  const char *operands;         /* "PATH", "SRC DST" */
  int noperands;
  const char *synopsis;         /* the rest of the usage line */
  const char *summary;
  int (*run) (int argc, char **argv);   /* argv[0] is the verb */
};

extern const struct cli_verb cli_verb_create, cli_verb_info, cli_verb_check,
  cli_verb_read, cli_verb_write, cli_verb_convert, cli_verb_resize,
  cli_verb_merge, cli_verb_rct, cli_verb_changes, cli_verb_set;

/* The verb being run (for messages) and whether it speaks JSON. */
extern const char *cli_verb_name;
extern int cli_json;

/* The operands cli_parse_args found (for the "held by vhdkitd" hint). */
extern char **cli_operands;
extern int cli_noperands;

/* ---- Options ---- */
enum cli_opt_kind {
  CLI_OPT_SET,       /* no argument: stores .value in an int */
  CLI_OPT_STRING,    /* const char * */
  CLI_OPT_U64,       /* uint64_t, see cli_parse_number */
  CLI_OPT_U32,       /* uint32_t, see cli_parse_number */
  CLI_OPT_CHOICE,    /* int: the .value of the matching .choices entry */
};

struct cli_choice {
  const char *name;
  int value;
};

struct cli_opt {
  const char *name;             /* long name without "--"; NULL ends a table */
  enum cli_opt_kind kind;
  void *target;
  const char *metavar;          /* shown in --help; NULL for CLI_OPT_SET */
  const char *help;
  int value;                    /* CLI_OPT_SET */
  const struct cli_choice *choices;  /* CLI_OPT_CHOICE, NULL-terminated */
  bool given;                   /* set by cli_parse_args */
};

/* Table entries. */
#define CLI_ARG(name_, kind_, target_, metavar_, help_)                 \
  { .name = (name_), .kind = (kind_), .target = (target_),              \
    .metavar = (metavar_), .help = (help_) }
#define CLI_FLAG(name_, target_, value_, help_)                         \
  { .name = (name_), .kind = CLI_OPT_SET, .target = (target_),          \
    .value = (value_), .help = (help_) }
#define CLI_CHOICE(name_, target_, choices_, metavar_, help_)           \
  { .name = (name_), .kind = CLI_OPT_CHOICE, .target = (target_),       \
    .choices = (choices_), .metavar = (metavar_), .help = (help_) }
#define CLI_END { .name = NULL }

extern const struct cli_choice cli_format_choices[];
extern const struct cli_choice cli_create_type_choices[];
extern const struct cli_choice cli_convert_type_choices[];

/* Options shared by the verbs that make an image (create, convert). */
#define CLI_OPTS_LAYOUT(p)                                              \
  CLI_CHOICE ("format", &(p)->format, cli_format_choices, "vhdx|raw",   \
              "default: vhdx for *.vhdx and *.avhdx, else raw"),        \
  CLI_ARG ("block-size", CLI_OPT_U32, &(p)->block_size, "SIZE",         \
           "VHDX block size: a power of two, 1M to 256M"),              \
  CLI_ARG ("logical-sector-size", CLI_OPT_U32,                          \
           &(p)->logical_sector_size, "N",                              \
           "logical sector size: 512 or 4096"),                         \
  CLI_ARG ("physical-sector-size", CLI_OPT_U32,                         \
           &(p)->physical_sector_size, "N",                             \
           "physical sector size: 512 or 4096")

/* --progress / --no-progress; MODE is an int initialised to -1 (auto). */
#define CLI_OPTS_PROGRESS(mode)                                         \
  CLI_FLAG ("progress", (mode), 1, "always show a progress bar on stderr"), \
  CLI_FLAG ("no-progress", (mode), 0, "never show a progress bar")

/* Parse ARGC/ARGV against OPTS (plus -h/--help and --connect SOCKET,
 * which every verb takes: see remote.h).  Returns CLI_CONTINUE
 * with *OPERANDS pointing at exactly VERB->noperands operands, or the
 * exit status to return: 0 after --help, 2 after a usage error (already
 * printed). */
int cli_parse_args (const struct cli_verb *verb, struct cli_opt *opts,
                    int argc, char **argv, char ***operands);

/* Whether the option NAME of OPTS appeared on the command line. */
bool cli_given (const struct cli_opt *opts, const char *name);

/* Parse a number: decimal, or hexadecimal with 0x; a decimal number may
 * carry a binary unit K, M, G, T, P or E (optionally followed by "iB" or
 * "B": 64TiB, 512K, 10G).  Rejects signs, spaces, trailing junk and
 * values above MAX.  Returns 0, or -1 with errno EINVAL or ERANGE. */
int cli_parse_number (const char *s, uint64_t max, uint64_t *out);

/* ---- Messages ---- */

/* "vhdkit: VERB: WHAT" and "Try 'vhdkit VERB --help'." on stderr.
 * Returns CLI_EXIT_USAGE. */
int cli_usage (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

/* "vhdkit: VERB: NAME (CODE): SENTENCE" on stderr, and in --json mode
 * {"ReturnValue":CODE,"ErrorDescription":SENTENCE} on stdout.
 * Both return CLI_EXIT_FAILURE.  cli_lib_error reports the library's
 * last error; when that is 32774 (in use) and a vhdkitd holds one of
 * the operands open, the sentence ends by naming its socket. */
int cli_error (uint32_t code, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));
int cli_lib_error (void);

/* "vhdkit: VERB: warning: ..." on stderr. */
void cli_warning (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

/* Report a failed write to stdout (errno says why; EPIPE is quiet).
 * Returns CLI_EXIT_FAILURE. */
int cli_stdout_error (void);

/* Flush and close stdout; 0, or CLI_EXIT_FAILURE after reporting. */
int cli_finish_stdout (void);

/* S as a JSON string (quoted, escaped; invalid UTF-8 becomes U+FFFD). */
void cli_json_string (FILE *fp, const char *s);

/* ---- Bulk I/O ---- */

/* Bytes to move next at OFFSET: up to REMAINING, ending at the next
 * CLI_CHUNK boundary so that later chunks are aligned. */
size_t cli_chunk_len (uint64_t offset, uint64_t remaining);

/* ---- Progress ----
 * A bar on stderr redrawn at most ten times a second.  While it is
 * active, SIGINT and SIGTERM cancel the operation cleanly (the library
 * is asked to stop at its next progress call); a second signal kills. */
struct cli_progress {
  bool draw;
  bool drawn;
  struct timespec start, last;
  struct sigaction old_int, old_term;
};

/* MODE: 1 always draw, 0 never, -1 when stderr is a terminal. */
void cli_progress_begin (struct cli_progress *p, int mode);
/* A vhdkit_progress_fn; OPAQUE is the struct cli_progress. */
int cli_progress_update (void *opaque, uint64_t done, uint64_t total);
/* The same bar from a percentage alone (a job of vhdkitd: no rate).
 * Non-zero once SIGINT or SIGTERM arrived. */
int cli_progress_percent (struct cli_progress *p, unsigned pct);
void cli_progress_end (struct cli_progress *p);


/* A property for `info`-style output: aligned "Name: value" lines, or
 * one JSON object with the same keys.  WHERE selects the output(s);
 * a STR field with a NULL value prints as empty text and JSON null. */
enum { CLI_TEXT = 1, CLI_JSON = 2, CLI_BOTH = 3 };
enum cli_field_kind { CLI_STR, CLI_NUM, CLI_BOOL };
struct cli_field {
  const char *name;
  int where;
  enum cli_field_kind kind;
  const char *str;
  uint64_t num;
};
void cli_print_fields (const struct cli_field *f, size_t n, bool json);

#endif /* VHDKIT_CLI_H */
