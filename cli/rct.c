/* vhdkit rct: resilient change tracking on one image.  One verb with
 * sub-verbs (enable, disable, status, checkpoint), each a struct
 * cli_verb of its own named "rct SUB", so that --help, usage errors and
 * failures read "vhdkit rct SUB: ..." and point at the right --help.
 *
 * The verbs that change tracking state open the image read-write (which
 * takes the image's exclusive lock: a second writer gets 32774) and
 * treat a failed close as a failure, since closing is what makes the
 * last state durable.  checkpoint prints the new RCT ID only once the
 * image is closed, so a script never records an ID whose reference
 * point might not have reached the disk.
 *
 * Through vhdkitd: enable and disable are SetChangeTracking (after
 * GetChangeTrackingState, so that they refuse what the library refuses),
 * status is GetChangeTrackingState, checkpoint CreateReferencePoint.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "vhdkit.h"
#include "cli.h"
#include "remote.h"

/* Close D; a failure there fails a command that had succeeded. */
static int
close_disk (struct vhdkit_disk *d, int r)
{
  if (vhdkit_disk_close (d) == -1 && r == CLI_EXIT_OK)
    r = cli_lib_error ();
  return r;
}

/* ---- through vhdkitd ---- */

/* GetChangeTrackingState of the image P (a JSON path) into *ST. */
static int
remote_status (json_t *p, struct vhdkit_rct_status *st)
{
  const char *id, *epoch, *problem;
  json_int_t granularity, generation;
  int enabled, newer, recovered, r;
  json_t *out;

  if (remote_run (REMOTE_CTS, "GetChangeTrackingState",
                  json_pack ("{s:O}", "Path", p), 0, &out) != CLI_EXIT_OK)
    return CLI_EXIT_FAILURE;
  r = remote_unpack (out, "GetChangeTrackingState",
                     "{s:b, s:b, s:s, s:I, s:s, s:I, s:b, s:s}",
                     "Enabled", &enabled, "NewerChanges", &newer,
                     "MostRecentId", &id, "Granularity", &granularity,
                     "Epoch", &epoch, "Generation", &generation,
                     "Recovered", &recovered, "Problem", &problem);
  if (r == CLI_EXIT_OK) {
    st->enabled = enabled;
    st->newer_changes = newer;
    snprintf (st->most_recent_id, sizeof st->most_recent_id, "%s", id);
    st->granularity = (uint32_t) granularity;
    snprintf (st->epoch, sizeof st->epoch, "%s", epoch);
    st->generation = (uint32_t) generation;
    st->recovered = recovered;
    snprintf (st->problem, sizeof st->problem, "%s", problem);
  }
  json_decref (out);
  return r;
}

/* rct enable (ENABLE) or disable of PATH. */
static int
remote_set_tracking (const char *path, bool enable, uint32_t granularity)
{
  struct vhdkit_rct_status st = VHDKIT_RCT_STATUS_INIT;
  json_t *p = remote_path (path), *out;
  int r;

  if (p == NULL)
    return CLI_EXIT_FAILURE;
  r = remote_status (p, &st);
  if (r == CLI_EXIT_OK && enable && st.enabled)
    r = cli_error (VHDKIT_RC_INVALID_STATE, "%s: change tracking is "
                   "already enabled", path);
  else if (r == CLI_EXIT_OK && !enable && !st.enabled)
    r = cli_error (VHDKIT_RC_INVALID_STATE, "%s: change tracking is not "
                   "enabled", path);
  else if (r == CLI_EXIT_OK) {
    r = remote_run (REMOTE_CTS, "SetChangeTracking",
                    json_pack ("{s:O, s:b, s:I}", "Path", p, "Enabled",
                               enable, "Granularity",
                               (json_int_t) granularity), 0, &out);
    if (r == CLI_EXIT_OK)
      json_decref (out);
  }
  json_decref (p);
  return r;
}

/* ---- rct enable ---- */

static const struct cli_verb verb_enable;

