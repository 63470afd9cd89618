"""One exchange: the inbound call, its route, its targets tried in order, the relay of each answer, its budget and its recorder."""
