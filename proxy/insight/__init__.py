"""Why a session cost what it cost: the upstream prefix each call sent (`prefix`), the findings made from a
session's calls in order (`detector`: cache breaks, repeats, retry cascades, tool loops, stream fallbacks) and
Claude Code's own telemetry joined to the records (`telemetry`). The detector runs on the store's writer
thread, off the calls' path."""