static int
run_enable (int argc, char **argv)
{
  struct vhdkit_disk *d;
  uint32_t granularity = 0;
  char **ops;
  int r;
  struct cli_opt opts[] = {
    CLI_ARG ("granularity", CLI_OPT_U32, &granularity, "SIZE",
             "a power of two from the logical sector size to 2M "
             "(default and 0: 64K)"),
    CLI_END,
  };

  r = cli_parse_args (&verb_enable, opts, argc, argv, &ops);
  if (r != CLI_CONTINUE)
    return r;
  if (remote_socket ())
    return remote_set_tracking (ops[0], true, granularity);

  d = vhdkit_disk_open (ops[0], VHDKIT_OPEN_RDWR);
  if (d == NULL)
    return cli_lib_error ();
  r = vhdkit_rct_enable (d, granularity) == -1 ? cli_lib_error ()
    : CLI_EXIT_OK;
  return close_disk (d, r);
}

static const struct cli_verb verb_enable = {
  "rct enable", "PATH", 1, "[--granularity SIZE]",
  "Start tracking changes to an image", run_enable,
};

/* ---- rct disable ---- */

static const struct cli_verb verb_disable;

static int
run_disable (int argc, char **argv)
{
  struct vhdkit_disk *d;
  char **ops;
  int r;
  struct cli_opt opts[] = { CLI_END };

  r = cli_parse_args (&verb_disable, opts, argc, argv, &ops);
  if (r != CLI_CONTINUE)
    return r;
  if (remote_socket ())
    return remote_set_tracking (ops[0], false, 0);

  d = vhdkit_disk_open (ops[0], VHDKIT_OPEN_RDWR);
  if (d == NULL)
    return cli_lib_error ();
  r = vhdkit_rct_disable (d) == -1 ? cli_lib_error () : CLI_EXIT_OK;
  return close_disk (d, r);
}

static const struct cli_verb verb_disable = {
  "rct disable", "PATH", 1, "",
  "Stop tracking and delete the tracking files (every RCT ID becomes "
  "invalid)", run_disable,
};

/* ---- rct status ---- */

static const struct cli_verb verb_status;

static int
run_status (int argc, char **argv)
{
  struct vhdkit_rct_status st = VHDKIT_RCT_STATUS_INIT;
  struct vhdkit_disk *d;
  char **ops;
  int r;
  struct cli_opt opts[] = {
    CLI_FLAG ("json", &cli_json, 1, "print one JSON object"),
    CLI_END,
  };

  r = cli_parse_args (&verb_status, opts, argc, argv, &ops);
  if (r != CLI_CONTINUE)
    return r;

  if (remote_socket ()) {
    json_t *p = remote_path (ops[0]);

    if (p == NULL)
      return CLI_EXIT_FAILURE;
    r = remote_status (p, &st);
    json_decref (p);
    if (r != CLI_EXIT_OK)
      return r;
  }
  else {
    d = vhdkit_disk_open (ops[0], VHDKIT_OPEN_RDONLY);
    if (d == NULL)
      return cli_lib_error ();
    if (vhdkit_rct_status (d, &st) == -1)
      return close_disk (d, cli_lib_error ());
    r = close_disk (d, CLI_EXIT_OK);
    if (r != CLI_EXIT_OK)
      return r;
  }

  /* Never trust the library to have terminated its strings. */
  st.most_recent_id[sizeof st.most_recent_id - 1] = '\0';
  st.epoch[sizeof st.epoch - 1] = '\0';
  st.problem[sizeof st.problem - 1] = '\0';
  {
    const struct cli_field f[] = {
      { "Enabled", CLI_BOTH, CLI_BOOL, NULL, st.enabled },
      { "NewerChanges", CLI_BOTH, CLI_BOOL, NULL, st.newer_changes },
      { "MostRecentId", CLI_BOTH, CLI_STR, st.most_recent_id, 0 },
      { "Granularity", CLI_BOTH, CLI_NUM, NULL, st.granularity },
      { "Epoch", CLI_BOTH, CLI_STR, st.epoch, 0 },
      { "Generation", CLI_BOTH, CLI_NUM, NULL, st.generation },
      { "Recovered", CLI_BOTH, CLI_BOOL, NULL, st.recovered },
      { "Problem", CLI_BOTH, CLI_STR, st.problem, 0 },
    };

    cli_print_fields (f, sizeof f / sizeof f[0], cli_json);
  }
  return CLI_EXIT_OK;
}

