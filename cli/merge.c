/* vhdkit merge: write a differencing image's sectors into its parent.
 * The child stays in place; interrupting (Ctrl-C) cancels cleanly and
 * leaves the parent valid.
 */
#include "vhdkit.h"
#include "cli.h"

static int
run (int argc, char **argv)
{
  struct cli_progress prog;
  int progress = -1, r;
  char **ops;
  struct cli_opt opts[] = {
    CLI_OPTS_PROGRESS (&progress),
    CLI_END,
  };

  r = cli_parse_args (&cli_verb_merge, opts, argc, argv, &ops);
  if (r != CLI_CONTINUE)
    return r;

  cli_progress_begin (&prog, progress);
  r = vhdkit_disk_merge (ops[0], cli_progress_update, &prog);
  cli_progress_end (&prog);
  return r == -1 ? cli_lib_error () : CLI_EXIT_OK;
}

const struct cli_verb cli_verb_merge = {
  "merge", "CHILD", 1, "[OPTIONS]",
  "Merge a differencing image into its parent", run,
};
