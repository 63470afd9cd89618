"""The HTTP edge: the aiohttp server and its routes, the connection guard, `/v1/models`, the console's feed, Claude Code's telemetry receiver."""