static const struct cli_verb verb_status = {
  "rct status", "PATH", 1, "[--json]",
  "Show the change tracking state of an image", run_status,
};

/* ---- rct checkpoint ---- */

static const struct cli_verb verb_checkpoint;

static int
run_checkpoint (int argc, char **argv)
{
  struct vhdkit_disk *d;
  char id[VHDKIT_RCT_ID_MAX];
  char **ops;
  int r;
  struct cli_opt opts[] = { CLI_END };

  r = cli_parse_args (&verb_checkpoint, opts, argc, argv, &ops);
  if (r != CLI_CONTINUE)
    return r;

  memset (id, 0, sizeof id);
  if (remote_socket ()) {
    json_t *p = remote_path (ops[0]), *out;
    const char *rid;

    if (p == NULL)
      return CLI_EXIT_FAILURE;
    r = remote_run (REMOTE_CTS, "CreateReferencePoint",
                    json_pack ("{s:o}", "Path", p), 0, &out);
    if (r != CLI_EXIT_OK)
      return r;
    r = remote_unpack (out, "CreateReferencePoint", "{s:s}",
                       "ResilientChangeTrackingId", &rid);
    if (r == CLI_EXIT_OK)
      snprintf (id, sizeof id, "%s", rid);
    json_decref (out);
  }
  else {
    d = vhdkit_disk_open (ops[0], VHDKIT_OPEN_RDWR);
    if (d == NULL)
      return cli_lib_error ();
    r = vhdkit_rct_checkpoint (d, id) == -1 ? cli_lib_error () : CLI_EXIT_OK;
    r = close_disk (d, r);
  }
  if (r != CLI_EXIT_OK)
    return r;
  id[sizeof id - 1] = '\0';
  if (id[0] == '\0')
    return cli_error (VHDKIT_RC_FAILED, "%s: the library returned an empty "
                      "RCT ID", ops[0]);
  if (printf ("%s\n", id) < 0)
    return cli_stdout_error ();
  return CLI_EXIT_OK;
}

static const struct cli_verb verb_checkpoint = {
  "rct checkpoint", "PATH", 1, "",
  "Create a reference point and print its RCT ID", run_checkpoint,
};

/* ---- rct: pick the sub-verb ---- */

static const struct cli_verb *const subverbs[] = {
  &verb_enable, &verb_disable, &verb_status, &verb_checkpoint,
};
#define NSUBVERBS (sizeof subverbs / sizeof subverbs[0])

static void
print_help (void)
{
  size_t i;

  printf ("Usage: vhdkit rct SUBVERB [OPTIONS] PATH\n"
          "%s.\n"
          "\n"
          "Sub-verbs:\n", cli_verb_rct.summary);
  for (i = 0; i < NSUBVERBS; i++)
    printf ("  %-12s %s\n", subverbs[i]->name + 4, subverbs[i]->summary);
  printf ("\n"
          "Run 'vhdkit rct SUBVERB --help' for the options of a sub-verb.\n");
}

static int
run (int argc, char **argv)
{
  const char *arg = argc > 1 ? argv[1] : NULL;
  size_t i;

  if (arg == NULL)
    return cli_usage ("missing sub-verb (enable, disable, status or "
                      "checkpoint)");
  if (strcmp (arg, "-h") == 0 || strcmp (arg, "--help") == 0) {
    print_help ();
    return CLI_EXIT_OK;
  }
  if (arg[0] == '-')
    return cli_usage ("expected a sub-verb before option '%s'", arg);
  for (i = 0; i < NSUBVERBS; i++) {
    if (strcmp (arg, subverbs[i]->name + 4) == 0)
      break;
  }
  if (i == NSUBVERBS)
    return cli_usage ("unknown sub-verb '%s'", arg);

  cli_verb_name = subverbs[i]->name;
  return subverbs[i]->run (argc - 1, argv + 1);
}

const struct cli_verb cli_verb_rct = {
  "rct", "SUBVERB", 1, "[OPTIONS] PATH",
  "Enable, disable, inspect or checkpoint change tracking", run,
};
