"""The command line: `main` (run | status | sweep | serve; the only code that edits sys.argv),
`argv` (what the command line is rewritten to before Hydra reads it), `errors` (exit 2 and one
line for a user's mistake), `secret_guard` (a Hydra callback), `status` and `sweep` (commands).
Nothing in trainer imports it but the entrypoints that forward to it."""
