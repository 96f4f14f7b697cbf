/* vhdkit check: validate an image and its parent chain without changing
 * anything.  Text mode prints one "PATH: problem" line per problem as the
 * library finds it (a problem that already begins with "PATH: " is not
 * prefixed twice; one that names a parent keeps both names).  JSON mode
 * collects the problems and prints one object at the end.
 * Exit status 0 = sound, 1 = problems found or not checkable.
 *
 * --repair first opens the image read-write once: that replays a pending
 * VHDX log into the file and flushes (what a crash leaves behind).  It
 * mends nothing else; the check that follows says what remains.
 *
 * Through vhdkitd it is ValidateVirtualHardDisk: a sound image prints
 * what it prints here; a job that fails (problems found, or not
 * checkable) is reported as the service's error, which names the number
 * of problems and the first one.  --repair is not available there.
 */
#include <stdlib.h>
#include <string.h>

#include "vhdkit.h"
#include "cli.h"
#include "remote.h"

struct problems {
  const char *path;
  size_t path_len;
  FILE *json;                   /* the JSON array's items, or NULL */
  size_t count;
};

static void
report (void *opaque, const char *problem)
{
  struct problems *pr = opaque;

  if (pr->json) {
    fputs (pr->count ? ",\n    " : "\n    ", pr->json);
    cli_json_string (pr->json, problem);
  }
  else if (strncmp (problem, pr->path, pr->path_len) == 0 &&
           strncmp (problem + pr->path_len, ": ", 2) == 0)
    printf ("%s\n", problem);   /* it names PATH already */
  else
    printf ("%s: %s\n", pr->path, problem);
  pr->count++;
}

/* --json: the result; ITEMS holds COUNT problems already as JSON. */
static void
print_json (const char *path, bool valid, const char *items, size_t count)
{
  printf ("{\n  \"Path\": ");
  cli_json_string (stdout, path);
  printf (",\n  \"Valid\": %s,\n  \"Problems\": [%s%s]\n}\n",
          valid ? "true" : "false", items, count ? "\n  " : "");
}

static int
run_remote (const char *path, int repair)
{
  json_t *p, *out;

  if (repair)
    return remote_unsupported ("--repair", "the service checks without "
                               "changing anything; run 'vhdkit check "
                               "--repair' without --connect once vhdkitd "
                               "has closed the image");
  if ((p = remote_path (path)) == NULL)
    return CLI_EXIT_FAILURE;
  if (remote_run (REMOTE_IMS, "ValidateVirtualHardDisk",
                  json_pack ("{s:o}", "Path", p), 0, &out) != CLI_EXIT_OK)
    return CLI_EXIT_FAILURE;
  json_decref (out);
  if (cli_json)
    print_json (path, true, "", 0);
  return CLI_EXIT_OK;
}

static int
run (int argc, char **argv)
{
  struct problems pr = { NULL, 0, NULL, 0 };
  char **ops, *items = NULL;
  size_t items_len = 0;
  int r, status, repair = 0;
  struct cli_opt opts[] = {
    CLI_FLAG ("json", &cli_json, 1,
              "print {\"Path\", \"Valid\", \"Problems\"} as one JSON object"),
    CLI_FLAG ("repair", &repair, 1,
              "first replay a pending log into the file"),
    CLI_END,
  };

  r = cli_parse_args (&cli_verb_check, opts, argc, argv, &ops);
  if (r != CLI_CONTINUE)
    return r;
  if (remote_socket ())
    return run_remote (ops[0], repair);
  pr.path = ops[0];
  pr.path_len = strlen (pr.path);
  if (repair) {
    struct vhdkit_disk *d = vhdkit_disk_open (pr.path, VHDKIT_OPEN_RDWR);

    if (d == NULL || vhdkit_disk_close (d) == -1)
      return cli_lib_error ();
  }
  if (cli_json && (pr.json = open_memstream (&items, &items_len)) == NULL)
    return cli_error (VHDKIT_RC_OUT_OF_MEMORY, "%s: out of memory", pr.path);

  r = vhdkit_check (pr.path, report, &pr);
  if (pr.json && fclose (pr.json) == EOF) {
    free (items);
    items = NULL;
  }
  if (r == -1)
    status = cli_lib_error ();
  else if (cli_json && items == NULL)
    status = cli_error (VHDKIT_RC_OUT_OF_MEMORY, "%s: out of memory",
                        pr.path);
  else {
    if (cli_json)
      print_json (pr.path, r == 0, items, pr.count);
    status = r == 0 ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
  }
  free (items);
  return status;
}

const struct cli_verb cli_verb_check = {
  "check", "PATH", 1, "[--json] [--repair]",
  "Validate an image and its parent chain", run,
};
